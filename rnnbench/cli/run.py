"""`rnnbench run`: verify and time a sweep, store every sample, print a summary."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rnnbench.cli.options import (
    add_budget_flags,
    add_grid_flags,
    grid_from_args,
    int_range,
    output_dir,
    shard_spec,
    threads,
)
from rnnbench.display import format_table
from rnnbench.errors import UsageError
from rnnbench.measure.machine import fingerprint, gpu_info
from rnnbench.measure.timing import TimingConfig
from rnnbench.sweep import runner
from rnnbench.sweep.grid import expand, select_shard
from rnnbench.sweep.memory import check_fits
from rnnbench.sweep.store import done_keys, live_writers
from rnnbench.sweep.worker import make_record

# run's exit code when every case ran but some were numerically inaccurate (and none crashed)
EXIT_INACCURATE = 3
# `run`'s defaults, chosen to keep `make bench` (the quick preset) under 5 minutes on the 2-core VM:
# sampling seconds per case over all rounds, and the warm-up pass's stability loop per case
BUDGET_S = 0.6
WARMUP_BUDGET_S = 0.25

__all__ = ["add_parser", "default_results_dir", "run"]


def default_results_dir() -> Path:
    """`results/` of the repository rnnbench runs from (or of the working directory, when installed)."""
    repo = Path(__file__).resolve().parents[2]
    return repo / "results" if (repo / ".git").exists() else Path.cwd() / "results"


def gpu_visible() -> bool:
    """Whether NVML (or, without its bindings, nvidia-smi) shows a GPU CUDA may use."""
    return gpu_info()["gpu_name"] is not None


def run(args: argparse.Namespace) -> int:
    grid = grid_from_args(args)
    if "cuda" in grid.devices and not gpu_visible():
        raise UsageError(
            "device 'cuda' requested but no NVIDIA GPU is visible here (neither NVML nor nvidia-smi found one;"
            " check CUDA_VISIBLE_DEVICES)"
        )
    n_threads = args.threads or os.cpu_count() or 1
    cases, skipped, shard_text = select_shard(*expand(grid), args.shard)
    if not cases and not args.resume:
        raise UsageError("the grid is empty after filters (is the framework installed?)")
    check_fits(cases)
    results: Path = args.results if args.results is not None else default_results_dir()
    machine = fingerprint(n_threads)
    if args.resume:
        live = live_writers(results, machine["machine"], machine["git_commit"])
        if live:
            path, pid = live[0]
            holder = f"process {pid}" if pid > 0 else "another process"
            raise UsageError(f"cannot resume: {holder} is still writing {path}; wait for it to end")
        done = done_keys(results, machine["machine"], machine["git_commit"])
        before = len(cases)
        cases = [c for c in cases if c.key not in done]
        print(f"rnnbench: --resume: {before - len(cases)} cases already recorded, {len(cases)} to go", file=sys.stderr)
        if not cases:
            print("rnnbench: --resume: nothing left to run; no new document written", file=sys.stderr)
            return 0
    # the per-case budget and minimum sample count are split across the rounds
    timing = TimingConfig(
        budget_s=args.budget / args.rounds, min_samples=max(5, -(-15 // args.rounds)), flush_l2=args.flush_l2,
        warmup_budget_s=WARMUP_BUDGET_S,
    )  # fmt: skip
    opts = runner.RunOptions(
        results_dir=results, threads=n_threads, timing=timing, timeout_s=args.timeout, progress=not args.no_progress,
        command=["rnnbench", *sys.argv[1:]], preset=args.preset, shard=shard_text, rounds=args.rounds,
        seed=args.seed, grid=grid,
    )  # fmt: skip
    not_applicable = [make_record(case, "skipped", threads=n_threads, error=why) for case, why in skipped]
    # through the module: tests substitute the sweep (runner.run_cases) to plant a failing worker
    writer = runner.run_cases(cases, machine, opts, extra_records=not_applicable)
    records = writer.records
    out = sys.stderr if args.json else sys.stdout
    headers, rows = runner.summary_rows(records)
    if rows:
        print(format_table(headers, rows), file=out)
    failed = [r for r in records if r.status == "failed"]
    for r in failed:
        print(f"FAILED {r.key}: {r.error}", file=out)
    inaccurate = [r for r in records if r.status == "inaccurate"]
    for r in inaccurate:
        print(f"INACCURATE {r.key}: {r.error}", file=out)
    peak_failures = writer.peak_failures
    for p in peak_failures:
        print(f"PEAK FAILED {p.framework}/{p.device}/{p.dtype}: {p.error} (peak_fraction left null)", file=out)
    ok = sum(r.status == "ok" for r in records)
    peak_note = f", {len(peak_failures)} peak probe(s) failed" if peak_failures else ""
    print(
        f"\n{ok} measured, {len(failed)} failed, {len(inaccurate)} inaccurate, {len(skipped)} not applicable"
        f"{peak_note}; results: {writer.path}",
        file=out,
    )
    if args.json:
        sys.stdout.write(writer.dumps())
    return 1 if failed or peak_failures else (EXIT_INACCURATE if inaccurate else 0)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="verify and time a sweep; store every sample")
    add_grid_flags(p, "quick")
    p.add_argument(
        "--threads", type=threads, default=None, help="compute threads for every framework (default: all cores)"
    )
    p.add_argument("--shard", type=shard_spec, help="K/N: run the K-th of N disjoint parts of the grid")
    p.add_argument("--resume", action="store_true", help="skip cases already recorded for this machine and commit")
    p.add_argument("--results", type=output_dir, help="results directory (default: results/ in the repo)")
    p.add_argument("--json", action="store_true", help="print the run document to stdout (the table goes to stderr)")
    p.add_argument(
        "--rounds", type=int_range(1, 100), default=3,
        help="sweeps over each group; a case's samples span them (default 3)",
    )  # fmt: skip
    add_budget_flags(p, "", budget=BUDGET_S)
    p.add_argument(
        "--seed", type=int_range(0, 2**32 - 1), default=None,
        help="seed of the rounds' random case order (default: a fresh one; stored in the document as order_seed)",
    )  # fmt: skip
    p.add_argument(
        "--flush-l2", action="store_true",
        help="write a buffer larger than the cache before every sample; samples are then single cold-cache calls",
    )  # fmt: skip
    p.set_defaults(func=run)
