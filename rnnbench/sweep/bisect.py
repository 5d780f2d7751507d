"""`rnnbench bisect`: the first commit between GOOD and BAD where chosen cases got slower.

This module owns the search and the rule that calls one commit good or bad.
The commits are those on the first-parent path from GOOD (excluded) to BAD
(included), oldest first, as `git rev-list --first-parent --ancestry-path`
lists them; each step halves the stretch still in doubt, so 8 commits take 3
steps (asv's `find` searches the same way, `git bisect` too).

Each step is one small paired `ab` (`rnnbench.sweep.ab`): GOOD against the
commit under test, both checked out as temporary worktrees, interleaved over
only the chosen cases. Pairing is the point: on a noisy machine a case's level
moves between runs by more than the regressions worth finding, while within
one interleaved run the two sides differ by a few percent. The step is judged
against GOOD itself, not against the last good step, so the threshold means
the same thing at every step.

A step's verdict (`step_verdict`): `bad` when at least half of the cases came
out slower, `good` when more than half came out not slower (`same` or
`faster`), else `undecided` (too noisy, or flagged busy). An undecided commit
is measured once more with twice the rounds; if it is still undecided it is
skipped, as `git bisect skip` would, and the search continues on the others.

`git bisect run` needs a command that judges the checked-out commit: `check`
(the CLI's `--step`) runs one step of HEAD against GOOD and maps the verdict to
the exit codes it reads (0 good, 1 bad, 125 skip).
"""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from rnnbench.case import Case
from rnnbench.errors import UsageError
from rnnbench.sweep.ab import ABOptions, project_root, run_ab

__all__ = [
    "EXIT_CODES",
    "BisectResult",
    "Step",
    "StepVerdict",
    "bisect",
    "check",
    "commits_between",
    "search",
    "step_verdict",
]

# the verdicts a paired comparison gives a case that say "this case is slower" / "this case is not slower"
_SLOWER = frozenset({"slower", "worse"})
_NOT_SLOWER = frozenset({"same", "faster", "better"})


class StepVerdict(str, Enum):
    """What one step found about the commit under test, against GOOD."""

    GOOD = "good"
    BAD = "bad"
    UNDECIDED = "undecided"


# `git bisect run` reads 0 as good, 1-127 but 125 as bad, 125 as "cannot test this commit"
EXIT_CODES = {StepVerdict.GOOD: 0, StepVerdict.BAD: 1, StepVerdict.UNDECIDED: 125}


@dataclass(frozen=True)
class Step:
    """One measured commit: its verdict and the paired comparison behind it."""

    commit: str
    subject: str
    verdict: StepVerdict
    slower: int  # cases judged slower than GOOD
    not_slower: int  # cases judged the same or faster
    total: int  # cases compared
    busy: int  # cases flagged as measured on a busy machine (no verdict on them)
    comparison: Any  # the `ab` Comparison (its cases carry ratio and interval)
    rounds: int


@dataclass(frozen=True)
class BisectResult:
    """The outcome of a search: the first bad commit (None when BAD itself was not slower)."""

    good: str
    bad: str
    commits: list[str]  # the path GOOD..BAD, oldest first
    first_bad: str | None
    steps: list[Step]
    skipped: list[str]  # commits left undecided after a second try
    # where skips leave the answer ambiguous: every commit that may still be the first bad one
    candidates: list[str]


def step_verdict(verdicts: Sequence[str]) -> tuple[StepVerdict, int, int]:
    """The step rule over the chosen cases' verdicts: (verdict, slower, not slower).

    At least half slower is `bad` (a regression need not reach every chosen case to be the one
    searched for, but must reach most of them); more than half not slower is `good`; otherwise
    too many cases could not be decided for either call to stand.
    """
    slower = sum(v in _SLOWER for v in verdicts)
    not_slower = sum(v in _NOT_SLOWER for v in verdicts)
    n = len(verdicts)
    if n and slower * 2 >= n:
        return StepVerdict.BAD, slower, not_slower
    if n and not_slower * 2 > n:
        return StepVerdict.GOOD, slower, not_slower
    return StepVerdict.UNDECIDED, slower, not_slower


def search(commits: Sequence[str], judge: Callable[[str], StepVerdict]) -> tuple[str | None, list[str], list[str]]:
    """Binary search for the first commit `judge` calls bad, on `commits` (oldest first).

    Assumes, as git bisect does, that every commit after the first bad one is bad too. Returns
    (first bad or None, skipped commits, candidates): without skips the candidates are just the
    first bad commit; with skips, every commit the skips leave in doubt.
    """
    lo, hi = 0, len(commits)  # commits[:lo] are good, commits[hi:] are bad (BAD assumed bad until measured)
    skipped: set[int] = set()
    while lo < hi:
        open_ = [i for i in range(lo, hi) if i not in skipped]
        if not open_:
            break
        mid = min(open_, key=lambda i: (abs(i - (lo + hi - 1) / 2), i))
        verdict = judge(commits[mid])
        if verdict is StepVerdict.BAD:
            hi = mid
        elif verdict is StepVerdict.GOOD:
            lo = mid + 1
        else:
            skipped.add(mid)
    if lo == len(commits):
        return None, [commits[i] for i in sorted(skipped)], []
    # commits[lo:hi] are all skipped (or empty): the first bad one is among them or is commits[hi]
    candidates = [commits[i] for i in range(lo, min(hi + 1, len(commits)))]
    first = commits[hi] if hi < len(commits) and lo == hi else None
    return first, [commits[i] for i in sorted(skipped)], candidates


