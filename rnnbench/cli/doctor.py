"""`rnnbench doctor`: how noisy is this machine? (see `rnnbench.analysis.doctor`)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rnnbench.analysis import doctor
from rnnbench.cli.options import (
    add_budget_flags,
    add_grid_flags,
    fraction,
    grid_from_args,
    int_range,
    output_dir,
    positive_float,
    threads,
)
from rnnbench.cli.run import BUDGET_S as RUN_BUDGET_S
from rnnbench.cli.run import WARMUP_BUDGET_S
from rnnbench.errors import UsageError
from rnnbench.measure.machine import gpu_info
from rnnbench.sweep.ab import BUDGET_S as AB_BUDGET_S
from rnnbench.sweep.grid import expand

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    if args.preset is not None:
        return _calibrate(args)
    grid_flags = ("framework", "device", "cell", "formulation", "mode", "pass_", "dtype", "batch", "input_size",
                  "hidden", "seq_len", "layers")  # fmt: skip
    given = [f for f in grid_flags if getattr(args, f, None) is not None]
    if given:
        raise UsageError(f"--{given[0].rstrip('_').replace('_', '-')} selects a calibration grid: it needs --preset")
    return doctor.run_doctor(
        doctor.DoctorOptions(
            rounds=args.rounds,
            samples=args.samples,
            sample_time=args.sample_time,
            slowdown=args.slowdown,
            threads=args.threads or 1,
            save=args.save,
        )
    )


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("doctor", help="how noisy is this machine? timer, noise, and compare's false-alarm rate")
    p.add_argument(
        "--rounds", type=int_range(1, 1000), default=5,
        help="A/A and injected-slowdown rounds over the kernel set (default 5)",
    )  # fmt: skip
    p.add_argument(
        "--samples", type=int_range(3, 100_000), default=15, help="samples per case and measurement set (default 15)"
    )
    p.add_argument(
        "--sample-time", type=positive_float(60), default=0.002, help="target seconds per sample (default 0.002)"
    )
    p.add_argument("--slowdown", type=fraction, default=0.20, help="slowdown injected into concat (default 20%%)")
    p.add_argument(
        "--threads",
        type=threads,
        default=None,
        help="BLAS threads for the kernel set (default 1); with --preset, compute threads (default: all cores)",
    )
    p.add_argument("--save", type=output_dir, help="also write the measured sets as runner documents into this folder")
    cal = p.add_argument_group(
        "calibration on a preset",
        "with --preset: run it as A/A and as A/B (--slowdown injected into --slowed) in separate sweeps, "
        "and print compare's and ab's false-alarm rate and the share of slowed cases caught",
    )
    add_grid_flags(cal, None)  # type: ignore[arg-type]
    cal.add_argument("--slowed", default="concat", help="formulation the A/B sweeps slow down (default concat)")
    cal.add_argument(
        "--results", type=output_dir, help="where the calibration's run documents go (default: a temporary folder)"
    )
    add_budget_flags(
        cal, " and sweep (per side for ab)", timeout=False, budget=None,
        default_help=f"as run and ab take it: {RUN_BUDGET_S} for the compare sweeps, {AB_BUDGET_S} per side for ab",
    )  # fmt: skip
    p.set_defaults(func=run)


def _calibrate(args: argparse.Namespace) -> int:
    grid = grid_from_args(args)
    if "cuda" in grid.devices and not gpu_info()["gpu_name"]:
        raise UsageError("device 'cuda' requested but no NVIDIA GPU is visible here (nvidia-smi not found)")
    cases, _ = expand(grid)
    if not any(c.formulation == args.slowed for c in cases):
        raise UsageError(f"no {args.slowed} case in the grid: nothing to slow down (see --slowed)")
    results = Path(args.results) if args.results else Path(tempfile.mkdtemp(prefix="rnnbench-calibration-"))
    opts = doctor.CalibrationOptions(
        results_dir=results, threads=args.threads or os.cpu_count() or 1, slowdown=args.slowdown,
        formulation=args.slowed, progress=not args.no_progress, preset=args.preset,
        budget_s=args.budget or RUN_BUDGET_S, warmup_budget_s=WARMUP_BUDGET_S, ab_budget_s=args.budget or AB_BUDGET_S,
    )  # fmt: skip
    rates = doctor.calibrate(cases, opts)  # through the module, so a test can stand in for the sweeps
    print(doctor.format_calibration(rates, opts, len(cases)))
    print(f"rnnbench: calibration documents in {results}", file=sys.stderr)
    return 0
