"""The results store: versioned JSON run documents under `results/runs/<machine>/`.

One document per run (`<created>-<commit8>-<run8>.json`), carrying an
`api_version`, the machine fingerprint, the measured peaks and one record per
case. asv keeps its own results beside these, in `results/asv/` (its
`results_dir`), so neither format has to know the other.

`RunWriter` is the one writer: it takes typed `records.Record`s, `Peak`s and
header objects (the grid, the rounds' seed, an `ab` header, the frameworks'
runtimes) and keeps their JSON form itself, so no code outside this module
builds or edits a document's dicts.

Durability: a run rewrites *its own* file atomically (write a temporary file
in the same directory, fsync, rename) at most `FLUSH_INTERVAL_S` after each
case and whenever it stops, so a Ctrl-C or an error keeps every finished case,
a SIGKILL loses at most the last two seconds of work (`--resume` measures it
again), and no file is ever left half-written; run
files have unique names, so concurrent runs never touch each other's and
nothing existing is overwritten. `iter_documents` is a generator over every
readable document, skipping (with a one-line warning naming the file and the
field) files that are not ours and records that are malformed; what a
document and a record are (and how every version is read) is `sweep.records`.

Locking: a writer holds an exclusive `flock` on `.<document>.lock` beside its
document while it runs (the kernel drops it when the process dies, even by
SIGKILL), so `live_writers` can tell a run that is still being written from
one that was killed, and `--resume` refuses to race a live one. A writer
removes, in its folder, the temporary and lock files that killed writers
left behind. A failed write (a full disk) raises `OSError` naming the
document, which is left as it was after the last good write.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rnnbench.measure.roofline import apply_machine_peaks
from rnnbench.sweep.grid import Grid
from rnnbench.sweep.records import (
    API_VERSION,
    KIND,
    RECORD_FIELDS,
    ABHeader,
    DocumentError,
    Peak,
    PeakFailure,
    Record,
    RunDocument,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "RECORD_FIELDS",
    "RunWriter",
    "document_text",
    "done_keys",
    "iter_documents",
    "iter_runs",
    "live_writers",
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
    """Replace `path` by `text` all at once; OSError naming `path` (never a temporary file) on failure."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}", str(path)) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


# -- locks ---------------------------------------------------------------------------------------------

_TMP_SUFFIX = ".tmp"
_LOCK_SUFFIX = ".lock"
# a lock file with no document yet is left alone this long: its writer may be between taking
# the lock and writing the document for the first time
_ORPHAN_LOCK_AGE_S = 600.0


def _lock_path(document: Path) -> Path:
    return document.parent / f".{document.name}{_LOCK_SUFFIX}"


def _lock_holder(lock: Path) -> int | None:
    """The pid written in `lock` if a live process holds it, else None (free, missing, or not lockable here)."""
    if sys.platform == "win32":  # pragma: no cover - no flock; resume cannot tell, and does not refuse
        return None
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        try:
            return int(os.pread(fd, 32, 0).decode() or 0) or -1
        except (OSError, ValueError):
            return -1
    finally:
        os.close(fd)
    return None


def _document_of(name: str) -> str | None:
    """`.X.json.abc.tmp` or `.X.json.lock` -> `X.json`."""
    if not name.startswith("."):
        return None
    end = name.find(".json.")
    return name[1 : end + 5] if end > 0 else None


def clean_stale(directory: Path) -> list[Path]:
    """Remove temporary and lock files of documents no live process is writing; returns what went."""
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for path in directory.iterdir():
        if not (path.name.endswith(_TMP_SUFFIX) or path.name.endswith(_LOCK_SUFFIX)):
            continue
        doc = _document_of(path.name)
        if doc is None or _lock_holder(_lock_path(directory / doc)) is not None:
            continue
        if path.name.endswith(_LOCK_SUFFIX) and not (directory / doc).exists():
            try:
                if time.time() - path.stat().st_mtime < _ORPHAN_LOCK_AGE_S:
                    continue
            except OSError:
                continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass  # not ours to remove (permissions): harmless, readers ignore dot files
    return removed


def live_writers(results_dir: Path, machine: str, commit: str | None = None) -> list[tuple[Path, int]]:
    """(document, pid) for every run of `machine` (at `commit`, if given) that a live process is writing."""
    directory = Path(results_dir) / RUNS_DIR / machine
    tag = f"-{(commit or 'nocommit')[:8]}-" if commit is not None else ""
    live = []
    for lock in sorted(directory.glob(f".*{_LOCK_SUFFIX}")) if directory.is_dir() else []:
        doc = _document_of(lock.name)
        if doc is None or tag not in doc:
            continue
        pid = _lock_holder(lock)
        if pid is not None and pid != os.getpid():
            live.append((directory / doc, pid))
    return live


