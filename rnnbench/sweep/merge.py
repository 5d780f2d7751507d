"""Joining the shards of one sweep into one run document, and proving the join covers the grid.

A nightly sweep runs as N shards (`rnnbench run --shard K/N`) on N machines
of one class, each writing its own run documents (more than one when a
requeued shard is resumed). This module owns putting them back together:
`find_documents` collects the documents under the shard folders, and
`merge_documents` checks that they belong together (one commit, one preset,
one grid, one machine class, one shard count), that every shard is there,
that no case was measured twice and, given the grid, that every case of the
grid is present exactly once, in the shard its key hashes to. Any violation
is a one-line `UsageError`: a merged document that silently lacks a shard
would read as "those cases vanished" in every later comparison.

A machine class is what makes timings comparable across hosts: the machine
name (set `RNNBENCH_MACHINE` to the same value on every runner of a class),
the CPU model, the core count and the GPU model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rnnbench.case import FRAMEWORKS
from rnnbench.errors import UsageError
from rnnbench.sweep.grid import Grid, expand, parse_shard, shard_of
from rnnbench.sweep.records import Peak, Record, RunDocument
from rnnbench.sweep.store import iter_runs, new_document, now_iso, read_run, validate

__all__ = ["CLASS_FIELDS", "ShardDocument", "find_documents", "machine_class", "merge_documents", "sweep_grid"]

# the fingerprint fields two shards must share for their timings to form one run
CLASS_FIELDS = ("machine", "cpu_model", "cpu_cores", "gpu_name")
MEASURED = ("ok", "failed")


@dataclass(frozen=True)
class ShardDocument:
    """One run document found under a shard folder."""

    path: Path
    doc: RunDocument

    @property
    def shard(self) -> tuple[int, int]:
        """(K, N); a document run without --shard counts as 1/1."""
        return parse_shard(self.doc.shard) if self.doc.shard else (1, 1)


def find_documents(paths: Iterable[Path]) -> list[ShardDocument]:
    """Every run document in `paths` (files, results folders with `runs/`, or folders holding documents)."""
    found: list[ShardDocument] = []
    for path in map(Path, paths):
        if path.is_file():
            try:
                found.append(ShardDocument(path, read_run(path)))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            continue
        if not path.is_dir():
            raise UsageError(f"no such shard file or folder: {path}")
        docs = [ShardDocument(p, d) for p, d in iter_runs(path)]
        if not docs:  # a folder of documents without the store's runs/<machine>/ layout
            for p in sorted(path.rglob("*.json")):
                try:
                    docs.append(ShardDocument(p, read_run(p)))
                except ValueError:
                    continue  # asv results and other files may sit beside the documents
        if not docs:
            raise UsageError(f"no rnnbench run documents under {path}")
        found += docs
    return found


def machine_class(machine: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(machine.get(f) for f in CLASS_FIELDS)


def _one(docs: Sequence[ShardDocument], what: str, value: Any) -> Any:
    """The value every document shares; a one-line error naming two that differ."""
    first = value(docs[0])
    for d in docs[1:]:
        if value(d) != first:
            raise UsageError(
                f"shards from different {what}: {value(docs[0])!r} ({docs[0].path.name}) "
                f"vs {value(d)!r} ({d.path.name})"
            )
    return first


def sweep_grid(docs: Sequence[ShardDocument]) -> tuple[Grid, list[str]]:
    """The one grid every shard ran, read from the documents' headers, and the frameworks installed on the
    shard machines; UsageError if a document does not record its grid or the shards ran different ones.

    A document written before run documents filed their grid has none: its grid is not guessed from its
    saved command line (that is the CLI's parser, a layer above this one); it is re-run, or merged
    without the grid check.
    """
    grids: list[tuple[ShardDocument, Grid]] = []
    for d in docs:
        if d.doc.grid is None:
            raise UsageError(
                f"{d.path.name} does not record the grid it swept (written by an older rnnbench): "
                "re-run that shard, or merge with --no-grid-check"
            )
        try:
            grids.append((d, Grid.from_json(dict(d.doc.grid))))
        except UsageError as exc:
            raise UsageError(f"{d.path.name}: {exc}") from None
    for d, g in grids[1:]:
        if g != grids[0][1]:
            raise UsageError(f"shards ran different grids: {grids[0][0].path.name} vs {d.path.name}")
    installed = sorted({f for d in docs for f in d.doc.machine.get("frameworks", {}) if f in FRAMEWORKS})
    return grids[0][1], installed


def _check_shards(docs: Sequence[ShardDocument]) -> tuple[int, str | None]:
    """(shard count, preset) every document shares; UsageError for a mismatch or a missing shard."""
    n = _one(docs, "shard counts", lambda d: d.shard[1])
    _one(docs, "commits", lambda d: d.doc.machine.get("git_commit"))
    preset = _one(docs, "presets", lambda d: d.doc.preset)
    _one(docs, "machine classes", lambda d: machine_class(d.doc.machine))
    have = {d.shard[0] for d in docs}
    missing = [k for k in range(1, n + 1) if k not in have]
    if missing:
        raise UsageError(
            f"missing shard{'s' if len(missing) > 1 else ''} {', '.join(f'{k}/{n}' for k in missing)} "
            f"(found {', '.join(f'{k}/{n}' for k in sorted(have))})"
        )
    return n, preset


def _collect(docs: Sequence[ShardDocument], n: int) -> dict[str, Record]:
    """Every case's record, each from the shard its key hashes to; UsageError for one measured twice."""
    records: dict[str, Record] = {}
    source: dict[str, ShardDocument] = {}
    for d in docs:
        k = d.shard[0]
        for r in d.doc.records:
            key = r.key
            if shard_of(key, n) != k:
                raise UsageError(
                    f"case {key} is in shard {k}/{n} ({d.path.name}) but belongs to shard {shard_of(key, n)}/{n} "
                    f"(shards made by another rnnbench version?)"
                )
            old = records.get(key)
            if old is not None and old.status in MEASURED and r.status in MEASURED:
                raise UsageError(f"case {key} measured twice ({source[key].path.name}, {d.path.name})")
            if old is None or r.status in MEASURED:
                records[key], source[key] = r, d  # a skipped record repeats on every resume: keep one
    return records


def _grid_order(records: dict[str, Record], grid: Grid, installed: Sequence[str] | None, n: int,
                preset: str | None) -> list[str]:  # fmt: skip
    """The keys of `grid`'s cases, grouped as a run writes them; UsageError unless `records` holds exactly those."""
    runs, skipped = expand(grid, installed)
    expected = [c.key for c in runs] + [c.key for c, _ in skipped]
    lacking = [key for key in expected if key not in records]
    if lacking:
        by_shard: dict[int, list[str]] = {}
        for key in lacking:
            by_shard.setdefault(shard_of(key, n), []).append(key)
        k, keys = min(by_shard.items())
        raise UsageError(
            f"shard {k}/{n} is incomplete: {len(keys)} case{'s' if len(keys) > 1 else ''} of the grid missing "
            f"(first: {keys[0]}); rerun it with --resume"
            + (f" ({len(lacking) - len(keys)} more missing in other shards)" if len(lacking) > len(keys) else "")
        )
    extra = sorted(set(records) - set(expected))
    if extra:
        raise UsageError(f"case {extra[0]} is not in the grid of preset {preset!r} ({len(extra)} such cases)")
    position = {key: i for i, key in enumerate(expected)}
    return sorted(expected, key=lambda key: (records[key].case.framework, records[key].case.device, position[key]))


def merge_documents(
    docs: Sequence[ShardDocument],
    *,
    check_grid: bool = True,
    installed: Sequence[str] | None = None,
    command: list[str] | None = None,
) -> RunDocument:
    """One run document holding every shard's records; UsageError unless the shards cover the grid exactly once.

    With `check_grid`, the grid is the one the shards' headers record (`sweep_grid`; `installed`
    overrides the frameworks their machines had); without it only the shards' own records are checked.
    """
    if not docs:
        raise UsageError("no shard documents to merge")
    n, preset = _check_shards(docs)
    records = _collect(docs, n)
    grid: Grid | None = None
    order: list[str] = sorted(records)
    if check_grid:
        grid, had = sweep_grid(docs)
        order = _grid_order(records, grid, installed if installed is not None else had, n, preset)

    first = min(docs, key=lambda d: d.doc.created)
    machine = dict(first.doc.machine) | {"hostnames": sorted({d.doc.machine.get("hostname") or "" for d in docs})}
    finished = [d.doc.finished for d in docs if d.doc.finished]
    peaks: list[Peak] = []
    for d in sorted(docs, key=lambda d: d.shard):
        for p in d.doc.peaks:
            peak = replace(
                p, extra={**p.extra, "shard": f"{d.shard[0]}/{n}", "hostname": d.doc.machine.get("hostname")}
            )
            if peak not in peaks:
                peaks.append(peak)
    merged = replace(
        new_document(
            machine, command=command or ["rnnbench", "merge", *(str(d.path) for d in docs)], preset=preset,
            shard=None, created=datetime.fromisoformat(first.doc.created), grid=grid,
        ),
        finished=max(finished) if finished else now_iso(), peaks=tuple(peaks),
        records=tuple(records[key] for key in order), extra={"merged_from": _provenance(docs, n)},
    )  # fmt: skip
    validate(json.loads(json.dumps(merged.to_json())))
    return merged


def _provenance(docs: Sequence[ShardDocument], n: int) -> list[dict[str, Any]]:
    """`merged_from`: which document each shard's records came from."""
    return [
        {
            "file": str(d.path),
            "run_id": d.doc.run_id,
            "shard": f"{d.shard[0]}/{n}",
            "hostname": d.doc.machine.get("hostname"),
            "created": d.doc.created,
            "finished": d.doc.finished,
            "records": len(d.doc.records),
            "order_seed": d.doc.extra.get("order_seed"),  # each shard's rounds' case order
        }
        for d in sorted(docs, key=lambda d: (d.shard, d.doc.created))
    ]
