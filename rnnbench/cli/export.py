"""`rnnbench export PATHS --out FILE`: every result as one table (CSV or Parquet)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from rnnbench.cli.options import input_path, output_file

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PATHS_HELP", "add_parser", "run"]

PATHS_HELP = "result files or folders (runner documents, asv results); default: results/"


def run(args: argparse.Namespace) -> int:
    from rnnbench.cli.inputs import load_results

    frame = load_results(args.paths)
    out = _export_atomically(frame, args.out)
    print(f"rnnbench: {len(frame)} rows written to {out}")
    return 0


def _export_atomically(frame: pd.DataFrame, out: Path) -> Path:
    """Write through a temporary file beside `out`, so a failure leaves no half-written table."""
    from rnnbench.analysis.frame import export

    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix)
        os.close(fd)
        export(frame, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {out}: {exc.strerror or exc}", str(out)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("export", help="write every result under PATHS as one table (CSV or Parquet)")
    p.add_argument("paths", nargs="*", type=input_path, help=PATHS_HELP)
    # checked while parsing: fail before reading a large tree
    p.add_argument("--out", required=True, type=output_file((".csv", ".parquet")), help="file.csv or file.parquet")
    p.set_defaults(func=run)
