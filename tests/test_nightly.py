"""The paired nightly: the plan on controlled histories, the previous environment's rebuild with a fake pip,
`ab` sides PYTHON@REV and `ab --shard`/`--resume` (stub sides: drawn samples, no timing outcome asserted),
and publish.sh on a paired night's shards with a stand-in for the commands of the verdicts branch."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from rnnbench.analysis import columnar
from rnnbench.cli import main
from rnnbench.cli.nightly import previous_night
from rnnbench.measure.machine import fingerprint, lock_digest, lock_lines, packages
from rnnbench.sweep.ab import project_root, resolve_side
from rnnbench.sweep.nightly import (
    NIGHTS_DIR,
    NightPlan,
    ensure_environment,
    lock_changes,
    plan_night,
    regressed_cases,
)
from rnnbench.sweep.store import new_document, write_document
from tests import synthetic_runs as S
from tests.stub_side import stub_interpreter

ROOT = Path(__file__).resolve().parents[1]
MACHINE = "nightbox"
OLD = {"numpy": "2.0.0", "torch": "2.13.0"}
NEW = {"numpy": "2.0.0", "torch": "2.14.0"}


def _night(history: Path, commit: str | None, pkgs: dict[str, str] | None, age_days: int = 1) -> dict[str, Any]:
    """A night of MACHINE in the nightly's `history`, as publish.sh files one: its run document imported into
    the columnar history HISTORY/nights, the document itself not kept there; `pkgs` None: written before
    locks. Returns the document."""
    created = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=age_days)
    doc = S.document(S.cases(frameworks=("numpy",), cells=("rnn",), batches=(2,), hiddens=(8,), seq_lens=(4,)),
                     machine_name=MACHINE, commit=commit, created=created, seed=age_days)  # fmt: skip
    if pkgs is not None:
        doc["machine"] |= {"packages": pkgs, "lock_digest": lock_digest(pkgs)}
    with tempfile.TemporaryDirectory() as aside, contextlib.redirect_stdout(io.StringIO()):
        path = S.write(doc, Path(aside))
        assert main(["history", "import", str(path), "--out", str(history / NIGHTS_DIR), "--no-progress"]) == 0
    return doc


def _legacy_night(history: Path, commit: str | None, pkgs: dict[str, str] | None, age_days: int = 1) -> Path:
    """A night as publish.sh filed one before the documents left the history: HISTORY/runs/<machine>/."""
    machine: dict[str, Any] = {"machine": MACHINE, "git_commit": commit, "cpu_cores": 2}
    if pkgs is not None:
        machine |= {"packages": pkgs, "lock_digest": lock_digest(pkgs)}
    created = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=age_days)
    doc = new_document(machine, command=["rnnbench", "run"], preset="quick", shard=None, created=created)
    return write_document(history, doc)


def _plan(history: Path, commit: str, pkgs: dict[str, str]) -> NightPlan:
    """Tonight's plan at `commit` in the environment `pkgs`, as `rnnbench nightly plan HISTORY` makes it."""
    return plan_night(previous_night(history, MACHINE), MACHINE, commit, lock_digest(pkgs), pkgs)


def _git_checkout() -> bool:
    return (project_root() / ".git").exists()


# -- the lock ----------------------------------------------------------------------------------------------


def test_the_fingerprint_records_a_lock_that_rebuilds_this_environment() -> None:
    fp = fingerprint(1)
    pkgs = fp["packages"]
    assert pkgs["numpy"] == fp["frameworks"]["numpy"]  # the lock holds what the frameworks field names
    assert "rnnbench" not in pkgs and "pip" not in pkgs  # a side runs its own checkout; venv brings pip
    assert fp["lock_digest"] == lock_digest(pkgs) and len(fp["lock_digest"]) == 16
    assert lock_digest(NEW) != lock_digest(OLD)
    assert lock_lines(OLD) == ["numpy==2.0.0", "torch==2.13.0"]
    assert all("==" in line for line in lock_lines(packages()))


