"""The results store: versioned JSON run documents under `results/runs/<machine>/`.

One document per run (`<created>-<commit8>-<run8>.json`), carrying an
`api_version`, the machine fingerprint, the measured peaks and one record per
case. asv keeps its own results beside these, in `results/asv/` (its
`results_dir`), so neither format has to know the other.

Durability: a run rewrites *its own* file after every case, atomically
(write a temporary file in the same directory, fsync, rename), so a crash or
Ctrl-C keeps every finished case and never leaves a half-written file; run
files have unique names, so concurrent runs never touch each other's and
nothing existing is overwritten. `iter_documents` is a generator over every
readable document, skipping (with a warning) files that are not ours.
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

__all__ = [
    "API_VERSION",
    "RECORD_FIELDS",
    "SCHEMA",
    "RunWriter",
    "done_keys",
    "iter_documents",
    "new_document",
    "now_iso",
    "read_document",
    "validate",
    "write_document",
]

API_VERSION = 1
KIND = "rnnbench-run"
RUNS_DIR = "runs"

RECORD_FIELDS = (
    "key", "framework", "device", "cell", "variant", "nonlinearity", "gru_update", "gru_reset", "formulation",
    "mode", "pass", "batch", "input_size", "hidden", "seq_len", "layers", "dtype",
    "median_s", "iqr_s", "mean_s", "samples_s", "number", "compile_s", "flops", "gflops", "peak_gflops",
    "peak_fraction", "max_abs_error", "max_rel_error", "noisy", "status", "error", "threads", "timestamp",
)  # fmt: skip

_num = {"type": ["number", "null"]}
_int = {"type": ["integer", "null"]}
_str = {"type": ["string", "null"]}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["api_version", "kind", "run_id", "created", "machine", "peaks", "records"],
    "properties": {
        "api_version": {"const": API_VERSION},
        "kind": {"const": KIND},
        "run_id": {"type": "string"},
        "created": {"type": "string"},
        "finished": _str,
        "command": {"type": "array", "items": {"type": "string"}},
        "preset": _str,
        "shard": _str,
        "machine": {
            "type": "object",
            "required": ["machine", "cpu_model", "frameworks", "threads", "python", "os", "git_commit", "git_dirty"],
        },
        "peaks": {
            "type": "array",
            "items": {"type": "object", "required": ["framework", "device", "dtype", "n", "median_s", "gflops"]},
        },
        "records": {
            "type": "array",
            "items": {
                "type": "object",
                "required": list(RECORD_FIELDS),
                "properties": {
                    "status": {"enum": ["ok", "failed", "inaccurate", "skipped"]},
                    "framework": {"type": "string"},
                    "formulation": {"type": "string"},
                    "pass": {"enum": ["forward", "train"]},
                    "batch": {"type": "integer", "minimum": 1},
                    "hidden": {"type": "integer", "minimum": 1},
                    "seq_len": {"type": "integer", "minimum": 1},
                    "layers": {"type": "integer", "minimum": 1},
                    "median_s": _num,
                    "iqr_s": _num,
                    "mean_s": _num,
                    "samples_s": {"type": "array", "items": {"type": "number"}},
                    "number": _int,
                    "compile_s": _num,
                    "flops": {"type": "integer"},
                    "gflops": _num,
                    "peak_fraction": _num,
                    "error": _str,
                },
            },
        },
    },
}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def validate(doc: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` unless `doc` is a run document of this api_version."""
    import jsonschema

    jsonschema.validate(doc, SCHEMA)


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
    """An empty run document: header, fingerprint, no peaks or records yet."""
    created = created or datetime.now(timezone.utc)
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "run_id": uuid.uuid4().hex,
        "created": created.isoformat(timespec="seconds"),
        "finished": None,
        "command": command,
        "preset": preset,
        "shard": shard,
        "machine": machine,
        "peaks": [],
        "records": [],
    }


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

    def add(self, record: dict[str, Any]) -> None:
        self.doc["records"].append(record)
        self.flush()

    def replace(self, index: int, record: dict[str, Any]) -> None:
        """Update a record in place (a later round of the same case)."""
        self.doc["records"][index] = record
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


def read_document(path: Path) -> dict[str, Any]:
    """One run document; ValueError if the file is not one."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ValueError(f"{path}: not an rnnbench run document")
    if doc.get("api_version") != API_VERSION:
        raise ValueError(f"{path}: api_version {doc.get('api_version')!r}, this rnnbench reads {API_VERSION}")
    return doc


def iter_documents(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(path, document) for every run document under `results_dir/runs` (warns and skips foreign files)."""
    root = Path(results_dir) / RUNS_DIR
    for path in sorted(root.glob("*/*.json")) if root.is_dir() else []:
        try:
            yield path, read_document(path)
        except ValueError as exc:
            warnings.warn(str(exc), stacklevel=2)


def done_keys(results_dir: Path, machine: str, commit: str | None) -> set[str]:
    """Keys of cases already measured (ok, failed or inaccurate) on this machine at this commit: what --resume skips."""
    keys: set[str] = set()
    for _, doc in iter_documents(results_dir):
        fp = doc["machine"]
        if fp.get("machine") == machine and fp.get("git_commit") == commit:
            keys |= {r["key"] for r in doc["records"] if r.get("status") in ("ok", "failed", "inaccurate")}
    return keys
