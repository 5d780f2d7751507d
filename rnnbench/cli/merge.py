"""`rnnbench merge SHARD_DIRS... --out DIR`: one run document from the shards of a sweep (see `rnnbench.sweep.merge`).

The grid the shards are checked against is the one their documents' headers record (`rnnbench run` files
it); `--no-grid-check` merges documents that lack it (written by an older rnnbench) on the shard checks alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnbench.cli.options import output_dir

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnbench.sweep.merge import find_documents, merge_documents
    from rnnbench.sweep.store import write_document

    docs = find_documents(Path(p) for p in args.shards)
    check = not args.no_grid_check
    merged = merge_documents(docs, check_grid=check, command=["rnnbench", "merge", *args.shards])
    path = write_document(Path(args.out), merged)
    counts = {s: sum(r.status == s for r in merged.records) for s in ("ok", "failed", "skipped")}
    print(
        f"rnnbench: merged {len(docs)} documents of {len(merged.extra['merged_from'])} shard runs: "
        f"{counts['ok']} measured, {counts['failed']} failed, {counts['skipped']} not applicable"
        f"{'' if check else ' (grid not checked)'}; wrote {path}"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("merge", help="join shard results into one run document; check every case is there once")
    p.add_argument("shards", nargs="+", metavar="SHARD_DIR", help="results folder (or document) of each shard")
    p.add_argument(
        "--out",
        required=True,
        type=output_dir,
        help="results folder to write the merged document into (runs/<machine>/)",
    )
    p.add_argument(
        "--no-grid-check", action="store_true", help="check shards against each other only, not against their grid"
    )
    p.set_defaults(func=run)