def test_env_lock_prints_requirement_lines_and_the_table_stays_short(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "--lock"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == lock_lines(packages())
    assert main(["env"]) == 0
    table = capsys.readouterr().out
    assert "distributions (rnnbench env --lock)" in table and "numpy==" not in table


# -- the plan ----------------------------------------------------------------------------------------------


def test_the_first_night_is_plain(tmp_path: Path) -> None:
    plan = _plan(tmp_path / "history", "b" * 40, NEW)
    assert not plan.paired and "first night" in plan.reason
    _night(tmp_path / "history", "a" * 40, NEW)  # a history of another machine has no night of this one
    assert previous_night(tmp_path / "history", "another-machine") is None


def test_nothing_changed_is_a_plain_night_judged_for_drift(tmp_path: Path) -> None:
    _night(tmp_path, "a" * 40, NEW)
    plan = _plan(tmp_path, "a" * 40, NEW)
    assert not plan.paired and "nothing changed" in plan.reason and plan.changes == ()
    with pytest.raises(ValueError):
        plan.base_side()


def test_a_new_commit_pairs_against_the_previous_commit_in_tonights_environment(tmp_path: Path) -> None:
    _night(tmp_path, "a" * 40, NEW, age_days=2)
    _night(tmp_path, "c" * 40, NEW)  # the newest night is the previous one, not the oldest
    plan = _plan(tmp_path, "b" * 40, NEW)
    assert plan.paired and not plan.needs_environment
    assert plan.base_side() == "c" * 40 and plan.changes == (f"commit {'c' * 12} -> {'b' * 12}",)


def test_a_new_lock_pairs_against_the_previous_environment_and_names_the_upgrade(tmp_path: Path) -> None:
    _night(tmp_path, "a" * 40, OLD)
    plan = _plan(tmp_path, "a" * 40, NEW)
    assert plan.paired and plan.needs_environment and plan.base_lock == lock_digest(OLD)
    assert plan.changes == ("torch 2.13.0 -> 2.14.0",)
    assert plan.base_side(tmp_path / "env") == f"{tmp_path / 'env' / 'bin' / 'python'}@{'a' * 40}"
    # the environment cannot be had: with the same commit there is nothing left to pair
    fallback = plan.without_environment("it could not be rebuilt (no wheel)")
    assert not fallback.paired and "could not be rebuilt" in fallback.reason and "drift only" in fallback.reason


def test_a_new_commit_and_a_new_lock_pair_both_and_fall_back_to_the_commit(tmp_path: Path) -> None:
    _night(tmp_path, "a" * 40, OLD)
    plan = _plan(tmp_path, "b" * 40, NEW)
    assert plan.paired and plan.needs_environment
    assert plan.changes == (f"commit {'a' * 12} -> {'b' * 12}", "torch 2.13.0 -> 2.14.0")
    assert "commit and environment" in plan.reason
    fallback = plan.without_environment("rebuilding it was turned off")
    assert fallback.paired and fallback.base_side() == "a" * 40 and "paired by commit only" in fallback.reason
    assert fallback.base_lock == lock_digest(NEW)  # BASE then runs in tonight's environment


def test_a_previous_night_without_a_lock_pairs_by_commit_only_and_says_so(tmp_path: Path) -> None:
    _night(tmp_path, "a" * 40, None)
    plan = _plan(tmp_path, "b" * 40, NEW)
    assert plan.paired and not plan.needs_environment and plan.base_side() == "a" * 40
    assert "records no environment lock: paired by commit only" in plan.reason
    same = _plan(tmp_path, "a" * 40, NEW)
    assert not same.paired and "no environment lock" in same.reason


def test_the_previous_night_is_read_from_the_columnar_history_alone(tmp_path: Path) -> None:
    written = _night(tmp_path, "a" * 40, OLD)
    # the history keeps no run document: the night's stored header is all there is
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".json" and p.name != columnar.MARKER]
    prev = previous_night(tmp_path, MACHINE)
    assert prev is not None and prev.commit == "a" * 40 and prev.lock_digest == lock_digest(OLD)
    assert prev.packages == OLD and prev.python == "3.11.7" and prev.path.suffix == ".parquet"
    assert (prev.run_id, prev.created) == (written["run_id"], written["created"])


