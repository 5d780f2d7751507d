"""`rnnbench merge SHARD_DIRS... --out DIR`: one run document from the shards of a sweep (see `rnnbench.sweep.merge`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.cli.options import output_dir
from rnnbench.errors import UsageError

if TYPE_CHECKING:
    from rnnbench.sweep.grid import Grid
    from rnnbench.sweep.merge import ShardDocument

__all__ = ["add_parser", "grid_of", "run"]


def grid_of(doc: dict[str, Any]) -> Grid | None:
    """The grid a shard's recorded `rnnbench run ...` command swept (None if the command is not a run)."""
    from rnnbench.cli.main import build_parser
    from rnnbench.cli.options import grid_from_args

    command = doc.get("command") or []
    if len(command) < 2 or command[1] != "run":
        return None
    # the shard's --results was a path on its own machine: checking it here would judge the wrong disk
    argv = [a for i, a in enumerate(command[1:], 1) if not a.startswith("--results") and command[i - 1] != "--results"]
    try:
        args = build_parser().parse_args(argv)
    except UsageError:
        return None
    return grid_from_args(args, check_installed=False)


def _grid(docs: list[ShardDocument]) -> tuple[Grid | None, list[str]]:
    """The one grid every shard ran, and the frameworks installed on the shard machines."""
    from rnnbench.case import FRAMEWORKS

    grids = [(d, grid_of(d.doc)) for d in docs]
    known = [(d, g) for d, g in grids if g is not None]
    for d, g in known[1:]:
        if g != known[0][1]:
            raise UsageError(f"shards ran different grids: {known[0][0].path.name} vs {d.path.name}")
    installed = sorted({f for d in docs for f in d.doc["machine"].get("frameworks", {}) if f in FRAMEWORKS})
    # a shard whose command cannot be read (an older rnnbench) leaves only the shard checks
    return (known[0][1] if known and len(known) == len(grids) else None), installed


def run(args: argparse.Namespace) -> int:
    from rnnbench.sweep.merge import find_documents, merge_documents
    from rnnbench.sweep.store import write_document

    docs = find_documents(Path(p) for p in args.shards)
    grid, installed = _grid(docs) if not args.no_grid_check else (None, [])
    merged = merge_documents(docs, grid=grid, installed=installed, command=["rnnbench", "merge", *args.shards])
    path = write_document(Path(args.out), merged)
    counts = {s: sum(r["status"] == s for r in merged["records"]) for s in ("ok", "failed", "skipped")}
    print(
        f"rnnbench: merged {len(docs)} documents of {len(merged['merged_from'])} shard runs: "
        f"{counts['ok']} measured, {counts['failed']} failed, {counts['skipped']} not applicable"
        f"{'' if grid is not None else ' (grid not checked)'}; wrote {path}"
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
