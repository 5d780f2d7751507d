"""`rnnbench report PATHS --out DIR`: the static HTML dashboard (see `rnnbench.report`)."""

from __future__ import annotations

import argparse

from rnnbench.cli.export import PATHS_HELP
from rnnbench.cli.options import fraction, int_range
from rnnbench.errors import UsageError

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnbench.analysis.frame import load, one_line_warnings
    from rnnbench.report.build import build_report

    with one_line_warnings():
        frame = load(args.paths or None)
    if frame.empty:
        raise UsageError(f"no rnnbench or asv results in {', '.join(args.paths or ['results'])}")
    with one_line_warnings():  # a hardware change splitting a history is a one-line warning too
        page = build_report(
            frame, args.out, threshold=args.threshold, max_charts=args.max_charts, progress=not args.quiet
        )
    print(f"rnnbench: report written to {page}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="write a static HTML report with charts")
    p.add_argument("paths", nargs="*", help=PATHS_HELP)
    p.add_argument("--out", required=True, help="folder for index.html and its images")
    p.add_argument(
        "--threshold", type=fraction, default=0.05, help="smallest step change marked in histories (default 5%%)"
    )
    p.add_argument(
        "--max-charts", type=int_range(1, 10_000), default=24, help="charts per section at most (default 24)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
