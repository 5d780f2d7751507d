"""`rnnbench run` killed, interrupted and starved of disk, as a person or a CI runner would do it.

- 20 SIGKILLs of the runner at random moments, each followed by `--resume`:
  every case ends up recorded exactly once, every document stays valid, and no
  process of any trial outlives it (each trial's processes carry a marker in
  their environment, searched for in /proc).
- 20 Ctrl-Cs typed into a pseudo-terminal (the terminal driver sends SIGINT to
  the whole foreground process group, workers included): one line, exit 130,
  no traceback, finished cases kept, no process left.
- A full disk (a 96 KiB tmpfs, mounted as root): a one-line error, exit 2, the
  document on disk still valid, no temporary file left. Skipped, with the
  reason, where mounting is not permitted.

Run: `PYTHONPATH=$PWD python -m pytest -q -m slow tests/test_interrupts.py`.
"""

from __future__ import annotations

import json
import os
import pty
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rnnbench.sweep.store import iter_documents, read_document, validate

REPO = Path(__file__).resolve().parents[1]
TRIALS = 20
# 3 cells x 3 formulations x 2 batch sizes x 2 hidden sizes = 36 cases
GRID = ["--framework", "numpy", "--cell", "rnn,gru,lstm", "--batch", "2,4", "--hidden", "8,16", "--seq-len", "4"]
# rounds enough to keep a run going for 10 s or more (tiny cases stop sampling early, whatever the budget):
# documents reach the disk every 2 s, and a Ctrl-C timed from the first record on disk must land inside the run.
# Not a bet on the machine's speed: each of the 36 x 12 case-rounds takes at least 5 samples (15 split over
# the rounds) of at least 1 ms (the engine's min_sample_s), so the rounds alone last over 2 s on any machine,
# and a Ctrl-C comes at most 1 s after round 1's records reach the disk (or 2.5 s after the document appears,
# before the peak probe and the warm-up pass of 36 builds); a loaded machine only adds time
GRID += ["--budget", "0.1", "--rounds", "12", "--threads", "1", "--no-progress"]
N_CASES = 36

# the start-of-run warning of a loaded machine (the suite itself loads it) is not part of the error
BUSY_WARNING = "rnnbench: warning: busy machine:"


