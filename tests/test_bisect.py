"""`rnnbench bisect`: the step rule and the search on controlled inputs; bad input exits 2 writing nothing;
end to end in a throw-away repository of 8 commits with a planted slowdown, alone and under `git bisect run`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from rnnbench.sweep.bisect import StepVerdict, search, step_verdict

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
# two tiny numpy cases: concat (slowed in the planted commits) and separate (never slowed)
TINY = ["--framework", "numpy", "--cell", "rnn", "--formulation", "concat,separate", "--batch", "2",
        "--hidden", "8", "--seq-len", "3", "--pass", "forward"]  # fmt: skip
# Why these runs cannot flake on a busy machine: the planted commits make every concat call 4x as long
# (the worker spins for the extra time), against a +-50% band; an unchanged case's paired ratio on this
# VM stays within a few percent of 1, far inside the band, and a 4x one far outside it.
FAST = ["--threshold", "50%", "--rounds", "2", "--extra-rounds", "1", "--budget", "0.2", "--no-progress"]
PLANT = """

_unplanted_factor = selftest_factor


def selftest_factor(formulation: str) -> float:  # planted by tests/test_bisect.py: concat 4x as slow
    return 4.0 * _unplanted_factor(formulation) if formulation == "concat" else _unplanted_factor(formulation)
