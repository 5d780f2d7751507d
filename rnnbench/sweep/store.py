"""The results store: versioned JSON run documents under `results/runs/<machine>/`.

One document per run (`<created>-<commit8>-<run8>.json`), carrying an
`api_version`, the machine fingerprint, the measured peaks and one record per
case; what a document and a record are (and how every version is read) is
`sweep.records`. asv keeps its own results beside these, in `results/asv/`
(its `results_dir`), so neither format has to know the other.

Durability: a run rewrites *its own* file after every case, atomically
(write a temporary file in the same directory, fsync, rename), so a crash or
Ctrl-C keeps every finished case and never leaves a half-written file; run
files have unique names, so concurrent runs never touch each other's and
nothing existing is overwritten. `iter_documents` is a generator over every
readable document, skipping (with a one-line warning naming the file and the
field) files that are not ours and records that are malformed.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rnnbench.sweep.records import API_VERSION, KIND, RECORD_FIELDS, DocumentError, Record, RunDocument

__all__ = [
    "API_VERSION",
    "KIND",
    "RECORD_FIELDS",
    "RunWriter",
    "done_keys",
    "iter_documents",
    "iter_runs",
    "new_document",
    "now_iso",
    "read_document",
    "read_run",
    "validate",
    "write_document",
]

RUNS_DIR = "runs"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_document(
    machine: dict[str, Any], *, command: list[str], preset: str | None, shard: str | None,
    created: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """An empty run document (its on-disk form): header, fingerprint, no peaks or records yet."""
    created = created or datetime.now(timezone.utc)
    return RunDocument(
        run_id=uuid.uuid4().hex, created=created.isoformat(timespec="seconds"), machine=machine,
        command=tuple(command), preset=preset, shard=shard,
    ).to_json()  # fmt: skip


class RunWriter:
    """Accumulates one run's records and keeps its document on disk current after each one."""

    def __init__(self, results_dir: Path, machine: dict[str, Any], *, command: list[str], preset: str | None,
                 shard: str | None) -> None:  # fmt: skip
        created = datetime.now(timezone.utc)
        self.doc = new_document(machine, command=command, preset=preset, shard=shard, created=created)
        self.run_id: str = self.doc["run_id"]
        commit = (machine.get("git_commit") or "nocommit")[:8]
        directory = Path(results_dir) / RUNS_DIR / machine["machine"]
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{created:%Y%m%dT%H%M%S}-{commit}-{self.run_id[:8]}.json"
        self.flush()

    def add_peak(self, peak: dict[str, Any]) -> None:
        self.doc["peaks"].append(peak)
        self.flush()

    def add(self, record: Record | dict[str, Any]) -> None:
        self.doc["records"].append(record.to_json() if isinstance(record, Record) else record)
        self.flush()

    def replace(self, index: int, record: Record | dict[str, Any]) -> None:
        """Update a record in place (a later round of the same case)."""
        self.doc["records"][index] = record.to_json() if isinstance(record, Record) else record
        self.flush()

    def finish(self) -> None:
        self.doc["finished"] = now_iso()
        self.flush()

    def flush(self) -> None:
        _atomic_write(self.path, json.dumps(self.doc, indent=1, allow_nan=True) + "\n")


def write_document(results_dir: Path, doc: dict[str, Any]) -> Path:
    """Store a finished document (e.g. merged shards) under `results_dir/runs/<machine>/`, as `RunWriter` names it."""
    created = datetime.fromisoformat(doc["created"])
    commit = (doc["machine"].get("git_commit") or "nocommit")[:8]
    directory = Path(results_dir) / RUNS_DIR / doc["machine"]["machine"]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{created:%Y%m%dT%H%M%S}-{commit}-{doc['run_id'][:8]}.json"
    _atomic_write(path, json.dumps(doc, indent=1, allow_nan=True) + "\n")
    return path


def validate(doc: Any) -> None:
    """ValueError naming the field unless `doc` is a run document whose every record and peak is well-formed."""
    try:
        _, problems = RunDocument.from_json(doc)
    except DocumentError as exc:
        raise ValueError(str(exc)) from None
    if problems:
        raise ValueError(f"{len(problems)} malformed: {problems[0]}" + (" (and more)" if len(problems) > 1 else ""))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: not readable JSON ({type(exc).__name__})") from exc


def read_run(path: Path) -> RunDocument:
    """One run document, typed; its malformed records are left out with a warning each naming the field.

    ValueError if the file is not a readable run document of a known api_version.
    """
    try:
        doc, problems = RunDocument.from_json(_read_json(path))
    except DocumentError as exc:
        raise ValueError(f"{path}: {exc}") from None
    for problem in problems:
        warnings.warn(f"{path}: skipped {problem}", stacklevel=2)
    return doc


def read_document(path: Path) -> dict[str, Any]:
    """One run document as written (its JSON), less its malformed records and peaks (a warning each); ValueError if
    the file is not a run document at all."""
    raw = _read_json(path)
    try:
        _, problems = RunDocument.from_json(raw)
    except DocumentError as exc:
        raise ValueError(f"{path}: {exc}") from None
    doc: dict[str, Any] = raw
    if problems:
        for problem in problems:
            warnings.warn(f"{path}: skipped {problem}", stacklevel=2)
        bad = {(p.what, p.index) for p in problems}
        doc = doc | {
            "records": [r for i, r in enumerate(doc["records"]) if ("record", i) not in bad],
            "peaks": [p for i, p in enumerate(doc.get("peaks", [])) if ("peak", i) not in bad],
        }
    return doc


def _paths(results_dir: Path) -> list[Path]:
    root = Path(results_dir) / RUNS_DIR
    return sorted(root.glob("*/*.json")) if root.is_dir() else []


def iter_runs(results_dir: Path) -> Iterator[tuple[Path, RunDocument]]:
    """(path, typed document) for every run document under `results_dir/runs`; what is not one is skipped with a warning."""
    for path in _paths(results_dir):
        try:
            yield path, read_run(path)
        except ValueError as exc:
            warnings.warn(str(exc), stacklevel=2)


def iter_documents(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(path, document as written) for every run document under `results_dir/runs` (warns and skips the rest)."""
    for path in _paths(results_dir):
        try:
            yield path, read_document(path)
        except ValueError as exc:
            warnings.warn(str(exc), stacklevel=2)


def done_keys(results_dir: Path, machine: str, commit: str | None) -> set[str]:
    """Keys of cases already measured (ok or failed) on this machine at this commit: what --resume skips.

    Malformed records are skipped with a warning (they are measured again), never a crash.
    """
    keys: set[str] = set()
    for _, doc in iter_runs(results_dir):
        fp = doc.machine
        if fp.get("machine") == machine and fp.get("git_commit") == commit:
            keys |= {r.key for r in doc.records if r.status in ("ok", "failed")}
    return keys
