"""The pipeline's pieces without running a sweep: hashed shards, `rnnbench merge`, the landing page, the linters.

Shard documents here are synthetic (records built with `make_record` from
known samples), so every check of `merge` and of the landing page's verdicts
has a known right answer. The end-to-end runs are in test_pipeline_e2e.py.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rnnbench.analysis.verdicts import read_verdicts
from rnnbench.cli.main import main
from rnnbench.measure.timing import Measurement
from rnnbench.report.landing import Links, last_night, render, write_landing
from rnnbench.sweep.grid import PRESETS, expand, override, shard, shard_of
from rnnbench.sweep.records import Record
from rnnbench.sweep.store import iter_documents, new_document, validate
from rnnbench.sweep.worker import SELFTEST_SLOWDOWN, make_record, selftest_factor

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# the tiny grid the synthetic shards claim to have run (their recorded command)
GRID_FLAGS = ["--preset", "quick", "--framework", "numpy", "--cell", "rnn,gru", "--pass", "forward",
              "--batch", "4", "--hidden", "8", "--seq-len", "4"]  # fmt: skip
MACHINE = {
    "machine": "nightly", "hostname": "host-a", "cpu_model": "Test CPU", "cpu_cores": 2, "gpu_name": None,
    "frameworks": {"numpy": "2.0"}, "threads": 1, "python": "3.11", "os": "Linux", "git_commit": "c0ffee" * 6 + "ab",
    "git_dirty": False,
}  # fmt: skip


def _grid() -> Any:
    return override(
        PRESETS["quick"], frameworks=["numpy"], cells=["rnn", "gru"], passes=["forward"], batch=[4], hidden=[8],
        seq_len=[4],
    )  # fmt: skip


def _record(case: Any, seconds: float, rng: random.Random) -> Record:
    samples = tuple(seconds * (1 + 0.01 * rng.random()) for _ in range(20))
    return make_record(case, "ok", threads=1, m=Measurement(samples, 1, 0.0, 0))


def write_shards(tmp: Path, n: int = 3, *, seconds: float = 1e-3, slower: str | None = None,
                 created: str = "2026-01-01T00:00:00+00:00", **machine: Any) -> list[Path]:  # fmt: skip
    """One results folder per shard, as `rnnbench run --shard K/N` writes them; `slower` doubles one formulation."""
    rng = random.Random(0)
    runs, skipped = expand(_grid(), installed=["numpy"])
    dirs = []
    for k in range(1, n + 1):
        doc = new_document(
            MACHINE | {"hostname": f"host-{k}"} | machine,
            command=["rnnbench", "run", *GRID_FLAGS, "--shard", f"{k}/{n}", "--resume"],
            preset="quick",
            shard=f"{k}/{n}",
            grid=_grid(),
        )
        records = [_record(c, seconds * (2 if c.formulation == slower else 1), rng) for c in shard(runs, k, n)] + [
            make_record(c, "skipped", threads=1, error="n/a") for c, _ in skipped if shard_of(c.key, n) == k
        ]
        doc = dataclasses.replace(doc, created=created, records=tuple(records))
        folder = tmp / f"shard-{k}" / "runs" / doc.machine["machine"]
        folder.mkdir(parents=True)
        (folder / f"{k}.json").write_text(json.dumps(doc.to_json()))
        dirs.append(tmp / f"shard-{k}")
    return dirs


def merge(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = main(["merge", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out + out.err


# -- sharding ---------------------------------------------------------------------------------------


def test_adding_a_framework_or_a_shape_moves_only_the_new_cases() -> None:
    small, _ = expand(PRESETS["quick"], installed=["numpy", "jax"])
    bigger, _ = expand(PRESETS["quick"], installed=["numpy", "torch", "jax"])
    wider, _ = expand(override(PRESETS["quick"], batch=[16, 64, 128]), installed=["numpy", "jax"])
    for grown in (bigger, wider):
        assert len(grown) > len(small)
        for n in (2, 3, 8):
            before = {c.key: k for k in range(1, n + 1) for c in shard(small, k, n)}
            after = {c.key: k for k in range(1, n + 1) for c in shard(grown, k, n)}
            assert all(after[key] == k for key, k in before.items())
    # the old round-robin assignment by position would have moved most of them (so the check above can fail)
    rr_small = {c.key: i % 3 for i, c in enumerate(small)}
    rr_wider = {c.key: i % 3 for i, c in enumerate(wider)}
    assert sum(rr_wider[key] != k for key, k in rr_small.items()) > len(small) // 3


def test_shard_of_is_a_fixed_function_of_the_key() -> None:
    # the documented rule (first 8 bytes of sha256, big-endian, mod N, 1-based), computed independently:
    # a change of hash (or a dependence on Python's hash seed) would reshuffle every history
    key = "torch/cuda/lstm/hoisted/eager/forward/b16/i512/h512/t25/l1/float32"
    digest = int(hashlib.sha256(key.encode()).hexdigest()[:16], 16)
    assert [shard_of(key, n) for n in (1, 2, 3, 8)] == [digest % n + 1 for n in (1, 2, 3, 8)]
    out = subprocess.run(
        [sys.executable, "-c", f"from rnnbench.sweep.grid import shard_of; print(shard_of({key!r}, 8))"],
        capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert int(out.stdout) == shard_of(key, 8)


# -- merge ------------------------------------------------------------------------------------------


def test_merge_joins_every_case_exactly_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = write_shards(tmp_path)
    code, out = merge(capsys, *dirs, "--out", tmp_path / "history")
    assert code == 0, out
    (_, doc), *more = list(iter_documents(tmp_path / "history"))
    assert not more
    validate(doc)
    runs, skipped = expand(_grid(), installed=["numpy"])
    keys = [r["key"] for r in doc["records"]]
    assert sorted(keys) == sorted(c.key for c in runs + [c for c, _ in skipped])
    assert len(keys) == len(set(keys))
    assert doc["shard"] is None and doc["machine"]["hostnames"] == ["host-1", "host-2", "host-3"]
    assert [s["shard"] for s in doc["merged_from"]] == ["1/3", "2/3", "3/3"]
    assert "grid not checked" not in out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "missing shard 2/3"),
        ("twice", "measured twice"),
        ("commit", "shards from different commits"),
        ("preset", "shards from different presets"),
        ("gpu", "shards from different machine classes"),
        ("incomplete", "shard 1/3 is incomplete"),
        ("foreign", "belongs to shard"),
        ("grid", "shards ran different grids"),
    ],
)
def test_merge_refuses_shards_that_do_not_add_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, message: str
) -> None:
    dirs = write_shards(tmp_path)
    files = [next(d.rglob("*.json")) for d in dirs]
    docs = [json.loads(f.read_text()) for f in files]
    if damage == "missing":
        shutil.rmtree(dirs.pop(1))
    elif damage == "twice":
        again = copy.deepcopy(docs[0])
        again["run_id"] = "resumed"
        (files[0].parent / "again.json").write_text(json.dumps(again))
    elif damage == "commit":
        docs[2]["machine"]["git_commit"] = "f" * 40
    elif damage == "preset":
        docs[2]["preset"] = "default"
    elif damage == "gpu":
        docs[1]["machine"]["gpu_name"] = "NVIDIA H100"
    elif damage == "incomplete":
        docs[0]["records"] = [r for r in docs[0]["records"] if r["status"] != "ok"]
    elif damage == "foreign":
        docs[0]["records"].append(next(r for r in docs[1]["records"]))
    elif damage == "grid":
        docs[2]["grid"]["shapes"] = [[4, 16, 16, 4]]
    for f, d in zip(files, docs):
        if f.exists():
            f.write_text(json.dumps(d))
    code, out = merge(capsys, *dirs, "--out", tmp_path / "history")
    assert code == 2
    assert message in out, out
    assert len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "history").exists() or not list((tmp_path / "history").rglob("*.json"))


def test_merge_tolerates_a_resumed_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A requeued shard writes a second document: the rest of its cases and its skipped records again."""
    dirs = write_shards(tmp_path)
    first = next(dirs[0].rglob("*.json"))
    doc = json.loads(first.read_text())
    ok = [r for r in doc["records"] if r["status"] == "ok"]
    skipped = [r for r in doc["records"] if r["status"] == "skipped"]
    assert len(ok) >= 2
    rest = copy.deepcopy(doc) | {"run_id": "second-attempt", "records": ok[1:] + skipped}
    first.write_text(json.dumps(doc | {"records": ok[:1] + skipped}))
    (first.parent / "resumed.json").write_text(json.dumps(rest))
    code, out = merge(capsys, *dirs, "--out", tmp_path / "history")
    assert code == 0, out


