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
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.errors import UsageError
from rnnbench.sweep.grid import parse_shard, shard_of
from rnnbench.sweep.store import iter_documents, new_document, now_iso, read_document, validate

if TYPE_CHECKING:
    from rnnbench.sweep.grid import Grid

__all__ = ["CLASS_FIELDS", "ShardDocument", "find_documents", "machine_class", "merge_documents"]

# the fingerprint fields two shards must share for their timings to form one run
CLASS_FIELDS = ("machine", "cpu_model", "cpu_cores", "gpu_name")
MEASURED = ("ok", "failed")


@dataclass(frozen=True)
class ShardDocument:
    """One run document found under a shard folder."""

    path: Path
    doc: dict[str, Any]

    @property
    def shard(self) -> tuple[int, int]:
        """(K, N); a document run without --shard counts as 1/1."""
        text = self.doc.get("shard")
        return parse_shard(text) if text else (1, 1)


def find_documents(paths: Iterable[Path]) -> list[ShardDocument]:
    """Every run document in `paths` (files, results folders with `runs/`, or folders holding documents)."""
    found: list[ShardDocument] = []
    for path in map(Path, paths):
        if path.is_file():
            try:
                found.append(ShardDocument(path, read_document(path)))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            continue
        if not path.is_dir():
            raise UsageError(f"no such shard file or folder: {path}")
        docs = [ShardDocument(p, d) for p, d in iter_documents(path)]
        if not docs:  # a folder of documents without the store's runs/<machine>/ layout
            for p in sorted(path.rglob("*.json")):
                try:
                    docs.append(ShardDocument(p, read_document(p)))
                except ValueError:
                    continue  # asv results and other files may sit beside the documents
        if not docs:
            raise UsageError(f"no rnnbench run documents under {path}")
        found += docs
    return found


def machine_class(machine: dict[str, Any]) -> tuple[Any, ...]:
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


def merge_documents(
    docs: Sequence[ShardDocument],
    *,
    grid: Grid | None = None,
    installed: Sequence[str] | None = None,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """One run document holding every shard's records; UsageError unless the shards cover the grid exactly once.

    `grid` (with `installed`, the frameworks the shard machines had) is the
    sweep the shards ran; without it only the shards' own records are checked.
    """
    from rnnbench.sweep.grid import expand

    if not docs:
        raise UsageError("no shard documents to merge")
    n = _one(docs, "shard counts", lambda d: d.shard[1])
    _one(docs, "commits", lambda d: d.doc["machine"].get("git_commit"))
    preset = _one(docs, "presets", lambda d: d.doc.get("preset"))
    _one(docs, "machine classes", lambda d: machine_class(d.doc["machine"]))
    have = {d.shard[0] for d in docs}
    missing = [k for k in range(1, n + 1) if k not in have]
    if missing:
        raise UsageError(
            f"missing shard{'s' if len(missing) > 1 else ''} {', '.join(f'{k}/{n}' for k in missing)} "
            f"(found {', '.join(f'{k}/{n}' for k in sorted(have))})"
        )

    records: dict[str, dict[str, Any]] = {}
    source: dict[str, ShardDocument] = {}
    for d in docs:
        k = d.shard[0]
        for r in d.doc["records"]:
            key = r["key"]
            if shard_of(key, n) != k:
                raise UsageError(
                    f"case {key} is in shard {k}/{n} ({d.path.name}) but belongs to shard {shard_of(key, n)}/{n} "
                    f"(shards made by another rnnbench version?)"
                )
            old = records.get(key)
            if old is not None and old["status"] in MEASURED and r["status"] in MEASURED:
                raise UsageError(f"case {key} measured twice ({source[key].path.name}, {d.path.name})")
            if old is None or r["status"] in MEASURED:
                records[key], source[key] = r, d  # a skipped record repeats on every resume: keep one

    order: list[str] = sorted(records)
    if grid is not None:
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
        order = sorted(expected, key=lambda key: (records[key]["framework"], records[key]["device"], position[key]))

    first = min(docs, key=lambda d: d.doc["created"])
    machine = dict(first.doc["machine"]) | {"hostnames": sorted({d.doc["machine"].get("hostname") or "" for d in docs})}
    merged = new_document(
        machine,
        command=command or ["rnnbench", "merge", *(str(d.path) for d in docs)],
        preset=preset,
        shard=None,
        created=datetime.fromisoformat(first.doc["created"]),
    )
    finished = [d.doc.get("finished") for d in docs]
    merged["finished"] = max(f for f in finished if f) if any(finished) else now_iso()
    peaks: list[dict[str, Any]] = []
    for d in sorted(docs, key=lambda d: d.shard):
        for p in d.doc["peaks"]:
            peak = p | {"shard": f"{d.shard[0]}/{n}", "hostname": d.doc["machine"].get("hostname")}
            if peak not in peaks:
                peaks.append(peak)
    merged["peaks"] = peaks
    merged["records"] = [records[key] for key in order]
    merged["merged_from"] = [
        {
            "file": str(d.path),
            "run_id": d.doc["run_id"],
            "shard": f"{d.shard[0]}/{n}",
            "hostname": d.doc["machine"].get("hostname"),
            "created": d.doc["created"],
            "finished": d.doc.get("finished"),
            "records": len(d.doc["records"]),
            "order_seed": d.doc.get("order_seed"),  # each shard's rounds' case order
        }
        for d in sorted(docs, key=lambda d: (d.shard, d.doc["created"]))
    ]
    merged["run_id"] = uuid.uuid4().hex
    validate(json.loads(json.dumps(merged)))
    return merged
