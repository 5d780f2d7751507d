"""The sweep runner: isolation, sharding, resume after a kill, concurrent runs, and the stored schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnbench.case import Case
from rnnbench.cli import main
from rnnbench.measure.machine import fingerprint
from rnnbench.measure.timing import TimingConfig
from rnnbench.sweep.grid import PRESETS, Grid, expand, override, parse_shard, shard
from rnnbench.sweep.records import RunDocument
from rnnbench.sweep.runner import RunOptions, run_cases
from rnnbench.sweep.store import RECORD_FIELDS, iter_documents, read_document
from tests.faulty_worker import faulty_worker

FAST = TimingConfig(budget_s=0.02, warmup_budget_s=0.01, min_samples=3)


def _case(hidden: int, formulation: str = "separate") -> Case:
    return Case(framework="numpy", formulation=formulation, hidden=hidden, input_size=4, batch=2, seq_len=3)


@pytest.mark.slow  # whole sweeps in worker processes
def test_crash_hang_and_raise_fail_only_their_case(tmp_path):
    cases = [_case(8), _case(13), _case(9), _case(17), _case(19), _case(10, "concat")]
    opts = RunOptions(tmp_path, threads=1, timing=FAST, peak_timing=FAST, timeout_s=20, progress=False,
                      worker_target=faulty_worker)  # fmt: skip
    writer = run_cases(cases, fingerprint(1), opts)
    by_hidden = {r["hidden"]: r for r in read_document(writer.path)["records"]}
    assert [r["hidden"] for r in read_document(writer.path)["records"]] == [8, 13, 9, 17, 19, 10]
    assert by_hidden[13]["status"] == "failed" and "died (exit code 7)" in by_hidden[13]["error"]
    assert by_hidden[17]["status"] == "failed" and "timed out" in by_hidden[17]["error"]
    assert by_hidden[19]["status"] == "failed" and "FloatingPointError" in by_hidden[19]["error"]
    for h in (8, 9, 10):
        assert by_hidden[h]["status"] == "ok" and by_hidden[h]["median_s"] > 0
    doc = read_document(writer.path)
    assert RunDocument.from_json(doc)[1] == []  # every record valid
    assert doc["finished"] is not None


def test_sharding_covers_the_grid_exactly_once():
    cases, _ = expand(PRESETS["quick"], installed=["numpy", "torch", "tensorflow", "jax"])
    parts = [shard(cases, k, 4) for k in range(1, 5)]
    keys = [c.key for part in parts for c in part]
    assert sorted(keys) == sorted(c.key for c in cases)
    assert len(set(keys)) == len(keys)
    # hashed assignment: balanced in expectation (each part within 20% of an even split here)
    assert all(abs(len(p) - len(cases) / 4) <= 0.2 * len(cases) / 4 for p in parts)
    # deterministic: expanding again gives the same shards
    again, _ = expand(PRESETS["quick"], installed=["numpy", "torch", "tensorflow", "jax"])
    assert [c.key for c in shard(again, 2, 4)] == [c.key for c in parts[1]]
    assert parse_shard("3/4") == (3, 4)


def test_overrides_replace_axes():
    g = override(PRESETS["quick"], batch=[1], hidden=[32, 48], formulations=["concat"], cells=["gru*"])
    cases, _ = expand(g, installed=["numpy"])
    assert {(c.batch, c.hidden, c.input_size) for c in cases} == {(1, 32, 32), (1, 48, 48)}
    assert {c.spec.label for c in cases} == {
        "gru",
        "gru[take_new,after]",
        "gru[keep_old,before]",
        "gru[take_new,before]",
    }
    assert isinstance(g, Grid)


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "rnnbench", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


SMALL = ["--framework", "numpy", "--cell", "rnn,gru,lstm", "--batch", "2,4", "--hidden", "8,16", "--seq-len", "4",
         "--budget", "0.2", "--no-progress", "--threads", "1"]  # fmt: skip


@pytest.mark.slow  # whole sweeps in worker processes
def test_resume_after_kill_finishes_without_duplicates(tmp_path):
    # the records first reach the disk at the flush after round 1 (the warm-up pass adds none); these tiny
    # cases meet the noise rule early, so with 3 rounds the run ended 0.4 s later and the kill sometimes came
    # after it (CI, 2026-12-07); 12 rounds keep the run going past that flush, so the kill lands mid-run.
    # That holds on a fast machine too: each case-round re-warms (a window of up to 50 calls), then takes at
    # least 5 samples (15 split over the rounds) of at least min_sample_s (1 ms), so the 11 rounds left after
    # the flush last 36 x 11 x 5 ms, 2 s, at the very least, against a kill within 0.05 s of the flush being
    # seen; a loaded machine only makes them longer
    p = _cli("run", *SMALL, "--budget", "0.9", "--rounds", "12", "--results", str(tmp_path))
    deadline = time.time() + 120
    while time.time() < deadline:
        docs = list(tmp_path.glob("runs/*/*.json"))
        if docs and len(json.loads(docs[0].read_text())["records"]) >= 3:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = read_document(next(tmp_path.glob("runs/*/*.json")))
    # killed mid-run (later rounds may have been under way with all 36 cases recorded after round 1)
    assert first["finished"] is None and len(first["records"]) >= 3
    q = _cli("run", *SMALL, "--results", str(tmp_path), "--resume")
    _, err = q.communicate(timeout=300)
    assert q.returncode == 0, err
    keys = [r["key"] for _, doc in iter_documents(tmp_path) for r in doc["records"] if r["status"] != "skipped"]
    assert len(keys) == len(set(keys)) == 36  # 3 cells x 3 formulations x 2 batch x 2 hidden
    assert "already recorded" in err


@pytest.mark.slow  # whole sweeps in worker processes
def test_two_runs_at_once_lose_nothing(tmp_path):
    procs = [_cli("run", *SMALL, "--formulation", f, "--results", str(tmp_path)) for f in ("separate", "concat")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    docs = [doc for _, doc in iter_documents(tmp_path)]
    assert len(docs) == 2
    assert sorted(len([r for r in d["records"] if r["status"] == "ok"]) for d in docs) == [12, 12]


def test_document_validates_and_round_trips(tmp_path):
    p = _cli("run", *SMALL, "--cell", "gru", "--formulation", "concat", "--results", str(tmp_path), "--json")
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    printed = json.loads(out)
    path = next(tmp_path.glob("runs/*/*.json"))
    stored = read_document(path)
    assert printed == stored
    assert RunDocument.from_json(stored)[1] == []  # every record valid
    assert json.loads(json.dumps(stored)) == stored
    rec = next(r for r in stored["records"] if r["status"] == "ok")
    assert set(RECORD_FIELDS) <= set(rec)
    assert Case.from_dict(rec).key == rec["key"]
    # the stored median is the median of every stored sample (both rounds'), checked against numpy's
    assert len(rec["samples_s"]) >= 3 and rec["median_s"] == pytest.approx(
        float(np.median(rec["samples_s"])), rel=1e-12
    )
    assert rec["gflops"] == pytest.approx(rec["flops"] / rec["median_s"] / 1e9)
    # three rounds (the default): every round's samples are kept, compile time comes from the first
    assert rec["rounds"] == 3 and len(rec["round_medians_s"]) == 3
    assert rec["compile_s"] is not None and len(rec["samples_s"]) >= 10
    assert 0 < rec["peak_fraction"] == pytest.approx(rec["gflops"] / rec["peak_gflops"])
    assert stored["peaks"] and stored["peaks"][0]["framework"] == "numpy"
    fp = stored["machine"]
    assert fp["threads"] == 1 and fp["frameworks"]["numpy"] and fp["cpu_model"]
    assert "git_commit" in fp and isinstance(fp["git_dirty"], bool)


@pytest.mark.parametrize(
    "args",
    [
        ["--shard", "3/2"],
        ["--shard", "x"],
        ["--threads", "0"],
        ["--device", "cuda"],
        ["--batch", "0"],
        ["--preset", "nope"],
    ],
)
def test_run_bad_input_one_line_exit_2(args, tmp_path, capsys):
    # in-process: the real entry point (`python -m rnnbench`, where an escaping exception prints a traceback)
    # is tests/test_bad_input.py's, once; a fresh interpreter per line here (numpy and rnnbench imported anew)
    # added nothing but start-up time
    if "cuda" in args:
        from tests.hardware import HAS_CUDA

        if HAS_CUDA:
            pytest.skip("has a GPU")
    assert main(["run", "--framework", "numpy", "--results", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rnnbench: error:") and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_env_and_list(tmp_path):
    p = _cli("env", "--json")
    out, _ = p.communicate(timeout=120)
    fp = json.loads(out)
    assert fp["python"] and fp["cpu_cores"] >= 1
    p = _cli("list")
    out, _ = p.communicate(timeout=300)
    assert "quick" in out and "nightly-gpu" in out and "torch" in out


def test_iter_documents_skips_foreign_files(tmp_path):
    d = tmp_path / "runs" / "m"
    d.mkdir(parents=True)
    (d / "junk.json").write_text("{not json")
    (d / "other.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.warns(UserWarning) as caught:
        assert list(iter_documents(tmp_path)) == []
    assert {Path(str(w.message).split(":")[0]).name for w in caught} == {"junk.json", "other.json"}


@pytest.mark.slow  # a JAX sweep in a subprocess: the slowest test left in the fast tier
def test_real_jit_compile_time_is_kept_out_of_the_samples(tmp_path):
    case = Case(framework="jax", mode="compiled", cell="lstm", hidden=32, input_size=32, batch=8, seq_len=16)
    opts = RunOptions(tmp_path, threads=1, timing=FAST, peak_timing=FAST, progress=False)
    (rec,) = read_document(run_cases([case], fingerprint(1), opts).path)["records"]
    assert rec["status"] == "ok"
    # tracing + XLA compilation (tenths of a second or more) dwarfs one call (tens of us): a per-call sample
    # is a block of calls over a millisecond or more, so to reach a fifth of the compile time a block would
    # have to be descheduled for about its calls x the compile time, which no loaded machine comes near
    assert rec["compile_s"] > 5 * max(rec["samples_s"])


def test_the_worker_launcher_is_written_once_per_interpreter_in_a_private_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat
    import tempfile

    from rnnbench.sweep import runner

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(runner, "_LAUNCHER", [])
    first = Path(runner._launcher())
    monkeypatch.setattr(runner, "_LAUNCHER", [])  # a later run (another process) finds the same script
    assert Path(runner._launcher()) == first and first.parent.name == f"rnnbench-launch-{os.getuid()}"
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700 and os.access(first, os.X_OK)
    assert "trap '' INT" in first.read_text() and sys.executable in first.read_text()
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # nothing per run is left behind
    # a folder others can write to is not trusted: the launcher goes to a fresh private folder instead
    first.parent.chmod(0o777)
    monkeypatch.setattr(runner, "_LAUNCHER", [])
    other = Path(runner._launcher())
    assert other.parent != first.parent and stat.S_IMODE(other.parent.stat().st_mode) == 0o700
