"""`rnnbench run`, `rnnbench env` and `rnnbench list`: the sweep commands and what they report."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rnnbench import backends
from rnnbench.errors import UsageError
from rnnbench.grid import PRESETS, expand, parse_shard, shard
from rnnbench.machine import fingerprint, gpu_info, machine_name
from rnnbench.runner import RunOptions, run_cases, summary_rows
from rnnbench.store import done_keys
from rnnbench.tables import format_table
from rnnbench.timing import TimingConfig

__all__ = ["cmd_env", "cmd_list", "cmd_run", "default_results_dir"]


def default_results_dir() -> Path:
    """`results/` of the repository rnnbench runs from (or of the working directory, when installed)."""
    repo = Path(__file__).resolve().parent.parent
    return repo / "results" if (repo / ".git").exists() else Path.cwd() / "results"


def cmd_run(args: argparse.Namespace) -> int:
    from rnnbench.cli import grid_from_args

    grid = grid_from_args(args)
    if "cuda" in grid.devices and not gpu_info()["gpu_name"]:
        raise UsageError("device 'cuda' requested but no NVIDIA GPU is visible here (nvidia-smi not found)")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be a positive integer, got {args.threads}")
    threads = args.threads or os.cpu_count() or 1
    cases, skipped = expand(grid)
    shard_text = None
    if args.shard:
        k, n = parse_shard(args.shard)
        cases, shard_text = shard(cases, k, n), f"{k}/{n}"
        skipped = [(c, why) for i, (c, why) in enumerate(skipped) if i % n == k - 1]
    results = Path(args.results) if args.results else default_results_dir()
    machine = fingerprint(threads)
    if args.resume:
        done = done_keys(results, machine["machine"], machine["git_commit"])
        before = len(cases)
        cases = [c for c in cases if c.key not in done]
        print(f"rnnbench: --resume: {before - len(cases)} cases already recorded, {len(cases)} to go", file=sys.stderr)
    if not cases and not args.resume:
        raise UsageError("the grid is empty after filters (is the framework installed?)")
    if args.rounds < 1:
        raise UsageError(f"--rounds must be a positive integer, got {args.rounds}")
    if args.budget <= 0 or args.timeout <= 0:
        raise UsageError("--budget and --timeout must be positive")
    # the per-case budget and minimum sample count are split across the rounds
    timing = TimingConfig(budget_s=args.budget / args.rounds, min_samples=max(5, -(-15 // args.rounds)))
    opts = RunOptions(
        results_dir=results, threads=threads, timing=timing, timeout_s=args.timeout, progress=not args.no_progress,
        command=["rnnbench", *sys.argv[1:]], preset=args.preset, shard=shard_text, rounds=args.rounds,
    )  # fmt: skip
    writer = run_cases(cases, machine, opts)
    from rnnbench.worker import make_record

    for case, why in skipped:
        writer.doc["records"].append(make_record(case, "skipped", threads=threads, error=why))
    writer.flush()
    records = writer.doc["records"]
    out = sys.stderr if args.json else sys.stdout
    headers, rows = summary_rows(records)
    if rows:
        print(format_table(headers, rows), file=out)
    failed = [r for r in records if r["status"] == "failed"]
    for r in failed:
        print(f"FAILED {r['key']}: {r['error']}", file=out)
    ok = sum(r["status"] == "ok" for r in records)
    print(f"\n{ok} measured, {len(failed)} failed, {len(skipped)} not applicable; results: {writer.path}", file=out)
    if args.json:
        json.dump(writer.doc, sys.stdout, indent=1)
        print()
    return 1 if failed else 0


def cmd_env(args: argparse.Namespace) -> int:
    fp = fingerprint(args.threads)
    if args.json:
        print(json.dumps(fp, indent=1))
        return 0
    rows = [[k, json.dumps(v) if isinstance(v, dict) else v] for k, v in fp.items()]
    print(format_table(["field", "value"], rows))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    installed = backends.available()
    rows: list[list[object]] = []
    for name in ("numpy", "torch", "tensorflow", "jax"):
        if name in installed:
            b = backends.get(name)
            devices = ", ".join(b.devices()) if args.devices else "cpu (+cuda if visible; --devices to check)"
            rows.append([name, "yes", devices, ", ".join(b.modes), ", ".join(b.dtypes)])
        else:
            rows.append([name, "no", "", "", ""])
    print(format_table(["framework", "installed", "devices", "modes", "dtypes"], rows))
    print(f"\nmachine: {machine_name()}\n")
    rows = []
    for name, grid in PRESETS.items():
        cases, skipped = expand(grid, installed)
        rows.append([name, len(cases), len(skipped), ", ".join(grid.devices)])
    print(format_table(["preset", "cases", "not applicable", "devices"], rows))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from rnnbench.cli import add_grid_flags

    p = sub.add_parser("run", help="verify and time a sweep; store every sample")
    add_grid_flags(p, "quick")
    p.add_argument("--threads", type=int, default=None, help="compute threads for every framework (default: all cores)")
    p.add_argument("--shard", help="K/N: run the K-th of N disjoint parts of the grid")
    p.add_argument("--resume", action="store_true", help="skip cases already recorded for this machine and commit")
    p.add_argument("--results", help="results directory (default: results/ in the repo)")
    p.add_argument("--json", action="store_true", help="print the run document to stdout (the table goes to stderr)")
    p.add_argument(
        "--budget", type=float, default=1.0, help="sampling seconds per case, all rounds together (default 1.0)"
    )
    p.add_argument(
        "--rounds", type=int, default=2, help="sweeps over each group; a case's samples span them (default 2)"
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before a case's worker is killed (default 600)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("env", help="print this machine's fingerprint")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("list", help="frameworks, devices and presets available here")
    p.add_argument("--devices", action="store_true", help="import each framework to check its devices")
    p.set_defaults(func=cmd_list)
