"""`rnnbench regressions PATHS`: step changes in every case's history."""

from __future__ import annotations

import argparse
import sys

from rnnbench.cli.compare import FORMATS
from rnnbench.cli.export import PATHS_HELP
from rnnbench.cli.options import fraction, input_path

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnbench.analysis.history import detect, format_steps
    from rnnbench.cli.inputs import load_results

    frame = load_results(args.paths)
    steps = detect(frame, args.threshold)
    sys.stdout.write(format_steps(steps, args.format, args.threshold).rstrip("\n") + "\n")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("regressions", help="step changes in every case's history")
    p.add_argument("paths", nargs="*", type=input_path, help=PATHS_HELP)
    p.add_argument("--threshold", type=fraction, default=0.05, help="smallest step that counts (default 5%%)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=run)
