"""`rnnbench history import PATHS --out HISTORY`: result files into the columnar history (see `analysis.columnar`)."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rnnbench.cli.export import PATHS_HELP
from rnnbench.cli.inputs import warnings_or_reason
from rnnbench.cli.options import add_verbs, input_path, int_range, output_dir
from rnnbench.errors import UsageError

__all__ = ["add_parser", "run"]


def _import(args: argparse.Namespace) -> int:
    from rnnbench.analysis import columnar
    from rnnbench.analysis.frame import load, result_files

    files = list(result_files(args.paths))
    # a file named on the command line must be a result: a typo must not pass as "0 nights stored"
    named = {Path(p) for p in args.paths if Path(p).is_file()}
    with warnings_or_reason():
        frames = []
        headers: dict[str, dict[str, Any]] = {}  # each run document's header, stored with its night
        for path in files:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                frame = load([path], headers=headers)
            if frame.empty and path in named:
                reason = str(caught[0].message) if caught else f"{path}: no measured cases"
                raise UsageError(f"cannot store {reason}")
            for w in caught:
                warnings.warn(w.message, w.category, stacklevel=1)
            if not frame.empty:
                frames.append(frame)
        if not frames:
            raise UsageError(f"no rnnbench or asv results in {', '.join(args.paths)}")
    root = columnar.create(args.out, args.keep_samples)
    stored = 0
    for frame in tqdm(frames, unit="night", file=sys.stderr, disable=args.no_progress or len(frames) < 2):
        for (_, file), night in frame.groupby(["machine", "file"], dropna=False, sort=False):
            columnar.write_night(root, night, headers.get(str(file)))
            stored += 1
    print(f"rnnbench: {stored} nights ({sum(len(f) for f in frames)} rows) stored in {root}")
    return 0


def run(args: argparse.Namespace) -> int:
    return _import(args)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    verbs = add_verbs(sub, "history", "the columnar history: store result files as nights (Parquet)", "verb")
    imp = verbs.add_parser(
        "import",
        help="store result files (run documents, asv results) in a history folder, one night per file",
        description="Creates HISTORY when new; a night stored again replaces the old copy. Every command that "
        "reads results folders reads HISTORY too.",
    )
    imp.add_argument("paths", nargs="+", type=input_path, help=PATHS_HELP.removesuffix("; default: results/"))
    imp.add_argument("--out", required=True, type=output_dir, help="the history folder (created when new)")
    imp.add_argument(
        "--keep-samples", type=int_range(0, 100000), default=30,
        help="nights per machine whose raw samples are kept (a new history only; default 30)",
    )  # fmt: skip
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(func=run)