def test_an_unreadable_newest_night_is_not_the_previous_night(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _night(tmp_path, "a" * 40, NEW, age_days=2)
    _night(tmp_path, "c" * 40, NEW, age_days=1)
    newest = max((tmp_path / NIGHTS_DIR / "summary" / MACHINE).glob("*.parquet"))
    newest.write_bytes(newest.read_bytes()[:100])  # a copy cut short
    prev = previous_night(tmp_path, MACHINE)
    assert prev is not None and prev.commit == "a" * 40
    assert newest.name in capsys.readouterr().err


def test_an_old_history_with_run_documents_still_plans_and_the_newer_night_wins(tmp_path: Path) -> None:
    good = _legacy_night(tmp_path, "a" * 40, NEW, age_days=3)
    (good.parent / "99999999T999999-broken.json").write_text("{not json")  # unreadable: not a night
    prev = previous_night(tmp_path, MACHINE)
    assert prev is not None and prev.path == good and prev.commit == "a" * 40
    assert previous_night(tmp_path, "another-machine") is None
    _night(tmp_path, "c" * 40, OLD, age_days=2)  # the first night stored in the columnar history: newer
    newer = previous_night(tmp_path, MACHINE)
    assert newer is not None and newer.commit == "c" * 40 and newer.packages == OLD
    _legacy_night(tmp_path, "d" * 40, NEW, age_days=1)
    assert _plan(tmp_path, "d" * 40, NEW).reason.startswith("nothing changed")


def test_lock_changes_name_upgrades_additions_and_removals() -> None:
    assert lock_changes({"a": "1", "b": "2"}, {"a": "1.1", "c": "3"}) == ["a 1 -> 1.1", "-b 2", "+c 3"]


# -- the previous environment ------------------------------------------------------------------------------


class FakePip:
    """Stands in for `python -m venv` and pip: records the commands, makes bin/python, fails when told."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(cmd))
        if cmd[1:3] == ["-m", "venv"]:
            python = Path(cmd[3]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.write_text("")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        code = 1 if self.fail else 0
        return subprocess.CompletedProcess(cmd, code, "", "ERROR: No matching distribution found for torch==2.13.0")


def test_the_previous_environment_is_rebuilt_from_its_lock_once_and_then_kept(tmp_path: Path) -> None:
    pip = FakePip()
    built = ensure_environment(tmp_path, lock_digest(OLD), OLD, "/usr/bin/python3", run=pip)
    root = tmp_path / "envs" / lock_digest(OLD)
    assert built.path == root and not built.reused
    assert pip.calls[0] == ["/usr/bin/python3", "-m", "venv", str(root)]
    install = pip.calls[1]
    assert install[0] == str(root / "bin" / "python") and "--no-deps" in install
    assert Path(install[-1]).read_text().splitlines() == ["numpy==2.0.0", "torch==2.13.0"]
    assert (tmp_path / "envs" / ".gitignore").read_text() == "*\n"  # never committed to the results branch
    again = ensure_environment(tmp_path, lock_digest(OLD), OLD, "/usr/bin/python3", run=pip)
    assert again.reused and again.path == root and len(pip.calls) == 2  # nothing rebuilt


def test_a_failed_rebuild_leaves_nothing_half_built_and_says_why(tmp_path: Path) -> None:
    built = ensure_environment(tmp_path, lock_digest(OLD), OLD, "/usr/bin/python3", run=FakePip(fail=True))
    assert built.path is None and "No matching distribution" in str(built.error)
    assert not (tmp_path / "envs" / lock_digest(OLD)).exists()


def test_the_environment_is_rebuilt_with_the_python_it_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    from rnnbench.sweep.nightly import base_interpreter

    assert base_interpreter(None) == sys.executable
    assert base_interpreter(platform.python_version()) == sys.executable
    monkeypatch.setenv("PATH", "")  # no other Python to be found
    assert base_interpreter("2.7.18") is None


# -- what to bisect ----------------------------------------------------------------------------------------


def _verdicts(paired: bool, cases: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "kind": "rnnbench-verdicts", "api_version": 1, "pairing": {"paired": paired}, "machine": MACHINE,
        "night": {}, "counts": {}, "threshold": 0.05,
        "cases": [{"key": k, "verdict": v, "method": m, "base": {"commit": "a" * 40}, "new": {"commit": "b" * 40}}
                  for k, v, m in cases],
    }  # fmt: skip


def test_only_paired_regressions_are_bisected() -> None:
    doc = _verdicts(True, [("k1", "regression", "paired"), ("k2", "same", "paired"), ("k3", "regression", "history")])
    request = regressed_cases(doc)
    assert request is not None and request.keys == ("k1",) and (request.good, request.bad) == ("a" * 40, "b" * 40)
    assert regressed_cases(_verdicts(False, [("k1", "regression", "history")])) is None
    assert regressed_cases(_verdicts(True, [("k2", "same", "paired")])) is None


def test_cli_bisect_args_and_plan_print_shell_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps(_verdicts(True, [("numpy/cpu/x", "regression", "paired")])))
    assert main(["nightly", "bisect-args", str(path)]) == 0
    out = capsys.readouterr().out
    values = _shell_values(out, ["bisect", "good", "bad", "cases"])
    assert values == {"bisect": "1", "good": "a" * 40, "bad": "b" * 40, "cases": "numpy/cpu/x"}
    assert main(["nightly", "plan", str(tmp_path / "no-history-yet"), "--out", str(tmp_path / "plan.json")]) == 0
    values = _shell_values(capsys.readouterr().out, ["paired", "base", "new", "reason"])
    assert values["paired"] == "0" and "first night" in values["reason"] and values["new"] == sys.executable
    assert json.loads((tmp_path / "plan.json").read_text())["paired"] is False


@pytest.mark.skipif(not _git_checkout(), reason="not a git checkout")
def test_cli_plan_without_rebuilding_pairs_by_commit_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RNNBENCH_MACHINE", MACHINE)
    old = packages() | {"some-framework": "1.0"}  # tonight's environment lacks it: the lock changed
    _night(tmp_path, "a" * 40, old)
    assert main(["nightly", "plan", str(tmp_path), "--no-rebuild"]) == 0
    values = _shell_values(capsys.readouterr().out, ["paired", "base", "reason"])
    assert values["paired"] == "1" and values["base"] == "a" * 40  # BASE in tonight's environment
    assert "-some-framework 1.0" in values["reason"] and "paired by commit only" in values["reason"]
    assert not (tmp_path / "envs").exists()


def _shell_values(lines: str, names: list[str]) -> dict[str, str]:
    """What `eval` makes of the lines in bash (the scripts read them so)."""
    script = lines + "".join(f'printf "%s\\0" "${n}"\n' for n in names)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.split("\0")[:-1], strict=True))


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "not-verdicts.json"
    path.write_text("[]")
    assert main(["nightly", "bisect-args", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnbench: error: ") and err.count("\n") == 1, err


# -- ab sides PYTHON@REV and --shard -----------------------------------------------------------------------


@pytest.mark.skipif(not _git_checkout(), reason="not a git checkout")
def test_a_python_at_rev_side_runs_that_revision_with_that_interpreter(tmp_path: Path) -> None:
    stub = stub_interpreter(tmp_path / "py")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    side = resolve_side(f"{stub}@HEAD")
    assert (side.python, side.revision) == (str(Path(stub).absolute()), head)
    # a revision that holds an '@' is still a revision, not an interpreter
    assert resolve_side("HEAD@{0}").revision is not None and resolve_side("HEAD@{0}").python == sys.executable


@pytest.mark.skipif(not _git_checkout(), reason="not a git checkout")
@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("{stub}@no-such-revision-xyz", "is not a git revision"),
        ("{tmp}/no/python@HEAD", "no such interpreter"),
        ("{stub}@", "nothing after '@'"),
        ("{tmp}@HEAD", "is a directory"),
    ],
)
def test_bad_python_at_rev_sides_exit_2_in_one_line_writing_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, needle: str
) -> None:
    stub = stub_interpreter(tmp_path / "py")
    out = tmp_path / "results"
    base = spec.format(stub=stub, tmp=tmp_path)
    assert main(["ab", "--base", base, "--new", stub, *TINY, "--results", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnbench: error: ") and needle in err and err.count("\n") == 1, err
    assert not out.exists()


TINY = ["--framework", "numpy", "--cell", "rnn,gru,lstm", "--batch", "4", "--hidden", "16", "--seq-len", "4"]
# stub sides' samples are drawn, so a short budget and two rounds decide nothing about timing here
STUB_AB = ["--budget", "0.05", "--rounds", "2", "--extra-rounds", "0", "--threads", "1", "--no-progress"]


def _stub_shard(stub: str, shard: Path, k: int, n: int) -> subprocess.CompletedProcess[str] | int:
    return main(["ab", "--base", stub, "--new", stub, *TINY, *STUB_AB, "--shard", f"{k}/{n}", "--resume",
                 "--results", str(shard), "--base-results", str(shard / "paired")])  # fmt: skip


def _docs(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*/*.json"))]


@pytest.mark.slow  # stub sides: worker processes
def test_ab_shards_pair_their_own_cases_resume_and_merge_against_the_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stub = stub_interpreter(tmp_path / "py")
    shards = [tmp_path / f"shard-{k}" for k in (1, 2)]
    for k, shard in enumerate(shards, 1):
        assert _stub_shard(stub, shard, k, 2) == 0
    keys = []
    for shard in shards:
        (new,), (base,) = _docs(shard), _docs(shard / "paired")
        assert new["shard"] == base["shard"] and new["ab"]["other_run_id"] == base["run_id"]
        assert [r["key"] for r in new["records"]] == [r["key"] for r in base["records"]]
        assert {r["status"] for r in new["records"]} == {"ok", "skipped"}  # numpy's train pass: not applicable
        keys.append({r["key"] for r in new["records"] if r["status"] == "ok"})
    assert keys[0] and keys[1] and not keys[0] & keys[1]  # each shard paired its own cases, none twice
    capsys.readouterr()
    # rerun: every case is recorded on both sides, so nothing runs and no document is added
    assert _stub_shard(stub, shards[0], 1, 2) == 0
    assert "every case is recorded on both sides" in capsys.readouterr().err
    assert len(_docs(shards[0])) == 1 and len(_docs(shards[0] / "paired")) == 1
    # both sides' shards merge against the grid their headers record (skipped cases included)
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "new")]) == 0
    assert main(["merge", *(str(s / "paired") for s in shards), "--out", str(tmp_path / "base")]) == 0
    (merged,) = _docs(tmp_path / "new")
    assert {r["key"] for r in merged["records"] if r["status"] == "ok"} == keys[0] | keys[1]
    # both sides in one folder (the same machine and commit): each side's documents count for that side only
    shared = tmp_path / "shared"
    aa = ["ab", "--base", stub, "--new", stub, *TINY, *STUB_AB, "--resume", "--results", str(shared)]
    assert main(aa) == 0 and main(aa) == 0
    assert len(_docs(shared)) == 2 and "every case is recorded on both sides" in capsys.readouterr().err


def _fake_rnnbench(tmp_path: Path, log: Path, verdicts: dict[str, Any] | None = None) -> Path:
    """An `rnnbench` for publish.sh: `verdicts`, `verdicts-render`, `landing` (the verdicts branch's),
    `report` (slow, not ours) and `bisect` (a measurement) are recorded and their outputs made (`verdicts`
    writes `verdicts`); everything else is the real rnnbench."""
    fake = tmp_path / "fake-rnnbench"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\nfrom pathlib import Path\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "args = sys.argv[1:]\n"
        "if args[0] in ('verdicts', 'verdicts-render', 'landing', 'report', 'bisect'):\n"
        f"    with open({str(log)!r}, 'a') as f: f.write(json.dumps(args) + '\\n')\n"
        "    if args[0] == 'bisect': print('first slower commit: planted'); sys.exit(0)\n"
        "    out = Path(args[args.index('--out') + 1])\n"
        "    if args[0] in ('landing', 'report'): out.mkdir(parents=True, exist_ok=True)\n"
        f"    else: out.write_text({json.dumps(verdicts or {})!r} if args[0] == 'verdicts' else '')\n"
        "    sys.exit(0)\n"
        "from rnnbench.cli import main\nsys.exit(main(args))\n"
    )
    fake.chmod(0o755)
    return fake


def _publish(tmp_path: Path, fake: Path, *options: str, **env_extra: str) -> tuple[Path, Path]:
    stub = stub_interpreter(tmp_path / "py")
    shards = [tmp_path / "night" / f"shard-{k}" for k in (1, 2)]
    for k, shard in enumerate(shards, 1):
        assert _stub_shard(stub, shard, k, 2) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNNBENCH_")} | {
        "RNNBENCH": str(fake),
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        **env_extra,
    }
    history, site = tmp_path / "history", tmp_path / "site"
    p = subprocess.run(
        [str(ROOT / "scripts" / "publish.sh"), "--history", str(history), "--site", str(site), *options,
         *map(str, shards)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    return history, site


@pytest.mark.slow  # stub sides, then publish.sh with the verdicts branch's commands stood in for
def test_publish_keeps_the_documents_out_of_the_history_and_judges_the_pair(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    documents = tmp_path / "documents"
    history, site = _publish(tmp_path, _fake_rnnbench(tmp_path, log), "--documents", str(documents))
    # the history holds the columnar night and no run document (a night's JSON is what it must not grow by)
    assert not [p for p in history.rglob("*.json") if json.loads(p.read_text()).get("kind") == "rnnbench-run"]
    assert not (history / "runs").exists() and not (history / "paired").exists()
    # --documents keeps them: DIR/runs/<machine>/ and a paired night's BASE in DIR/paired/<machine>/
    (night,) = (documents / "runs").glob("*/*.json")
    (base,) = (documents / "paired").glob("*/*.json")
    assert base.parent.name == night.parent.name
    night_doc, base_doc = json.loads(night.read_text()), json.loads(base.read_text())
    assert base_doc["run_id"] != night_doc["run_id"]
    # the night in the history carries its document's header: what the next night's plan reads
    ((_, header),) = columnar.newest_documents(history / NIGHTS_DIR)
    assert header["run_id"] == night_doc["run_id"] and header["machine"] == night_doc["machine"]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    (verdicts,) = [c for c in calls if c[0] == "verdicts"]
    i = verdicts.index("--paired")
    assert [Path(p).name for p in verdicts[i + 1 : i + 3]] == [base.name, night.name]  # BASE against NEW
    assert verdicts[1] == str(history / "nights")  # the night (NEW) was imported; BASE never is
    (landing,) = [c for c in calls if c[0] == "landing"]
    assert landing[1] == str(history / "nights") and "--run" not in landing and "--verdicts" in landing
    assert (site / "regressions.txt").exists()
    assert not [c for c in calls if c[0] == "bisect"]  # the bisect budget is off by default


@pytest.mark.slow  # stub sides, then publish.sh with the verdicts branch's commands stood in for
@pytest.mark.skipif(not _git_checkout(), reason="not a git checkout")
def test_publish_bisects_a_paired_nights_regressions_within_its_budget(tmp_path: Path) -> None:
    revs = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD~2", "HEAD"], capture_output=True, text=True)
    if revs.returncode != 0:
        pytest.skip("fewer than three commits")
    good, bad = revs.stdout.split()
    key = "numpy/cpu/rnn/concat/eager/forward/b4/i16/h16/t4/l1/float32"
    doc = _verdicts(True, [(key, "regression", "paired"), ("numpy/cpu/x", "same", "paired")])
    for case in doc["cases"]:
        case["base"], case["new"] = {"commit": good}, {"commit": bad}
    log = tmp_path / "calls.jsonl"
    _, site = _publish(
        tmp_path, _fake_rnnbench(tmp_path, log, doc), RNNBENCH_NIGHTLY_BISECT_BUDGET="5",
        RNNBENCH_NIGHTLY_PRESET="quick", RNNBENCH_NIGHTLY_ARGS="--framework numpy",
    )  # fmt: skip
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    (bisect,) = [c for c in calls if c[0] == "bisect"]
    assert bisect[1:3] == [good, bad] and bisect[bisect.index("--cases") + 1] == key
    assert "numpy/cpu/x" not in bisect and bisect[bisect.index("--preset") + 1] == "quick"
    assert "--framework" in bisect
    assert "first slower commit: planted" in (site / "bisect.txt").read_text()


def _night_env(nightly_args: str, **more: str) -> dict[str, str]:
    """The environment of a tiny real night: this interpreter's rnnbench from this checkout, no asv, and
    none of the caller's RNNBENCH_/SLURM_ settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("RNNBENCH_", "SLURM_"))} | {
        "RNNBENCH": f"{sys.executable} -m rnnbench",
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "RNNBENCH_MACHINE": "nightly",
        "RNNBENCH_NIGHTLY_PRESET": "quick",
        "RNNBENCH_NIGHTLY_ARGS": nightly_args,
        "RNNBENCH_NIGHTLY_ASV": "none",
        **more,
    }


def _kept_environment(history: Path, digest: str) -> Path:
    """An environment of lock `digest` kept in `history` by an earlier night: a wrapper of this interpreter,
    so a real night pairs against it without installing anything; its interpreter."""
    kept = history / "envs" / digest
    python = kept / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (kept / ".rnnbench-env-complete").write_text("")
    return python


@pytest.mark.slow  # a real (tiny) paired night: two numpy workers, one of them in a worktree of HEAD~1
@pytest.mark.skipif(not _git_checkout(), reason="not a git checkout")
def test_nightly_sh_pairs_with_the_previous_nights_commit_in_its_kept_environment(tmp_path: Path) -> None:
    parent = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD~1"], capture_output=True, text=True)
    if parent.returncode != 0:
        pytest.skip("no parent commit")
    old_commit = parent.stdout.strip()
    history = tmp_path / "history"
    env = _night_env(
        "--framework numpy --cell rnn --pass forward --formulation concat,separate --batch 4 --hidden 16 "
        "--seq-len 4 --threads 1",
        RNNBENCH_NIGHTLY_AB_ARGS="--budget 0.05 --rounds 2 --extra-rounds 0",
    )
    # the previous night: the parent commit in an environment whose lock differs from tonight's by one
    # package; that environment is already kept (a wrapper of this interpreter, so nothing is installed)
    # tonight's lock as the night's own interpreter sees it (a fresh process with the night's environment):
    # the pytest process's sys.path can hold distributions the night does not see (as in a fresh-clone CI)
    tonight = json.loads(
        subprocess.run(
            [sys.executable, "-c", "import json; from rnnbench.measure.machine import packages; print(json.dumps(packages()))"],
            env=env, capture_output=True, text=True, check=True, timeout=120,
        ).stdout
    )  # fmt: skip
    old = tonight | {"some-framework": "1.0"}
    machine = {"machine": "nightly", "git_commit": old_commit, "packages": old, "lock_digest": lock_digest(old)}
    write_document(history, new_document(machine, command=["rnnbench", "run"], preset="quick", shard=None))
    stub_python = _kept_environment(history, lock_digest(old))
    out = tmp_path / "night"
    cmd = [str(ROOT / "scripts" / "nightly.sh"), "--shard", "1/1", "--out", str(out), "--history", str(history)]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    shard = out / "shard-1"
    plan = json.loads((shard / "night-plan.json").read_text())
    assert plan["paired"] and plan["base_side"] == f"{stub_python}@{old_commit}"
    assert "-some-framework 1.0" in plan["changes"]
    (new,), (base,) = _docs(shard), _docs(shard / "paired")
    assert base["machine"]["git_commit"] == old_commit and base["ab"]["spec"] == plan["base_side"]
    assert new["machine"]["lock_digest"] == lock_digest(tonight) and new["ab"]["side"] == "new"
    # a rerun (a requeued shard) keeps the plan and finds nothing left to measure
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and "every case is recorded on both sides" in p.stderr, p.stderr[-3000:]
    assert len(_docs(shard)) == 1 and len(_docs(shard / "paired")) == 1


@pytest.mark.slow  # a real (tiny) night: one numpy worker
def test_a_previous_night_that_cannot_be_re_measured_leaves_a_plain_night(tmp_path: Path) -> None:
    history = tmp_path / "history"
    env = _night_env(
        "--framework numpy --cell rnn --pass forward --formulation concat --batch 4 --hidden 16 --seq-len 4 "
        "--threads 1 --budget 0.05 --rounds 1"
    )
    # the previous night names a commit this repository does not have: ab refuses it before writing. Its
    # environment is kept (not rebuilt: a real pip install of every framework is a minute and more that this
    # test does not need; the rebuild has its own test above), so the night gets as far as `ab`
    machine = {"machine": "nightly", "git_commit": "f" * 40, "packages": packages(), "lock_digest": "0" * 16}
    write_document(history, new_document(machine, command=["rnnbench", "run"], preset="quick", shard=None))
    _kept_environment(history, "0" * 16)
    out = tmp_path / "night"
    cmd = [str(ROOT / "scripts" / "nightly.sh"), "--out", str(out), "--history", str(history)]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "could not be re-measured" in p.stderr
    shard = out / "shard-1"
    (night,) = _docs(shard)
    assert "ab" not in night and not (shard / "paired").exists()  # a plain run, nothing half-paired
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    # the rerun stays plain: no second try of ab, and run --resume finds the night done
    assert p.returncode == 0 and "warning" not in p.stderr and "nothing left to run" in p.stderr, p.stderr
