"""The runner's process lifecycle: failures in later rounds, peak probe retries, poisoned workers,
workers that die with their parent, locks, stale files, and a run that is already finished."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnbench.case import Case
from rnnbench.cli import main
from rnnbench.measure.machine import fingerprint
from rnnbench.measure.timing import TimingConfig
from rnnbench.sweep import runner
from rnnbench.sweep.memory import case_bytes, check_fits
from rnnbench.sweep.runner import RunOptions, run_cases
from rnnbench.sweep.store import RunWriter, clean_stale, live_writers, read_document, validate
from rnnbench.sweep.worker import is_poisoning
from tests.faulty_worker import faulty_worker

FAST = TimingConfig(budget_s=0.02, warmup_budget_s=0.01, min_samples=3)
REPO = Path(__file__).resolve().parents[1]


def _case(hidden: int, formulation: str = "separate") -> Case:
    return Case(framework="numpy", formulation=formulation, hidden=hidden, input_size=4, batch=2, seq_len=3)


def _opts(tmp_path: Path, **kw) -> RunOptions:
    base = dict(threads=1, timing=FAST, peak_timing=FAST, timeout_s=20, progress=False, worker_target=faulty_worker)
    return RunOptions(tmp_path, **(base | kw))


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (read from /proc; zombies count as gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    deadline = time.time() + timeout
    while alive(pids) and time.time() < deadline:
        time.sleep(0.05)
    return alive(pids)


def test_a_failure_in_a_later_round_fails_the_case_and_keeps_the_earlier_samples(tmp_path):
    cases = [_case(8), _case(29), _case(9)]
    writer = run_cases(cases, fingerprint(1), _opts(tmp_path, rounds=2))
    by_hidden = {r["hidden"]: r for r in read_document(writer.path)["records"]}
    bad = by_hidden[29]
    assert bad["status"] == "failed" and bad["failed_round"] == 2
    assert bad["error"].startswith("round 2: worker process died (exit code 5)")
    assert bad["rounds"] == 1 and len(bad["samples_s"]) >= 3 and bad["median_s"] > 0
    for h in (8, 9):
        assert by_hidden[h]["status"] == "ok" and by_hidden[h]["rounds"] == 2 and "failed_round" not in by_hidden[h]
    validate(read_document(writer.path))


def test_a_poisoned_worker_is_replaced_and_the_group_goes_on(tmp_path):
    assert is_poisoning("RuntimeError: CUDA error: an illegal memory access was encountered")
    assert is_poisoning("RuntimeError: CUDA error: device-side assert triggered")
    assert not is_poisoning("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert not is_poisoning("FloatingPointError: injected failure inside the kernel")
    cases = [_case(8), _case(23), _case(9), _case(10, "concat")]
    writer = run_cases(cases, fingerprint(1), _opts(tmp_path, rounds=2))
    by_hidden = {r["hidden"]: r for r in read_document(writer.path)["records"]}
    assert by_hidden[23]["status"] == "failed"
    assert "illegal memory access" in by_hidden[23]["error"] and "(worker replaced)" in by_hidden[23]["error"]
    assert "poisoned" not in by_hidden[23]
    # in the poisoned process every later case would have failed; a fresh worker measures them
    for h in (8, 9, 10):
        assert by_hidden[h]["status"] == "ok" and by_hidden[h]["rounds"] == 2, by_hidden[h]["error"]


def test_a_failed_peak_probe_is_retried_once_in_a_fresh_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_FAULTY_PEAK", f"{tmp_path / 'count'}:1")
    writer = run_cases([_case(8)], fingerprint(1), _opts(tmp_path / "r", rounds=1))
    assert (tmp_path / "count").read_text() == "2"  # the failed probe and its retry
    assert "peak_failures" not in read_document(writer.path) and len(read_document(writer.path)["peaks"]) == 1
    (rec,) = read_document(writer.path)["records"]
    assert rec["status"] == "ok" and rec["peak_fraction"] > 0


def test_a_peak_probe_that_fails_twice_is_in_the_summary_and_the_exit_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNBENCH_FAULTY_PEAK", f"{tmp_path / 'count'}:2")
    real = runner.run_cases
    monkeypatch.setattr(
        runner,
        "run_cases",
        lambda cases, machine, opts, **kw: real(
            cases, machine, dataclasses.replace(opts, worker_target=faulty_worker), **kw
        ),
    )
    argv = ["run", "--framework", "numpy", "--cell", "rnn", "--formulation", "concat", "--batch", "2"]
    argv += ["--hidden", "8", "--seq-len", "3", "--budget", "0.05", "--rounds", "1", "--no-progress"]
    code = main([*argv, "--threads", "1", "--results", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 1
    assert "PEAK FAILED numpy/cpu/float32" in out and "1 peak probe(s) failed" in out
    doc = read_document(next((tmp_path / "r").glob("runs/*/*.json")))
    assert [p["dtype"] for p in doc["peak_failures"]] == ["float32"]
    assert all(r["peak_fraction"] is None for r in doc["records"])
    assert any(r["status"] == "ok" for r in doc["records"])


_HOLDER = """
import sys, time
from pathlib import Path
from rnnbench.case import Case
from rnnbench.measure.timing import TimingConfig
from rnnbench.measure.machine import fingerprint
from rnnbench.sweep.runner import RunOptions, run_cases
from tests.faulty_worker import faulty_worker
case = Case(framework="numpy", hidden=17, input_size=4, batch=2, seq_len=3)  # 17: the worker hangs
fast = TimingConfig(budget_s=0.02, warmup_budget_s=0.01, min_samples=3)
opts = RunOptions(Path(sys.argv[1]), threads=1, timing=fast, peak_timing=fast, timeout_s=3600, progress=False,
                  worker_target=faulty_worker)
