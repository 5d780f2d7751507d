"""`rnnbench compare BASE NEW`: a verdict per case between two result sets."""

from __future__ import annotations

import argparse
import sys

from rnnbench.analysis.comparison import compare_frames
from rnnbench.analysis.render import format_comparison
from rnnbench.analysis.sides import load_side
from rnnbench.cli.inputs import warnings_or_reason
from rnnbench.cli.options import add_threshold_flag, nonempty
from rnnbench.errors import UsageError
from rnnbench.judge.cases import judge_records
from rnnbench.sweep.ab import ab_pair

__all__ = ["FORMATS", "add_parser", "run"]

FORMATS = ("table", "markdown", "json")


def run(args: argparse.Namespace) -> int:
    with warnings_or_reason():
        base = load_side(args.base, args.results)
        new = load_side(args.new, args.results)
    pair = ab_pair(args.base, args.new)
    # the two sides of one `ab` run ran interleaved: judged paired, as `ab` judged them
    cmp = judge_records(*pair, args.threshold) if pair else compare_frames(base, new, threshold=args.threshold)
    if not cmp.cases:
        raise UsageError(
            f"nothing to compare: no case was measured on both sides ({len(cmp.only_base)} only in BASE, "
            f"{len(cmp.only_new)} only in NEW, {len(cmp.not_ok)} not ok on one side, "
            f"{cmp.both_skipped} not applicable on both)"
        )
    for warning in cmp.warnings:
        print(f"rnnbench: warning: {warning}", file=sys.stderr)
    sys.stdout.write(format_comparison(cmp, args.format).rstrip("\n") + "\n")
    return 1 if args.fail_on_regression and cmp.regressions else 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("compare", help="verdicts per case between two result sets: faster, slower, same, too noisy")
    for side in ("base", "new"):
        p.add_argument(
            side, metavar=side.upper(), type=nonempty, help="result file, folder, or commit prefix in the results store"
        )
    add_threshold_flag(p)
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 if any case is slower (or worse)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument(
        "--results", type=nonempty, default="results", help="results store to look commits up in (default results/)"
    )
    p.set_defaults(func=run)
