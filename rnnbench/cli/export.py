"""`rnnbench export PATHS --out FILE`: every result as one table (CSV or Parquet)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnbench.errors import UsageError

__all__ = ["PATHS_HELP", "add_parser", "run"]

PATHS_HELP = "result files or folders (runner documents, asv results); default: results/"


def out_file(text: str) -> str:
    if Path(text).suffix not in (".csv", ".parquet"):  # fail before reading a large tree
        raise argparse.ArgumentTypeError(f"must end in .csv or .parquet, got {Path(text).name!r}")
    return text


def run(args: argparse.Namespace) -> int:
    from rnnbench.analysis.frame import export, load, one_line_warnings

    with one_line_warnings():
        frame = load(args.paths or None)
    if frame.empty:
        raise UsageError(f"no rnnbench or asv results in {', '.join(args.paths or ['results'])}")
    out = export(frame, args.out)
    print(f"rnnbench: {len(frame)} rows written to {out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("export", help="write every result under PATHS as one table (CSV or Parquet)")
    p.add_argument("paths", nargs="*", help=PATHS_HELP)
    p.add_argument("--out", required=True, type=out_file, help="file.csv or file.parquet")
    p.set_defaults(func=run)
