"""`rnnbench landing HISTORY --out SITE`: the nightly site's front page, from verdicts.json (see `rnnbench.report.landing`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnbench.analysis.frame import one_line_warnings
from rnnbench.analysis.verdicts import read_verdicts
from rnnbench.cli.options import input_path, nonempty, output_dir
from rnnbench.report.landing import Links, last_night, write_landing

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    verdicts = read_verdicts(Path(args.verdicts) if args.verdicts else out / "verdicts.json")
    with one_line_warnings():
        night = last_night(Path(args.history), verdicts, Path(args.run) if args.run else None)
    links = Links(report=args.report, asv=args.asv, check=args.check, verdicts=args.verdicts_link, feed=args.feed)
    page = write_landing(night, out, links)
    print(
        f"rnnbench: {len(night.regressions)} regressions, {len(night.improvements)} improvements, "
        f"{len(night.winners)} winner changes, {len(night.failed)} failed cases; landing page: {page}"
    )
    for c in night.regressions:
        print(f"REGRESSION {c['ratio'] - 1:+.1%} ({c['method']}) {c['key']}", file=sys.stderr)
    return 1 if args.fail_on_regression and night.regressions else 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("landing", help="write the nightly site's landing page from the night's verdicts.json")
    p.add_argument(
        "history", metavar="HISTORY", type=input_path,
        help="the columnar history holding the night (rnnbench history import; or the nightly's history folder, "
        "whose nights/ is one), or a results folder of merged run documents (runs/<machine>/)",
    )  # fmt: skip
    p.add_argument(
        "--out", required=True, type=output_dir, help="site folder: index.html goes here, beside report/ and asv/"
    )
    p.add_argument(
        "--verdicts", type=input_path,
        help="the night's verdicts (rnnbench verdicts; default OUT/verdicts.json): the page shows what they say",
    )  # fmt: skip
    p.add_argument(
        "--run",
        type=input_path,
        help="the run document the verdicts judge (default: the night found in HISTORY by its run id)",
    )
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
    p.add_argument(
        "--verdicts-link", type=nonempty, default="verdicts.json", help="link to verdicts.json, relative to --out"
    )
    p.add_argument("--feed", type=nonempty, default="feed.xml", help="link to the Atom feed, relative to --out")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 if a regression is published")
    p.set_defaults(func=run)