run_cases([case], fingerprint(1), opts)
"""


def _start_holder(results: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _HOLDER, str(results)], cwd=REPO, env={**os.environ})


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_workers_die_with_their_parent_and_resume_refuses_a_live_run(tmp_path, capsys):
    results = tmp_path / "r"
    holder = _start_holder(results)
    try:
        # the worker hangs in its case: the run stays live, its document locked
        _wait_for(lambda: bool(descendants(holder.pid)) and bool(list(results.glob("runs/*/*.json"))))
        _wait_for(lambda: bool(live_writers(results, fingerprint(1)["machine"])))
        workers = descendants(holder.pid)
        base = ["run", "--framework", "numpy", "--cell", "rnn", "--batch", "2", "--hidden", "8", "--seq-len", "3"]
        code = main([*base, "--resume", "--results", str(results), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "is still writing" in err and str(holder.pid) in err
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert wait_gone(workers) == set(), "a worker outlived its parent"
    finally:
        holder.kill()
        holder.wait()
    assert live_writers(results, fingerprint(1)["machine"]) == []  # the kernel dropped the dead run's lock


@pytest.mark.parametrize(
    ("platform", "poll_s"),
    [
        ("darwin", 0.05),
        pytest.param("linux", 3600.0, marks=pytest.mark.skipif(sys.platform != "linux", reason="prctl")),
    ],
    ids=["pid-poll-only", "prctl-only"],
)
def test_each_mechanism_alone_ends_an_orphaned_worker(platform: str, poll_s: float, tmp_path: Path) -> None:
    # a middle process starts a grandchild that relies on one mechanism only, then dies
    ready = tmp_path / "ready"
    grandchild = (
        f"import sys, time; from pathlib import Path; from rnnbench.sweep import worker; sys.platform = {platform!r}; "
        f"worker.die_with_parent(int(sys.argv[1]), poll_s={poll_s}); Path(sys.argv[2]).touch(); time.sleep(60)"
    )
    middle = (
        "import os, subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}, str(os.getpid()), {str(ready)!r}]); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    m = subprocess.Popen([sys.executable, "-c", middle], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert m.stdout is not None
    pid = int(m.stdout.readline())
    # the middle dies only once the grandchild's mechanism is armed: a fixed pause (it was 1 s) let a loaded
    # machine kill the middle while the grandchild still imported, so its own start-up check ended it and
    # the mechanism under test never ran
    _wait_for(ready.exists)
    assert alive({pid})
    m.kill()
    m.wait()
    assert wait_gone({pid}, 10) == set()


def test_stale_temporary_and_lock_files_are_cleaned_but_not_a_live_writers(tmp_path):
    machine = fingerprint(1)
    folder = tmp_path / "runs" / machine["machine"]
    folder.mkdir(parents=True)
    (folder / "20260101T000000-deadbeef-00000000.json").write_text("{}")
    stale = [folder / ".20260101T000000-deadbeef-00000000.json.x1y2.tmp", folder / ".gone.json.abc.tmp"]
    stale_lock = folder / ".20260101T000000-deadbeef-00000000.json.lock"
    for p in [*stale, stale_lock]:
        p.write_text("1")
    live = RunWriter(tmp_path, machine, command=[], preset=None, shard=None)
    try:
        for p in [*stale, stale_lock]:
            assert not p.exists(), p
        mine = folder / f".{live.path.name}.zz.tmp"
        mine.write_text("in flight")
        clean_stale(folder)
        assert mine.exists()  # its writer holds the lock
    finally:
        live.close()
    clean_stale(folder)
    assert not mine.exists()
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


def test_resume_of_a_finished_run_writes_nothing(tmp_path, capsys):
    argv = ["run", "--framework", "numpy", "--cell", "rnn", "--formulation", "concat,separate", "--batch", "2"]
    argv += ["--hidden", "8", "--seq-len", "3", "--budget", "0.05", "--rounds", "1", "--no-progress"]
    argv += ["--threads", "1", "--results", str(tmp_path)]
    assert main(argv) == 0
    docs = sorted(tmp_path.glob("runs/*/*.json"))
    assert len(docs) == 1
    before = docs[0].read_bytes()
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    assert "nothing left to run" in capsys.readouterr().err
    assert sorted(tmp_path.glob("runs/*/*.json")) == docs and docs[0].read_bytes() == before
    assert [p.name for p in docs[0].parent.iterdir() if p.name.startswith(".")] == []


def test_the_memory_estimate_refuses_only_what_cannot_fit():
    small = Case(framework="numpy", hidden=64, input_size=64, batch=16, seq_len=32, pass_="train", cell="lstm")
    # the float64 weights alone: 4 gates x H x (I + H)
    assert case_bytes(small) >= 8 * 4 * 64 * 128
    check_fits([small], available=2**30)
    huge = small.replace(hidden=10**6)
    with pytest.raises(Exception, match=r"needs at least .* of memory"):
        check_fits([small, huge], available=2**40)
    assert json.dumps(case_bytes(huge))  # a plain int
