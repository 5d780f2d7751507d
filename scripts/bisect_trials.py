"""How reliably `rnnbench bisect` names a planted regression: N trials over a throw-away history.

Builds a git repository holding this checkout's `rnnbench` package: a GOOD commit, then `--commits`
commits, the `--planted`-th of which makes every call of one formulation `--factor` times as long
(through the worker's self-test slowdown, as `RNNBENCH_SELFTEST_SLOWDOWN` does, but committed, so only
that commit and its descendants carry it). Then runs `rnnbench bisect GOOD BAD` over it `--trials`
times with the grid flags given after `--`, and prints, per trial, the commit it named, whether that
is the planted one, its steps and its wall time; last a summary line.

Usage (from the repository root, alone on the machine):
    .venv/bin/python scripts/bisect_trials.py --trials 5 --factor 1.2 -- \
        --framework torch --cell rnn --formulation concat,separate --pass forward
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=bisect-trials", "-c", "user.email=trials@localhost", "-c", "commit.gpgsign=false"]
PLANT = """

_unplanted_factor = selftest_factor


def selftest_factor(formulation: str) -> float:  # planted by scripts/bisect_trials.py
    return {factor} * _unplanted_factor(formulation) if formulation == {formulation!r} else _unplanted_factor(formulation)
"""


def _fail(message: str) -> NoReturn:
    print(f"bisect_trials: {message}", file=sys.stderr)
    raise SystemExit(2)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def build(repo: Path, commits: int, planted: int, factor: float, formulation: str) -> list[str]:
    """The throw-away history; returns [GOOD, c1, ..., cN]."""
    shutil.copytree(ROOT / "rnnbench", repo / "rnnbench", ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "good")
    shas = [_git(repo, "rev-parse", "HEAD")]
    for i in range(1, commits + 1):
        if i == planted:
            with (repo / "rnnbench" / "sweep" / "worker.py").open("a") as f:
                f.write(PLANT.format(factor=factor, formulation=formulation))
        (repo / "NOTES").write_text(f"commit {i}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"commit {i}" + (" (planted)" if i == planted else ""))
        shas.append(_git(repo, "rev-parse", "HEAD"))
    return shas


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--commits", type=int, default=8)
    p.add_argument("--planted", type=int, default=5, help="which commit (1-based) carries the slowdown")
    p.add_argument("--factor", type=float, default=1.2)
    p.add_argument("--formulation", default="concat")
    p.add_argument("grid", nargs=argparse.REMAINDER, help="-- then rnnbench bisect's grid and step flags")
    args = p.parse_args()
    if not 1 <= args.planted <= args.commits or args.trials < 1 or args.factor <= 1:
        _fail("need 1 <= --planted <= --commits, --trials >= 1 and --factor > 1")
    grid = args.grid[1:] if args.grid[:1] == ["--"] else args.grid
    with tempfile.TemporaryDirectory(prefix="bisect-trials-") as tmp:
        repo = Path(tmp) / "repo"
        shas = build(repo, args.commits, args.planted, args.factor, args.formulation)
        want = shas[args.planted]
        env = {**os.environ, "PYTHONPATH": str(repo)}
        right = 0
        for trial in range(1, args.trials + 1):
            cmd = [sys.executable, "-m", "rnnbench", "bisect", shas[0], shas[-1], "--no-progress",
                   "--results", str(Path(tmp) / "results"), *grid]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
            if done.returncode == 2:
                _fail(done.stderr.strip() or "rnnbench bisect exited 2")
            steps = [line for line in done.stdout.splitlines() if line.startswith("step ")]
            named = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()
            ok = f"first slower commit: {want}" in done.stdout
            right += ok
            print(f"trial {trial}: {'RIGHT' if ok else 'WRONG'} in {len(steps)} steps, {wall:.1f} s: {named}")
            for line in steps:
                print(f"    {line}")
            sys.stdout.flush()
        print(f"{right} of {args.trials} trials named the planted commit {want[:12]} (commit {args.planted} of "
              f"{args.commits}, {args.formulation} x{args.factor})")  # fmt: skip


if __name__ == "__main__":
    main()
