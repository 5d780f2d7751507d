"""`rnnbench regressions PATHS`: step changes in every case's history, or (--baseline N) the newest run vs its last N."""

from __future__ import annotations

import argparse
import sys

from rnnbench.analysis.columnar import is_history
from rnnbench.analysis.frame import one_line_warnings
from rnnbench.analysis.history import baseline, detect, format_baseline, format_steps
from rnnbench.cli.compare import FORMATS
from rnnbench.cli.export import PATHS_HELP
from rnnbench.cli.inputs import load_results
from rnnbench.cli.options import add_threshold_flag, input_path, int_range

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    if args.baseline and args.paths and all(is_history(p) for p in args.paths):
        # a history answers "the newest night vs its previous N" from those nights' files alone
        frame = load_results(args.paths, last=args.baseline + 1, samples=False)
    else:
        frame = load_results(args.paths)
    with one_line_warnings():
        if args.baseline:
            verdicts, short = baseline(frame, args.baseline, args.threshold)
            text = format_baseline(verdicts, short, args.baseline, args.format, args.threshold)
            bad = sum(v.kind == "regression" for v in verdicts)
        else:
            steps = detect(frame, args.threshold)
            text = format_steps(steps, args.format, args.threshold)
            # a step in the past is history; only a regression at the newest level needs acting on
            bad = sum(s.kind == "regression" for s in steps)
    sys.stdout.write(text.rstrip("\n") + "\n")
    return 1 if args.fail_on_regression and bad else 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("regressions", help="step changes in every case's history, or the newest run vs its baseline")
    p.add_argument("paths", nargs="*", type=input_path, help=PATHS_HELP)
    add_threshold_flag(p)
    p.add_argument(
        "--baseline", type=int_range(2, 10_000), metavar="N",
        help="judge the newest run of every case against the spread of its previous N runs on the same machine",
    )  # fmt: skip
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 if any regression is listed")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=run)
