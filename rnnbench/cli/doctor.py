"""`rnnbench doctor`: how noisy is this machine? (see `rnnbench.analysis.doctor`)."""

from __future__ import annotations

import argparse

from rnnbench.cli.options import fraction, int_range, output_dir, positive_float, threads

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnbench.analysis.doctor import DoctorOptions, run_doctor

    return run_doctor(
        DoctorOptions(
            rounds=args.rounds,
            samples=args.samples,
            sample_time=args.sample_time,
            slowdown=args.slowdown,
            threads=args.threads,
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
    p.add_argument("--threads", type=threads, default=1, help="BLAS threads for the kernel set (default 1)")
    p.add_argument("--save", type=output_dir, help="also write the measured sets as runner documents into this folder")
    p.set_defaults(func=run)