def _env(marker: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RNNBENCH_TEST_MARKER": marker}


def marked(marker: str) -> list[int]:
    """Live processes (not zombies) whose environment carries `marker`."""
    needle = f"RNNBENCH_TEST_MARKER={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if needle not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry))
    return found


def wait_none_marked(marker: str, timeout: float = 10.0) -> list[int]:
    deadline = time.time() + timeout
    while (left := marked(marker)) and time.time() < deadline:
        time.sleep(0.05)
    return left


def recorded_keys(results: Path) -> list[str]:
    return [r["key"] for _, doc in iter_documents(results) for r in doc["records"] if r["status"] != "skipped"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find leftover processes")
def test_random_sigkills_then_resume_lose_and_duplicate_nothing(tmp_path):
    rng = random.Random(12)
    results = tmp_path / "results"
    killed_mid_run = 0
    for trial in range(TRIALS):
        marker = uuid.uuid4().hex
        argv = [sys.executable, "-m", "rnnbench", "run", *GRID, "--results", str(results)]
        p = subprocess.Popen(
            [*argv, *(["--resume"] if trial else [])],
            cwd=REPO,
            env=_env(marker),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 2.5))
        killed_mid_run += p.poll() is None
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert wait_none_marked(marker) == [], f"trial {trial}: a process outlived the killed run"
        for path, doc in iter_documents(results):  # every document on disk is whole
            validate(doc)
            assert path.read_text().endswith("\n")
        keys = recorded_keys(results)
        assert len(keys) == len(set(keys)), f"trial {trial}: a case was recorded twice"
    # kills landed while runs were working, not after they ended: a trial's run lasts seconds until every case
    # is recorded (see GRID), and a loaded machine makes runs longer, so more kills land mid-run, never fewer
    assert killed_mid_run >= TRIALS // 4
    marker = uuid.uuid4().hex
    done = subprocess.run(
        [sys.executable, "-m", "rnnbench", "run", *GRID, "--results", str(results), "--resume"],
        cwd=REPO,
        env=_env(marker),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    keys = recorded_keys(results)
    assert len(keys) == len(set(keys)) == N_CASES
    assert not list(results.glob("runs/*/.*")), "a temporary or lock file was left behind"
    assert marked(marker) == []


def _records_on_disk(results: Path) -> int:
    try:
        return sum(len(doc["records"]) for _, doc in iter_documents(results))
    except OSError:
        return 0


def _interrupt_in_a_terminal(results: Path, delay: float, marker: str, after_records: int) -> tuple[int, str]:
    """Start `rnnbench run` on a pseudo-terminal, type Ctrl-C `delay` s after its document appears
    holding `after_records` records; (exit code, terminal output)."""
    argv = [sys.executable, "-m", "rnnbench", "run", *GRID, "--results", str(results), "--resume"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        # as a terminal's shell starts a command: SIGINT at its default and unblocked, whatever this
        # test process holds. An ignored SIGINT survives fork and exec: a suite started as a background
        # job of a non-interactive shell (`cmd &`, which ignores SIGINT) made this run ignore the Ctrl-C
        # and finish with exit 0 (two fresh-clone `bash .ci/run` launched that way, 2026-12-07)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.chdir(REPO)
        os.execve(sys.executable, argv, _env(marker))
    out = b""
    try:
        # Ctrl-C once the run is under way (its document exists): a Ctrl-C in the interpreter's own
        # start-up, before any rnnbench code runs, is Python's to report (see docs/reliability.md)
        started = time.time() + 120
        while time.time() < started and not (
            list(results.glob("runs/*/*.json")) and _records_on_disk(results) >= after_records
        ):
            out += _read_available(fd, 0.02)
        deadline = time.time() + delay
        while time.time() < deadline:
            out += _read_available(fd, deadline - time.time())
        os.write(fd, b"\x03")  # the terminal's intr character: SIGINT to the foreground process group
        end = time.time() + 60
        while time.time() < end:
            chunk = _read_available(fd, 0.2)
            out += chunk
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                out += _read_available(fd, 0.2)
                return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError(f"not ended 60 s after Ctrl-C: {out[-2000:]!r}")
    finally:
        os.close(fd)


def _read_available(fd: int, timeout: float) -> bytes:
    import select

    ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    if not ready:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal
        time.sleep(min(0.05, max(0.0, timeout)))
        return b""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="pty and /proc")
def test_ctrl_c_in_a_terminal_is_one_line_exit_130_and_keeps_finished_cases(tmp_path):
    rng = random.Random(7)
    kept = 0
    for trial in range(TRIALS):
        # a fresh folder each time, so every trial interrupts a run that has most of its grid to go
        results = tmp_path / f"results-{trial}"
        marker = uuid.uuid4().hex
        # even trials: during start-up (worker spawn, peak probe); odd ones: among the cases
        after = 0 if trial % 2 == 0 else 1
        code, out = _interrupt_in_a_terminal(results, rng.uniform(0.0, 2.5 if after == 0 else 1.0), marker, after)
        lines = [ln.replace("^C", "").strip() for ln in out.replace("\r", "\n").split("\n")]
        lines = [ln for ln in lines if ln and not ln.startswith(("rnnbench: --resume:", BUSY_WARNING))]
        assert code == 130, (trial, out)
        assert "Traceback" not in out and "KeyboardInterrupt" not in out and "BrokenPipe" not in out, out
        assert lines == ["rnnbench: interrupted"], out
        assert wait_none_marked(marker) == [], f"trial {trial}: a process outlived the interrupted run"
        docs = [doc for _, doc in iter_documents(results)]
        for doc in docs:
            validate(doc)
            assert doc["finished"] is None
        keys = recorded_keys(results)
        # `finished` is None above: the Ctrl-C landed mid-run (maybe in round 2 or 3, every case recorded once)
        assert len(keys) == len(set(keys)) <= N_CASES
        assert len(keys) >= after  # what had finished before the Ctrl-C is still there
        kept += len(keys)
    assert kept >= TRIALS // 2


def _mount_tmpfs(where: Path, size: str) -> str | None:
    """None once mounted, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return None if done.returncode == 0 else f"mount not permitted here: {done.stderr.decode().strip()}"


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_the_document_valid(tmp_path):
    disk = tmp_path / "disk"
    # fills in a later round: the document grows to ~270 KB, and each write needs room beside its old copy
    why = _mount_tmpfs(disk, "192k")
    if why:
        pytest.skip(why)
    try:
        marker = uuid.uuid4().hex
        p = subprocess.run(
            [sys.executable, "-m", "rnnbench", "run", *GRID, "--results", str(disk), "--rounds", "1"],
            cwd=REPO,
            env=_env(marker),
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith(BUSY_WARNING)]
        assert p.returncode == 2, p.stderr
        assert "Traceback" not in p.stderr
        assert len(lines) == 1 and lines[0].startswith("rnnbench: error: cannot write "), p.stderr
        assert "No space left on device" in lines[0] and str(disk) in lines[0]
        (doc_path,) = disk.glob("runs/*/*.json")
        doc = read_document(doc_path)
        validate(doc)
        # the disk filled mid-run (perhaps in round 2 or 3, with every case recorded once): what is there is whole
        assert 0 < len(doc["records"]) <= N_CASES and doc["finished"] is None
        assert not list(disk.glob("runs/*/.*.tmp")), "a temporary file was left on the full disk"
        assert marked(marker) == []
        json.loads(doc_path.read_text())
        # the other writers on the same full disk: one line, exit 2, no partial table
        source = tmp_path / "source"
        source.mkdir()
        (source / "run.json").write_text(doc_path.read_text())
        try:  # take what the run left free
            with open(disk / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass
        for argv, partial in (
            (["export", str(source), "--out", str(disk / "all.csv")], "*.csv"),
            (["report", str(source), "--out", str(disk / "site"), "-q"], "site/*.html"),
        ):
            q = subprocess.run(
                [sys.executable, "-m", "rnnbench", *argv], cwd=REPO, capture_output=True, text=True, timeout=300
            )
            lines = [ln for ln in q.stderr.splitlines() if ln.strip() and not ln.startswith(BUSY_WARNING)]
            assert q.returncode == 2 and "Traceback" not in q.stderr, q.stderr
            assert len(lines) == 1 and "No space left on device" in lines[0], q.stderr
            assert not list(disk.glob(partial)) and not list(disk.rglob(".*.tmp")) and not list(disk.rglob(".*.csv"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)
