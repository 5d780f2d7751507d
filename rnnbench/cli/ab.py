"""`rnnbench ab --base X --new Y`: two environments or revisions, interleaved, judged paired (see `rnnbench.sweep.ab`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from rnnbench.analysis.render import format_comparison
from rnnbench.cli.compare import FORMATS
from rnnbench.cli.options import (
    add_budget_flags,
    add_grid_flags,
    add_threshold_flag,
    grid_from_args,
    int_range,
    nonempty,
    output_dir,
    shard_spec,
    threads,
)
from rnnbench.cli.run import WARMUP_BUDGET_S, default_results_dir
from rnnbench.errors import UsageError
from rnnbench.measure.machine import gpu_info
from rnnbench.measure.timing import TimingConfig
from rnnbench.sweep.ab import BUDGET_S, EXTRA_ROUNDS, ROUNDS, ABOptions, NothingLeft, run_ab
from rnnbench.sweep.grid import expand, select_shard
from rnnbench.sweep.memory import check_fits

__all__ = ["ab_options", "add_parser", "run"]


def ab_options(args: argparse.Namespace, base: str, new: str) -> ABOptions:
    """The options every paired sweep's flags give (`ab`, and each step of `bisect`): the grid's budget,
    rounds, threshold and where the documents go."""
    return ABOptions(
        base=base,
        new=new,
        results_dir=Path(args.results) if args.results is not None else default_results_dir(),
        threads=args.threads or os.cpu_count() or 1,
        # the per-case budget and minimum sample count are split across the rounds, and the warm-up is
        # `run`'s, so each side of a paired night warms and samples as a plain night's run does
        timing=TimingConfig(
            budget_s=args.budget / args.rounds,
            min_samples=max(5, -(-15 // args.rounds)),
            warmup_budget_s=WARMUP_BUDGET_S,
        ),
        rounds=args.rounds,
        extra_rounds=args.extra_rounds,
        threshold=args.threshold,
        timeout_s=args.timeout,
        progress=not args.no_progress,
        command=["rnnbench", *sys.argv[1:]],
        preset=args.preset,
    )


def run(args: argparse.Namespace) -> int:
    grid = grid_from_args(args)
    if "cuda" in grid.devices and not gpu_info()["gpu_name"]:
        raise UsageError("device 'cuda' requested but no NVIDIA GPU is visible here (nvidia-smi not found)")
    cases, skipped, shard_text = select_shard(*expand(grid), args.shard)
    if not args.shard:
        skipped = []  # an unsharded ab files only what it measured, as it always has
    if not cases and not args.resume:
        raise UsageError("the grid is empty after filters (is the framework installed?)")
    check_fits(cases)
    opts = ab_options(args, args.base, args.new)
    opts = dataclasses.replace(
        opts, seed=args.seed, base_results_dir=args.base_results, shard=shard_text, resume=args.resume
    )
    try:
        result = run_ab(cases, opts.threads, opts, grid=grid, skipped=skipped)
    except NothingLeft as exc:
        print(f"rnnbench: {exc}", file=sys.stderr)
        return 0
    cmp = result.comparison
    for warning in cmp.warnings:
        print(f"rnnbench: warning: {warning}", file=sys.stderr)
    print(f"rnnbench: BASE results: {result.base_path}\nrnnbench: NEW results: {result.new_path}", file=sys.stderr)
    sys.stdout.write(format_comparison(cmp, args.format).rstrip("\n") + "\n")
    return 1 if args.fail_on_regression and cmp.regressions else 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "ab", help="BASE vs NEW (interpreters or git revisions) interleaved in one sweep, judged with paired statistics"
    )
    side = (
        "side: PYTHON (an environment's interpreter, running its own rnnbench), REV (a git revision of this "
        "project, run by this interpreter) or PYTHON@REV (revision REV run by interpreter PYTHON)"
    )
    p.add_argument("--base", required=True, type=nonempty, help=f"the BASE {side}")
    p.add_argument("--new", required=True, type=nonempty, help=f"the NEW {side}")
    add_grid_flags(p, "quick")
    p.add_argument("--threads", type=threads, default=None, help="compute threads on both sides (default: all cores)")
    p.add_argument("--format", choices=FORMATS, default="table")
    add_threshold_flag(p)
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 if any case is slower")
    p.add_argument(
        "--results",
        type=output_dir,
        help="results directory for both sides' run documents (default: results/ in the repo)",
    )
    p.add_argument(
        "--base-results", type=output_dir,
        help="results directory for BASE's run document only (default: --results); the nightly keeps the "
        "re-measured previous night apart from tonight's run",
    )  # fmt: skip
    p.add_argument("--shard", type=shard_spec, help="K/N: only the K-th of N disjoint parts of the grid (as run)")
    p.add_argument(
        "--resume", action="store_true",
        help="skip the cases both sides already recorded (each side's machine and commit, in its results folder)",
    )  # fmt: skip
    p.add_argument(
        "--rounds", type=int_range(2, 100), default=ROUNDS,
        help=f"interleaved rounds; the paired statistics resample them (default {ROUNDS})",
    )  # fmt: skip
    p.add_argument(
        "--extra-rounds", type=int_range(0, 100), default=EXTRA_ROUNDS,
        help="rounds more, at most, for the cases still `too noisy` after --rounds, each round of the same "
        f"length (0: none; default {EXTRA_ROUNDS})",
    )  # fmt: skip
    p.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0, help="seed of the visiting order (default 0)")
    add_budget_flags(p, " and side", budget=BUDGET_S)
    p.set_defaults(func=run)