def _git(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=120, check=False)


def _commit(spec: str, root: Path) -> str:
    found = _git("rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}", root=root)
    if found.returncode != 0 or not found.stdout.strip():
        raise UsageError(f"unknown revision {spec!r} in {root}")
    return found.stdout.strip()


def _check_tree(root: Path) -> None:
    if not (root / ".git").exists():
        raise UsageError(f"bisect needs a git checkout; {root} is not one")
    dirty = _git("status", "--porcelain", "--untracked-files=no", root=root)
    if dirty.returncode != 0 or dirty.stdout.strip():
        raise UsageError(f"the work tree of {root} has uncommitted changes; commit or stash them first")


def commits_between(good: str, bad: str, root: Path | None = None) -> tuple[str, str, list[str]]:
    """(GOOD sha, BAD sha, the first-parent path GOOD..BAD oldest first); UsageError on bad input."""
    root = root or project_root()
    _check_tree(root)
    good_sha, bad_sha = _commit(good, root), _commit(bad, root)
    if good_sha == bad_sha:
        raise UsageError(f"GOOD and BAD are the same commit ({good_sha[:12]})")
    if _git("merge-base", "--is-ancestor", good_sha, bad_sha, root=root).returncode != 0:
        raise UsageError(f"GOOD {good!r} is not an ancestor of BAD {bad!r}")
    listed = _git("rev-list", "--first-parent", "--ancestry-path", "--reverse", f"{good_sha}..{bad_sha}", root=root)
    commits = listed.stdout.split()
    if listed.returncode != 0 or not commits:
        raise UsageError(f"no commits between {good!r} and {bad!r} on BAD's first-parent path")
    return good_sha, bad_sha, commits


def subject(commit: str, root: Path | None = None) -> str:
    """The first line of a commit's message (empty when git cannot say)."""
    out = _git("log", "-1", "--format=%s", commit, root=root or project_root())
    return out.stdout.strip() if out.returncode == 0 else ""


def _step(good: str, commit: str, cases: Sequence[Case], threads: int, opts: ABOptions) -> Step:
    """One paired `ab` of `commit` against GOOD over `cases`, judged by `step_verdict`."""
    result = run_ab(cases, threads, dataclasses.replace(opts, base=good, new=commit))
    cmp = result.comparison
    verdict, slower, not_slower = step_verdict([str(c.verdict) for c in cmp.cases])
    busy = sum(str(c.note).startswith("busy machine") for c in cmp.cases)
    return Step(commit, subject(commit), verdict, slower, not_slower, len(cmp.cases), busy, cmp, opts.rounds)


def check(
    good: str, commit: str, cases: Sequence[Case], threads: int, opts: ABOptions, retry: bool = True
) -> list[Step]:
    """Judge `commit` against GOOD; an undecided step is measured again with twice the rounds.
    Returns the steps taken (one or two); the last one's verdict stands."""
    steps = [_step(good, commit, cases, threads, opts)]
    if retry and steps[-1].verdict is StepVerdict.UNDECIDED:
        more = dataclasses.replace(opts, rounds=opts.rounds * 2)
        steps.append(_step(good, commit, cases, threads, more))
    return steps


def bisect(
    good: str,
    bad: str,
    cases: Sequence[Case],
    threads: int,
    opts: ABOptions,
    on_step: Callable[[Step, int], None] | None = None,
) -> BisectResult:
    """Search GOOD..BAD for the first commit where `cases` got slower against GOOD.

    `on_step(step, n)` is called after each measured step (n: steps so far). When the search
    ends on BAD without having measured it, BAD is measured too: the search assumes BAD is bad,
    and a BAD that is not slower means there is nothing to find.
    """
    if not cases:
        raise UsageError("the grid selects no case to bisect on")
    good_sha, bad_sha, commits = commits_between(good, bad)
    steps: list[Step] = []
    verdicts: dict[str, StepVerdict] = {}

    def judge(commit: str) -> StepVerdict:
        for step in check(good_sha, commit, cases, threads, opts):
            steps.append(step)
            if on_step is not None:
                on_step(step, len(steps))
        verdicts[commit] = steps[-1].verdict
        return steps[-1].verdict

    first, skipped, candidates = search(commits, judge)
    if first == bad_sha and bad_sha not in verdicts and judge(bad_sha) is not StepVerdict.BAD:
        first, candidates = None, []
        if verdicts[bad_sha] is StepVerdict.UNDECIDED:
            skipped = [*skipped, bad_sha]
    return BisectResult(good_sha, bad_sha, commits, first, steps, skipped, candidates)