def test_merge_reads_the_grid_from_the_headers_and_says_what_to_do_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A document written before run documents filed their grid (no `grid` in its header): one line saying
    how to merge it; `--no-grid-check` merges it on the shard checks alone. The grid is never re-parsed
    from the saved command line (a shard whose command names another grid merges by its header)."""
    dirs = write_shards(tmp_path)
    files = [next(d.rglob("*.json")) for d in dirs]
    for f in files:  # the command line no longer matches the grid: only the header counts
        doc = json.loads(f.read_text())
        f.write_text(json.dumps(doc | {"command": ["rnnbench", "run", "--preset", "full"]}))
    code, out = merge(capsys, *dirs, "--out", tmp_path / "ok")
    assert code == 0 and "grid not checked" not in out, out
    old = json.loads(files[1].read_text())
    del old["grid"]
    files[1].write_text(json.dumps(old))
    code, out = merge(capsys, *dirs, "--out", tmp_path / "history")
    assert code == 2 and len(out.strip().splitlines()) == 1, out
    assert "does not record the grid" in out and "--no-grid-check" in out and files[1].name in out
    assert not (tmp_path / "history").exists()
    code, out = merge(capsys, *dirs, "--out", tmp_path / "history", "--no-grid-check")
    assert code == 0 and "grid not checked" in out, out


def test_a_document_an_older_rnnbench_wrote_merges_only_without_the_grid_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = sorted((ROOT / "tests" / "data" / "runs-legacy" / "runs").glob("*/*.json"))[0]
    code, out = merge(capsys, old, "--out", tmp_path / "history")
    assert code == 2 and "does not record the grid" in out and len(out.strip().splitlines()) == 1, out
    code, out = merge(capsys, old, "--out", tmp_path / "history", "--no-grid-check")
    assert code == 0 and "grid not checked" in out, out
    ((_, doc),) = iter_documents(tmp_path / "history")
    assert len(doc["records"]) == len(json.loads(old.read_text())["records"]) and "grid" not in doc


def test_merge_names_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = merge(capsys, tmp_path / "nope", "--out", tmp_path / "history")
    assert code == 2 and "no such shard" in out


# -- landing page -----------------------------------------------------------------------------------
# The page shows what the night's verdicts.json says (tests/test_verdicts.py checks the document itself):
# a night on a new commit is paired (BASE: the previous commit re-measured the same night), and only its
# paired verdicts are published; a doubled formulation is far outside any noise these samples have.

NEW_COMMIT = "beef" * 10


def _night(tmp: Path, name: str, created: str, capsys: pytest.CaptureFixture[str], out: str = "history",
           **kw: Any) -> Path:  # fmt: skip
    dirs = write_shards(tmp / name, created=created, **kw)
    code, text = merge(capsys, *dirs, "--out", tmp / out)
    assert code == 0, text
    return max((tmp / out / "runs").rglob("*.json"), key=lambda p: p.stat().st_mtime_ns)


def _paired_night(tmp: Path, capsys: pytest.CaptureFixture[str], slower: str) -> list[str]:
    """Night 1 on MACHINE's commit, then night 2 on NEW_COMMIT with `slower` doubled, paired against a BASE
    re-measured the same night; returns the `rnnbench verdicts` arguments that judge night 2."""
    _night(tmp, "n1", "2026-01-01T02:00:00+00:00", capsys)
    new = _night(tmp, "n2", "2026-01-02T02:00:00+00:00", capsys, slower=slower, git_commit=NEW_COMMIT)
    base = _night(tmp, "n2-base", "2026-01-02T02:00:00+00:00", capsys, out="paired")
    return ["verdicts", str(tmp / "history"), "--out", str(tmp / "site" / "verdicts.json"), "--paired", str(base),
            str(new)]  # fmt: skip


def test_landing_page_shows_the_regression_and_nothing_else(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = tmp_path / "one"
    _night(one, "n1", "2026-01-01T02:00:00+00:00", capsys)
    assert main(["verdicts", str(one / "history"), "--out", str(one / "first.json")]) == 0
    first = last_night(one / "history", read_verdicts(one / "first.json"))
    assert first.previous is None and not first.regressions and not first.verdicts["cases"]
    assert main(_paired_night(tmp_path, capsys, slower="concat")) == 0
    site = tmp_path / "site"
    night = last_night(tmp_path / "history", read_verdicts(site / "verdicts.json"))
    assert night.previous is not None
    assert {c["key"] for c in night.regressions} == {
        r["key"] for r in night.run["records"] if r["status"] == "ok" and r["formulation"] == "concat"
    }
    assert not night.improvements
    assert all(1.9 < c["ratio"] < 2.1 and c["method"] == "paired" for c in night.regressions)
    page = render(night, Links())
    assert 'id="regressions"' in page and "concat" in page.split('id="improvements"')[0]
    assert NEW_COMMIT[:8] in page.split('id="improvements"')[0] and "Paired night" in page
    (site / "report").mkdir(parents=True)
    (site / "report" / "index.html").write_text("report")
    index = write_landing(night, site)
    text = index.read_text()
    assert 'href="report/index.html"' in text and 'href="verdicts.json"' in text
    assert 'href="asv/index.html"' not in text  # no asv dashboard was built: no dead link


def test_landing_page_escapes_what_comes_from_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _night(tmp_path, "n1", "2026-01-01T02:00:00+00:00", capsys, cpu_model="<script>alert(1)</script>")
    assert main(["verdicts", str(tmp_path / "history"), "--out", str(tmp_path / "v.json")]) == 0
    page = render(last_night(tmp_path / "history", read_verdicts(tmp_path / "v.json")))
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_landing_cli_fails_on_regression_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_paired_night(tmp_path, capsys, slower="hoisted")) == 0
    args = ["landing", str(tmp_path / "history"), "--out", str(tmp_path / "site")]
    assert main(args) == 0
    assert main([*args, "--fail-on-regression"]) == 1
    assert "REGRESSION" in capsys.readouterr().err


# -- the self-test switch ---------------------------------------------------------------------------


def test_selftest_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SELFTEST_SLOWDOWN, raising=False)
    assert selftest_factor("concat") == 1.0
    monkeypatch.setenv(SELFTEST_SLOWDOWN, "concat:1.5,bogus")
    assert (selftest_factor("concat"), selftest_factor("separate")) == (1.5, 1.0)
    monkeypatch.setenv(SELFTEST_SLOWDOWN, "all:2")
    assert selftest_factor("native") == 2.0


# -- linters over the workflows and scripts ---------------------------------------------------------

SCRIPTS = sorted(
    str(p) for p in [*ROOT.glob("scripts/*.sh"), *ROOT.glob("scripts/slurm/*.sh"), *ROOT.glob("scripts/slurm/*.sbatch")]
)


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} not installed (pip install -e '.[test]')"
    return path


def test_actionlint_passes_and_can_fail(tmp_path: Path) -> None:
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert {Path(w).name for w in workflows} >= {"ci.yml", "nightly-gpu.yml"}
    res = subprocess.run([_tool("actionlint"), *workflows], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    bad = tmp_path / ".github" / "workflows"
    bad.mkdir(parents=True)
    (bad / "bad.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ x }}\n"
    )
    res = subprocess.run([_tool("actionlint"), str(bad / "bad.yml")], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode != 0


def test_shellcheck_passes_and_can_fail(tmp_path: Path) -> None:
    assert len(SCRIPTS) >= 6
    res = subprocess.run([_tool("shellcheck"), *SCRIPTS], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    (tmp_path / "bad.sh").write_text("#!/bin/bash\nrm -rf $1/*\n")
    res = subprocess.run([_tool("shellcheck"), str(tmp_path / "bad.sh")], capture_output=True, text=True)
    assert res.returncode != 0