class _DocumentLock:
    """An exclusive flock on a document's lock file, held while the document is being written."""

    def __init__(self, document: Path) -> None:
        self.path = _lock_path(document)
        self.fd: int | None = None
        if sys.platform == "win32":  # pragma: no cover
            return
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot write {self.path}: {exc.strerror or exc}", str(self.path)) from None
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh uniquely named file: never contended
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        # unlink first, while still holding the lock, so no reader finds a free lock on a live name
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def new_document(
    machine: Mapping[str, Any], *, command: Sequence[str], preset: str | None, shard: str | None,
    created: datetime | None = None, grid: Grid | None = None,
) -> RunDocument:  # fmt: skip
    """An empty run document: header, fingerprint, no peaks or records yet."""
    created = created or datetime.now(timezone.utc)
    return RunDocument(
        run_id=uuid.uuid4().hex, created=created.isoformat(timespec="seconds"), machine=dict(machine),
        command=tuple(command), preset=preset, shard=shard, grid=grid.to_json() if grid is not None else None,
    )  # fmt: skip


# The whole document is rewritten (atomically, with an fsync) on a flush, so flushing after every record
# costs time quadratic in the run's length (a sixth of the quick preset's wall time when it was tried;
# docs/measurements/2026-11-22-ci-cpu-2core-harness.md). A record is on disk at most this long after it is
# measured: a SIGKILL loses at most that much work (which `--resume` measures again); a Ctrl-C or an
# error loses nothing (`close` flushes).
FLUSH_INTERVAL_S = 2.0


