"""`rnnbench report PATHS --out DIR`: the interactive dashboard, or with `--static` the matplotlib report.

The dashboard (`rnnbench.report.dashboard`) is the site the nightly publishes; the static report
(`rnnbench.report.build`) draws PNG images, for a page without JavaScript or a figure to embed.
"""

from __future__ import annotations

import argparse

from rnnbench.analysis.frame import one_line_warnings
from rnnbench.cli.export import PATHS_HELP
from rnnbench.cli.inputs import load_results, warnings_or_reason
from rnnbench.cli.options import fraction, input_path, int_range, output_dir
from rnnbench.errors import UsageError
from rnnbench.report import build, dashboard

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    return _static(args) if args.static else _dashboard(args)


def _dashboard(args: argparse.Namespace) -> int:
    dashboard.check_out_dir(args.out)  # before reading a large tree
    with warnings_or_reason():
        frame = dashboard.read_results(args.paths)
        if frame.empty:
            raise UsageError(
                f"no rnnbench or asv results with a successful time measurement in {', '.join(args.paths or ['results'])}"
            )
    with one_line_warnings():
        page = dashboard.build_dashboard(
            frame, args.out, baseline_runs=args.baseline, threshold=args.threshold, verdicts=args.verdicts
        )
    print(f"rnnbench: dashboard written to {page}")
    return 0


def _static(args: argparse.Namespace) -> int:
    build.check_out_dir(args.out)  # before reading a large tree
    frame = load_results(args.paths)
    with one_line_warnings():  # a hardware change splitting a history is a one-line warning too
        page = build.build_report(
            frame, args.out, threshold=args.threshold, max_charts=args.max_charts, progress=not args.quiet
        )
    print(f"rnnbench: report written to {page}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="write the interactive dashboard (a static site), or with --static the matplotlib report",
        description="Write the interactive dashboard: a static site (index.html, assets/, data/) that opens from "
        "disk or any static host, no server. --static writes the matplotlib report instead (PNG charts, no "
        "JavaScript).",
    )
    p.add_argument("paths", nargs="*", type=input_path, help=PATHS_HELP)
    p.add_argument(
        "--out", required=True, type=output_dir,
        help="folder for the site: a new or empty folder (a verdicts.json in it is read, not replaced), "
        "or one an earlier `rnnbench report` wrote",
    )  # fmt: skip
    p.add_argument("--static", action="store_true", help="the matplotlib report (PNG images) instead of the dashboard")
    p.add_argument(
        "--threshold", type=fraction, default=0.05,
        help="smallest change flagged: the baseline band's least half-width, and the static report's steps "
        "(default 5%%)",
    )  # fmt: skip
    p.add_argument(
        "--baseline", type=int_range(2, 1000), default=5, metavar="N",
        help="dashboard: each night is judged against the previous N nights (default 5)",
    )  # fmt: skip
    p.add_argument(
        "--verdicts", type=input_path, default=None, metavar="FILE",
        help="dashboard: the night's verdicts to list as regressions (default: OUT/verdicts.json where it exists, "
        "else the baseline of the previous N nights)",
    )  # fmt: skip
    p.add_argument(
        "--max-charts", type=int_range(1, 10_000), default=24,
        help="static report: charts per section at most (default 24)",
    )  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (static report)")
    p.set_defaults(func=run)
