"""`scripts/gpu-check.sh`, rehearsed without a GPU: offline, inside its deadline, on the frameworks there are.

A lent GPU machine reaches no network and is lent for minutes, so the check
must be right before it gets there. The rehearsal (`--rehearse`) runs every
stage's plumbing on tiny CPU grids inside a network namespace with no network
(`unshare -n`, root); the other tests give it interpreters that lack
something (wrappers whose `sitecustomize` hides a package from the import
system, the way an interpreter without it would look) or that crash.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rnnbench.analysis.frame import load
from rnnbench.measure.machine import git_state
from tests.hardware import HAS_CUDA

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu-check.sh"
MiB = 2**20
# what may come back from a lent machine: at most 8 files, none of 16 MiB
MAX_FILES, MAX_BYTES = 8, 16 * MiB

# Hides the named top-level packages from every import and from `importlib.util.find_spec` (how
# rnnbench decides a framework is installed): the path finder answers "not found" for them.
HIDING_SITECUSTOMIZE = """
import importlib.machinery, sys
HIDDEN = set({hidden!r})
class _Hiding:
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return self.inner.find_spec(name, path, target)
    def __getattr__(self, attr):
        return getattr(self.inner, attr)
sys.meta_path[:] = [_Hiding(f) if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
"""


def _interpreter(tmp_path: Path, name: str, hidden: tuple[str, ...] = (), crash_on: str | None = None) -> Path:
    """An executable that behaves as this test's Python, less the `hidden` packages; with `crash_on`,
    it kills itself with SIGSEGV when that word is among its arguments (a stage that crashes)."""
    site = tmp_path / f"{name}-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDING_SITECUSTOMIZE.format(hidden=hidden))
    crash = f'case " $* " in *" {crash_on} "*) kill -SEGV $$ ;; esac\n' if crash_on else ""
    wrapper = tmp_path / name
    wrapper.write_text(
        f'#!/bin/sh\n{crash}PYTHONPATH="{site}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def _check(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "RNNBENCH_REQUIRE_CUDA")}
    return subprocess.run(
        [str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def _summary(out: Path) -> str:
    return (out / "summary.txt").read_text()


@pytest.mark.slow
def test_rehearsal_runs_offline_inside_its_deadline_and_files_what_comes_back(tmp_path):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        if os.geteuid() == 0:
            pytest.fail("unshare is missing on a root machine: the offline rehearsal must run here")
        pytest.skip("unshare -n (a namespace with no network) needs root")
    # as a lent machine gets it: the working tree without .git (the commit comes from --commit)
    tree = tmp_path / "tree"
    for part in ("rnnbench", "scripts", "tests"):
        shutil.copytree(REPO / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tree)
    commit = "0123456789abcdef0123456789abcdef01234567"
    out = tmp_path / "out"
    began = time.monotonic()
    # unshare -n: a fresh network namespace with only a downed loopback, so any download or
    # registry call fails; the check must not need one
    proc = subprocess.run(
        ["unshare", "-n", "--", str(tree / "scripts" / "gpu-check.sh"), "--rehearse", "--minutes", "2",
         "--out", str(out), "--python", sys.executable, "--commit", commit],
        capture_output=True, text=True, timeout=300, cwd=tree,
        env={k: v for k, v in os.environ.items() if k != "OUT"} | {"GIT_CEILING_DIRECTORIES": str(tmp_path)},
    )  # fmt: skip
    wall = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the deadline is the script's own promise (2 minutes, each stage stopped in time), not a
    # measured outcome; 30 s above it cover the interpreter starts and the packing
    assert wall < 150, f"the 2-minute rehearsal took {wall:.0f}s"

    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert 0 < len(files) <= MAX_FILES, files
    assert all(p.parent == out for p in files), "everything comes back flat in --out"
    assert all(p.stat().st_size < MAX_BYTES for p in files)
    names = {p.name for p in files}
    assert {
        "summary.txt",
        "fingerprint.json",
        "cuda-tests.xml",
        "runs.tar.gz",
        "ab-aa.tar.gz",
        "gpu-check.log",
    } <= names

    summary = _summary(out)
    assert "rehearsal: no GPU, so skipped for want of one:" in summary
    assert "the CUDA tests (collected, then skipped)" in summary
    for stage in (
        "fingerprint: ok",
        "verify torch eager:",
        "cuda-tests: ok",
        "probes: ok",
        "slice torch eager",
        "ab A/A",
    ):
        assert stage in summary, f"{stage} missing from the summary:\n{summary}"
    assert "FAILED" not in summary
    fingerprint = json.loads((out / "fingerprint.json").read_text())
    machine = fingerprint["machine"]
    assert fingerprint["git_commit"] == commit
    assert f"machine: {machine}" in summary
    # the CUDA tests were collected and every one skipped (no GPU): JUnit says so
    suite = ET.parse(out / "cuda-tests.xml").getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests", 0)) > 0
    assert int(suite.get("skipped", 0)) == int(suite.get("tests", 0))

    with tarfile.open(out / "runs.tar.gz") as tar:
        docs = [m.name for m in tar.getmembers() if m.isfile()]
    assert docs and all(d.startswith(f"runs/{machine}/") and d.endswith(".json") for d in docs)
    with gzip.open(out / "ab-aa.tar.gz") as raw:
        assert raw.read(1)  # a real gzip stream

    # filing: the text files as they are into gpu-check/<machine>/<stamp>-<commit8>/, the run
    # documents into runs/<machine>/, where the report reads every machine's
    results = tmp_path / "results"
    filed = _check("--file", out, "--results", results)
    assert filed.returncode == 0, filed.stderr
    (folder,) = (results / "gpu-check" / machine).iterdir()
    assert {p.name for p in folder.iterdir()} == names - {"runs.tar.gz", "ab-aa.tar.gz"}
    runs = sorted((results / "runs" / machine).glob("*.json"))
    assert len(runs) == len(docs) + 2  # the slice's and the probes' documents, and the A/A pair
    assert all(json.loads(p.read_text())["machine"]["git_commit"] == commit for p in runs)
    frame = load(results / "runs")
    assert set(frame["machine"]) == {machine} and set(frame["commit"]) == {commit} and len(frame) >= len(runs)
    # and the nightly's verdicts and landing page take the filed folder as their history
    site = tmp_path / "site"
    verdicts = subprocess.run(
        [sys.executable, "-m", "rnnbench", "verdicts", str(results), "--out", str(site / "verdicts.json")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert verdicts.returncode == 0, verdicts.stderr
    landing = subprocess.run(
        [sys.executable, "-m", "rnnbench", "landing", str(results), "--out", str(site)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert landing.returncode == 0, landing.stderr
    assert f"<h1>rnnbench nightly: <code>{machine}</code></h1>" in (site / "index.html").read_text()


@pytest.mark.slow
def test_an_interpreter_without_tensorflow_is_one_line_and_the_others_go_on(tmp_path):
    py = _interpreter(tmp_path, "python-no-tf", hidden=("tensorflow",))
    out = tmp_path / "out"
    proc = _check("--rehearse", "--minutes", "2", "--stages", "fingerprint,verify", "--out", out, "--python", py)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if "tensorflow" in line]
    assert lines == [f"gpu-check.sh: tensorflow: not installed in {py}; every stage goes on without it"]
    summary = _summary(out)
    assert "verify torch eager: ok" in summary and "verify jax compiled: ok" in summary
    assert "verify tensorflow" not in summary


def test_an_interpreter_without_numpy_is_refused_in_one_line(tmp_path):
    py = _interpreter(tmp_path, "python-no-numpy", hidden=("numpy",))
    out = tmp_path / "out"
    proc = _check("--rehearse", "--out", out, "--python", py, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"gpu-check.sh: {py} lacks numpy (rnnbench's core needs); nothing was run"]
    assert not out.exists(), "nothing is written for a refused check"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--python", "/no/such/python"], "no interpreter /no/such/python"),
        (["--minutes", "0"], "--minutes must be a whole number from 1 to 60, got 0"),
        (["--minutes", "six"], "--minutes must be a whole number from 1 to 60, got six"),
        (["--stages", "verify,benchmarks"], "--stages: unknown stage benchmarks"),
        (["--bogus"], "unknown argument --bogus"),
        (["--commit", "HEAD; rm -rf /"], "--commit must be a commit sha (7 to 40 hex digits), got HEAD; rm -rf /"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, message):
    proc = _check("--rehearse", "--out", tmp_path / "out", *args, timeout=60)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"gpu-check.sh: {message}")


@pytest.mark.skipif(HAS_CUDA, reason="a GPU is visible here: there is nothing to refuse")
def test_without_a_gpu_the_check_is_refused_unless_rehearsed(tmp_path):
    out = tmp_path / "out"
    proc = _check("--out", out, "--python", sys.executable, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "gpu-check.sh: no NVIDIA GPU visible to NVML or nvidia-smi (--rehearse runs the plumbing without one)"
    ]
    assert not out.exists()


def test_an_out_that_cannot_be_written_is_one_line_and_exit_2(tmp_path):
    # a path below a regular file: mkdir fails for root too (root ignores permission bits)
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "out"
    proc = _check("--rehearse", "--out", out, "--python", sys.executable, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"gpu-check.sh: cannot write to {out}"]


@pytest.mark.slow
def test_a_crashing_stage_is_recorded_and_the_next_stage_still_runs(tmp_path):
    # the wrapper dies of SIGSEGV whenever it runs `rnnbench verify`, as a CUDA fault would
    py = _interpreter(tmp_path, "python-crashing", crash_on="verify")
    out = tmp_path / "out"
    proc = _check("--rehearse", "--minutes", "2", "--stages", "verify,cuda-tests", "--out", out, "--python", py)
    assert proc.returncode == 1
    summary = _summary(out)
    assert "verify torch eager: FAILED, exit 139" in summary
    assert "verify jax compiled: FAILED, exit 139" in summary
    assert "cuda-tests: ok" in summary


def test_filing_refuses_a_tarball_with_paths_outside_runs(tmp_path):
    back = tmp_path / "back"
    back.mkdir()
    (back / "summary.txt").write_text("machine: m1\nstamp: 20260101T000000Z\ncommit: 0123456789abcdef\n")
    (back / "fingerprint.json").write_text("{}")
    evil = tmp_path / "evil.json"
    evil.write_text("{}")
    with tarfile.open(back / "runs.tar.gz", "w:gz") as tar:
        tar.add(evil, arcname="runs/m1/../../../evil.json")
    proc = _check("--file", back, "--results", tmp_path / "results", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"gpu-check.sh: {back}/runs.tar.gz holds files outside runs/m1/; not unpacked"]
    assert not (tmp_path / "results").exists()


def test_the_commit_comes_from_the_environment_where_there_is_no_git(tmp_path, monkeypatch):
    # a lent machine gets the working tree without .git; gpu-check.sh --commit passes the commit on
    monkeypatch.setenv("RNNBENCH_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # so git does not find an enclosing repo
    assert git_state(tmp_path) == ("0123456789abcdef0123456789abcdef01234567", False)
    monkeypatch.delenv("RNNBENCH_GIT_COMMIT")
    assert git_state(tmp_path) == (None, False)


def test_an_interrupted_verify_still_prints_what_it_verified(monkeypatch, capsys):
    # gpu-check.sh stops a verify call at its share of the deadline with SIGINT; the cases it
    # finished must not be lost with it. The third case "takes too long": it raises as SIGINT would.
    from rnnbench.cli import verify
    from rnnbench.sweep.grid import PRESETS, override

    real, calls = verify._verify_case, []

    def third_interrupts(case, skipped, quiet):
        calls.append(case)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(case, skipped, quiet)

    monkeypatch.setattr(verify, "_verify_case", third_interrupts)
    grid = override(PRESETS["verify"], frameworks=["numpy"], cells=["lstm"], layers=[1], passes=["forward"])
    with pytest.raises(KeyboardInterrupt):
        verify.verify_grid(grid, quiet=False)
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if line.startswith("numpy ")]) == 2
    assert "2 passed, 0 failed" in out
    cases = len(verify.expand(grid)[0])
    assert cases >= 3
    assert f"interrupted after 2 of {cases} cases; the rest were not verified" in out