class RunWriter:
    """Accumulates one run's records and keeps its document on disk current (within `FLUSH_INTERVAL_S`).

    The one writer of run documents: it takes typed `Record`s, `Peak`s and header objects and keeps
    their on-disk form itself (each record's JSON is made once, when it is added or replaced, so a flush
    costs what it did when callers handed in dicts); `records`, `machine` and `document()` read it back.
    """

    def __init__(self, results_dir: Path, machine: Mapping[str, Any], *, command: Sequence[str],
                 preset: str | None, shard: str | None, grid: Grid | None = None) -> None:  # fmt: skip
        created = datetime.now(timezone.utc)
        self._doc = new_document(
            machine, command=command, preset=preset, shard=shard, created=created, grid=grid
        ).to_json()
        self._records: list[Record] = []
        self._peak_failures: list[PeakFailure] = []
        self.run_id: str = self._doc["run_id"]
        commit = (machine.get("git_commit") or "nocommit")[:8]
        directory = Path(results_dir) / RUNS_DIR / machine["machine"]
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot create {directory}: {exc.strerror or exc}", str(directory)) from None
        self.path = directory / f"{created:%Y%m%dT%H%M%S}-{commit}-{self.run_id[:8]}.json"
        clean_stale(directory)
        self._lock = _DocumentLock(self.path)
        self._flushed_at = 0.0
        self._dirty = False
        try:
            self.flush()
        except BaseException:
            self.close()
            raise

    # -- reading back ----------------------------------------------------------------------------------

    @property
    def records(self) -> tuple[Record, ...]:
        """The records so far, in document order."""
        return tuple(self._records)

    def record(self, index: int) -> Record:
        return self._records[index]

    def __len__(self) -> int:
        """How many records the document holds."""
        return len(self._records)

    @property
    def machine(self) -> Mapping[str, Any]:
        """The machine fingerprint as filed (a copy: `set_runtime` is how it changes)."""
        return copy.deepcopy(self._doc["machine"])

    @property
    def peak_failures(self) -> tuple[PeakFailure, ...]:
        return tuple(self._peak_failures)

    def document(self) -> RunDocument:
        """The document as it stands, typed (its records are the ones added, not read back from disk)."""
        # the header through its JSON form (a copy, read as every reader reads it); the records as they are
        doc, _ = RunDocument.from_json(json.loads(json.dumps(self._doc | {"records": []})))
        return replace(doc, records=tuple(self._records))

    def dumps(self) -> str:
        """The document's JSON text, exactly as a flush writes it."""
        return json.dumps(self._doc, indent=1, allow_nan=True) + "\n"

    # -- header ----------------------------------------------------------------------------------------

    def set_order_seed(self, seed: int) -> None:
        """The seed of the rounds' random case order (the order is reproducible from it)."""
        self._doc["order_seed"] = seed
        self.flush_soon()

    def set_ab(self, header: ABHeader) -> None:
        """Mark the document as one side of an `rnnbench ab` run."""
        self._doc["ab"] = header.to_json()
        self.flush()

    def set_runtime(self, framework: str, runtime: Mapping[str, Any]) -> None:
        """File the CUDA runtime and cuDNN `framework` was built with (known only inside a worker) in the
        fingerprint; the machine's `cudnn` is taken from the first framework that reports one."""
        machine = self._doc["machine"]
        machine.setdefault("runtimes", {})[framework] = dict(runtime)
        if machine.get("cudnn") is None and runtime.get("cudnn"):
            machine["cudnn"] = runtime["cudnn"]
        self.flush_soon()

    # -- body ------------------------------------------------------------------------------------------

    def add_peak(self, peak: Peak) -> None:
        self._doc["peaks"].append(peak.to_json())
        self.flush_soon()

    def add_peak_failure(self, failure: PeakFailure) -> None:
        """A peak probe that failed twice: its group's `peak_fraction` stays null, and the run says so."""
        self._peak_failures.append(failure)
        self._doc.setdefault("peak_failures", []).append(failure.to_json())
        self.flush()

    def add(self, record: Record) -> None:
        self._records.append(record)
        self._doc["records"].append(record.to_json())
        self.flush_soon()

    def replace(self, index: int, record: Record) -> None:
        """Update a record in place (a later round of the same case)."""
        self._records[index] = record
        self._doc["records"][index] = record.to_json()
        self.flush_soon()

    def sort_records(self, start: int, key: Callable[[Record], Any]) -> None:
        """Reorder the records from `start` on by `key` (stable)."""
        order = sorted(range(start, len(self._records)), key=lambda i: key(self._records[i]))
        self._records[start:] = [self._records[i] for i in order]
        self._doc["records"][start:] = [self._doc["records"][i] for i in order]
        self.flush_soon()

    def apply_machine_peaks(self) -> None:
        """Give every record the machine's best GEMM rate and bandwidth of this run's peaks, and its
        `peak_fraction` against them (the rule is `measure.roofline.apply_machine_peaks`')."""
        stubs: list[dict[str, Any]] = [
            {"device": r.case.device, "dtype": r.case.dtype, "fp32": r.case.fp32, "gflops": r.gflops}
            for r in self._records
        ]
        apply_machine_peaks({"peaks": self._doc["peaks"], "records": stubs})
        for i, (r, stub) in enumerate(zip(self._records, stubs)):
            new = replace(
                r, machine_peak_gflops=stub["machine_peak_gflops"], bandwidth_gbps=stub["bandwidth_gbps"],
                peak_fraction=stub["peak_fraction"],
            )  # fmt: skip
            if new != r:
                self._records[i] = new
                self._doc["records"][i] = new.to_json()
                self._dirty = True
        self.flush_soon()

    def finish(self) -> None:
        self._doc["finished"] = now_iso()
        self.flush()

    # -- disk ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Write what is not on disk yet, then release the document's lock (the document stays; an
        unfinished one can be resumed)."""
        try:
            if self._dirty:
                self.flush()
        finally:
            self._lock.release()

    @property
    def pending(self) -> bool:
        """Whether something is not on disk yet (the next flush, or `close`, writes it)."""
        return self._dirty

    def flush_soon(self) -> None:
        """Flush when the last flush is `FLUSH_INTERVAL_S` old; otherwise at the next flush or `close`."""
        self._dirty = True
        if time.monotonic() - self._flushed_at >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Write the whole document now (atomically)."""
        _atomic_write(self.path, self.dumps())
        self._dirty = False
        self._flushed_at = time.monotonic()


def document_text(doc: RunDocument) -> str:
    """A document's JSON text, as the store writes it."""
    return json.dumps(doc.to_json(), indent=1, allow_nan=True) + "\n"


def write_document(results_dir: Path, doc: RunDocument) -> Path:
    """Store a finished document (e.g. merged shards) under `results_dir/runs/<machine>/`, as `RunWriter` names it."""
    created = datetime.fromisoformat(doc.created)
    commit = (doc.machine.get("git_commit") or "nocommit")[:8]
    directory = Path(results_dir) / RUNS_DIR / doc.machine["machine"]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{created:%Y%m%dT%H%M%S}-{commit}-{doc.run_id[:8]}.json"
    _atomic_write(path, document_text(doc))
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
    """Keys of cases already measured (ok, failed or inaccurate) on this machine at this commit: what --resume skips.

    Malformed records are skipped with a warning (they are measured again), never a crash.
    """
    keys: set[str] = set()
    for _, doc in iter_runs(results_dir):
        fp = doc.machine
        if fp.get("machine") == machine and fp.get("git_commit") == commit:
            keys |= {r.key for r in doc.records if r.status in ("ok", "failed", "inaccurate")}
    return keys