"""


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["slower", "same"], StepVerdict.BAD),  # half the chosen cases slower is enough
        (["slower", "same", "same", "same"], StepVerdict.GOOD),  # 3 of 4 not slower
        (["slower", "too noisy", "same", "same"], StepVerdict.UNDECIDED),  # 2 of 4: neither call stands
        (["too noisy", "too noisy", "same"], StepVerdict.UNDECIDED),
        (["faster", "same", "better"], StepVerdict.GOOD),
        (["worse", "too noisy", "too noisy"], StepVerdict.UNDECIDED),
        ([], StepVerdict.UNDECIDED),
    ],
)
def test_step_rule(verdicts: list[str], expected: StepVerdict) -> None:
    assert step_verdict(verdicts)[0] is expected


@pytest.mark.parametrize("first_bad", range(9))
def test_search_finds_every_position_in_log2_steps(first_bad: int) -> None:
    commits = [f"c{i}" for i in range(8)]
    judged: list[str] = []

    def judge(c: str) -> StepVerdict:
        judged.append(c)
        return StepVerdict.BAD if int(c[1:]) >= first_bad else StepVerdict.GOOD

    found, skipped, _ = search(commits, judge)
    assert found == (commits[first_bad] if first_bad < 8 else None)
    assert not skipped and len(judged) <= 4 and len(set(judged)) == len(judged)


def test_search_steps_around_an_undecided_commit_and_says_where_doubt_remains() -> None:
    commits = [f"c{i}" for i in range(8)]

    def judge(c: str) -> StepVerdict:
        i = int(c[1:])
        return StepVerdict.UNDECIDED if i in (4, 5) else StepVerdict.BAD if i >= 5 else StepVerdict.GOOD

    found, skipped, candidates = search(commits, judge)
    assert found is None and set(skipped) == {"c4", "c5"} and candidates == ["c4", "c5", "c6"]

    def judge_one_skip(c: str) -> StepVerdict:
        return StepVerdict.UNDECIDED if c == "c3" else StepVerdict.BAD if int(c[1:]) >= 5 else StepVerdict.GOOD

    assert search(commits, judge_one_skip)[0] == "c5"  # a skip away from the boundary costs nothing


def _git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def _repo(tmp_path: Path, n: int, planted: int | None) -> tuple[Path, list[str]]:
    """A repository holding this checkout's package: a GOOD commit, then `n` commits, the `planted`-th
    (1-based) adding the slowdown; returns (repo, [GOOD, c1, ..., cn])."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "rnnbench", repo / "rnnbench", ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "good")
    shas = [_git(repo, "rev-parse", "HEAD")]
    for i in range(1, n + 1):
        if i == planted:
            with (repo / "rnnbench" / "sweep" / "worker.py").open("a") as f:
                f.write(PLANT)
        (repo / "NOTES").write_text(f"commit {i}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"commit {i}" + (" (slow)" if i == planted else ""))
        shas.append(_git(repo, "rev-parse", "HEAD"))
    return repo, shas


def _rnnbench(repo: Path, args: Sequence[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The CLI of the throw-away repository (so `bisect` works on its history), run from its root."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run(
        [sys.executable, "-m", "rnnbench", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout
    )


def _one_line_exit_2(p: subprocess.CompletedProcess[str], needle: str) -> None:
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("rnnbench: error: ") and p.stderr.count("\n") == 1 and needle in p.stderr, p.stderr


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    repo, shas = _repo(tmp_path, 2, None)
    out = tmp_path / "results"
    base = ["--results", str(out), *TINY]
    _one_line_exit_2(_rnnbench(repo, ["bisect", "no-such-rev", "HEAD", *base]), "unknown revision 'no-such-rev'")
    _one_line_exit_2(_rnnbench(repo, ["bisect", "HEAD", shas[0], *base]), "is not an ancestor of BAD")
    _one_line_exit_2(_rnnbench(repo, ["bisect", "HEAD", "HEAD", *base]), "the same commit")
    _one_line_exit_2(
        _rnnbench(repo, ["bisect", shas[0], "HEAD", "--results", str(out), *TINY, "--batch", "2", "--cases", "x/y"]),
        "is not in the grid",
    )
    _one_line_exit_2(
        _rnnbench(repo, ["bisect", shas[0], "HEAD", "--results", str(out), "--framework", "numpy", "--pass", "train",
                         "--formulation", "native"]),
        "selects no case",
    )  # fmt: skip
    (repo / "NOTES").write_text("dirty\n")
    _one_line_exit_2(_rnnbench(repo, ["bisect", shas[0], "HEAD", *base]), "uncommitted changes")
    assert not out.exists()
    assert "worktree" not in _git(repo, "worktree", "list").split("\n", 1)[-1]  # no step was started


def _judged(stdout: str) -> dict[str, str]:
    """commit (12 hex) -> the last verdict its steps printed."""
    verdicts = {}
    for line in stdout.splitlines():
        if line.startswith("step "):
            verdicts[line.split()[2]] = line.rsplit("-> ", 1)[1]
    return verdicts


@pytest.mark.slow  # three paired ab steps, each two checkouts and two numpy workers
def test_bisect_names_the_planted_commit_among_8(tmp_path: Path) -> None:
    repo, shas = _repo(tmp_path, 8, planted=5)
    p = _rnnbench(repo, ["bisect", shas[0], shas[-1], *TINY, *FAST, "--results", str(tmp_path / "results")])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "8 commits after" in p.stdout
    judged = _judged(p.stdout)
    # every commit before the planted one that got a verdict was called good, every later one bad
    for i, sha in enumerate(shas[1:], 1):
        assert judged.get(sha[:12], "good" if i < 5 else "bad") in ("good" if i < 5 else "bad", "undecided"), p.stdout
    if "undecided" not in judged.values():
        assert f"first slower commit: {shas[5]} commit 5 (slow)" in p.stdout, p.stdout
        assert len(judged) == 3, p.stdout  # log2(8) steps
    else:
        # a busy moment on the machine leaves a step without a verdict (the busy rule); the commits it
        # leaves in doubt are named, and the planted one is among them
        assert shas[5][:12] in p.stdout.splitlines()[-1], p.stdout


@pytest.mark.slow  # git bisect run: two paired ab steps
def test_step_mode_drives_git_bisect_run(tmp_path: Path) -> None:
    repo, shas = _repo(tmp_path, 4, planted=3)
    _git(repo, "bisect", "start", shas[-1], shas[0])
    env = {**os.environ, "PYTHONPATH": str(repo)}
    p = subprocess.run(
        [*GIT, "bisect", "run", sys.executable, "-m", "rnnbench", "bisect", shas[0], "HEAD", "--step", *TINY, *FAST,
         "--results", str(tmp_path / "results")],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if "only 'skip'ped commits left" in p.stdout:
        # a busy moment on the machine left a step without a verdict (the busy rule): `--step` exits 125, git
        # skips that commit, and when nothing else is left it names the commits in doubt: the planted one is
        # among them unless a step called a commit before it bad, or the planted one good
        doubt = p.stdout.split("The first bad commit could be any of:", 1)[1].split("We cannot bisect more", 1)[0]
        assert shas[3] in doubt, p.stdout
    else:
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"{shas[3]} is the first bad commit" in p.stdout, p.stdout
