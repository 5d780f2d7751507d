"""`rnnbench report PATHS --out DIR`: the static HTML dashboard (see `rnnbench.report`)."""

from __future__ import annotations

import argparse

from rnnbench.analysis.frame import one_line_warnings
from rnnbench.cli.export import PATHS_HELP
from rnnbench.cli.inputs import load_results
from rnnbench.cli.options import fraction, input_path, int_range, output_dir
from rnnbench.report.build import build_report, check_out_dir

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    check_out_dir(args.out)  # before reading a large tree
    frame = load_results(args.paths)
    with one_line_warnings():  # a hardware change splitting a history is a one-line warning too
        page = build_report(
            frame, args.out, threshold=args.threshold, max_charts=args.max_charts, progress=not args.quiet
        )
    print(f"rnnbench: report written to {page}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="write a static HTML report with charts")
    p.add_argument("paths", nargs="*", type=input_path, help=PATHS_HELP)
    p.add_argument(
        "--out", required=True, type=output_dir,
        help="folder for index.html and its images: a new or empty folder, or one an earlier report wrote",
    )  # fmt: skip
    p.add_argument(
        "--threshold", type=fraction, default=0.05, help="smallest step change marked in histories (default 5%%)"
    )
    p.add_argument(
        "--max-charts", type=int_range(1, 10_000), default=24, help="charts per section at most (default 24)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
