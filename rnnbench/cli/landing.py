"""`rnnbench landing HISTORY --out SITE`: the nightly site's front page (see `rnnbench.report.landing`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnbench.analysis.frame import one_line_warnings
from rnnbench.cli.options import add_threshold_flag, input_path, int_range, nonempty, output_dir
from rnnbench.report.landing import Links, last_night, write_landing

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    with one_line_warnings():
        night = last_night(
            Path(args.history), Path(args.run) if args.run else None, baseline=args.baseline, threshold=args.threshold
        )
    page = write_landing(night, Path(args.out), Links(report=args.report, asv=args.asv, check=args.check))
    print(
        f"rnnbench: {len(night.regressions)} regressions, {len(night.improvements)} improvements, "
        f"{len(night.winners)} winner changes, {len(night.failed)} failed cases; landing page: {page}"
    )
    for f in night.regressions:
        print(f"REGRESSION {f.ratio - 1:+.1%} {f.key}", file=sys.stderr)
    return 1 if args.fail_on_regression and night.regressions else 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("landing", help="write the nightly site's landing page: what changed in the newest run")
    p.add_argument(
        "history", metavar="HISTORY", type=input_path, help="results folder holding every merged run (runs/<machine>/)"
    )
    p.add_argument(
        "--out", required=True, type=output_dir, help="site folder: index.html goes here, beside report/ and asv/"
    )
    p.add_argument(
        "--run", type=input_path, help="the run document to judge (default: the newest merged run in HISTORY)"
    )
    p.add_argument(
        "--baseline", type=int_range(1, 1000), default=5, help="previous runs a case is judged against (default 5)"
    )
    add_threshold_flag(p)
    p.add_argument(
        "--report", type=nonempty, default="report/index.html", help="link to the rnnbench report, relative to --out"
    )
    p.add_argument(
        "--asv", type=nonempty, default="asv/index.html", help="link to the asv dashboard, relative to --out"
    )
    p.add_argument(
        "--check",
        type=nonempty,
        default="regressions.txt",
        help="link to the regression check output, relative to --out",
    )
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 if any case regressed")
    p.set_defaults(func=run)
