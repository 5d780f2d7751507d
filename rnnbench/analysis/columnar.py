"""The columnar history: a year of nights as Parquet files, read by column, machine and night.

This module owns the history folder's layout and its reads and writes. A
night is one result file (a run document, or an asv result) turned into the
rows `rnnbench.load` gives for it; it is stored as two Parquet files:

    HISTORY/rnnbench-history.json              what this folder is (kind, api_version, keep_samples)
    HISTORY/summary/<machine>/<night>.parquet  one row per case and metric: every frame column but the
                                               samples, plus the per-round medians; a run document's
                                               header (all of it but its records) in the file's metadata
    HISTORY/samples/<machine>/<night>.parquet  the samples of each row, per round (the newest
                                               `keep_samples` nights of each machine only)

`<night>` is the night's UTC start (`YYYYmmddTHHMMSS`) and the result file's
name, so names sort in time and a machine's last N nights are the last N
files: a reader lists one folder and opens only what it needs, reading only
the columns it asks for. Samples dominate a night's size (every sample of
every round), so they are kept for the newest nights only: what judges a
night against its history needs the older nights' medians and spreads, not
their samples, and the run documents (or the workflow's artifacts) keep them.

A night of a run document also keeps that document's header (`document`):
its run_id, start and end, shards and the whole machine fingerprint,
the environment lock's packages included. It is what the nightly's plan
(the previous night's commit and lock) and the landing page (the night and
the one before it) need of a night besides its rows, so the history needs no
run document beside it. It lives in the summary file's Parquet metadata:
written with the night's rows in one atomic rename, and read from the file's
footer alone (`night_document`), without a row.

Parquet through pyarrow rather than DuckDB: the history is append-only files
that a static site, git and a workflow artifact can carry as they are, pyarrow
is already a dependency of the report extra (pandas' own Parquet engine), and
a read of a machine's last nights is a directory listing plus one
`read_table` per file; DuckDB's database file would have to be rewritten
whole by every night's commit to the `results` branch. docs/history.md has
the measurements behind this.

Writes are atomic per file (written beside, then renamed), summary before
samples: a night killed mid-write leaves at most a stray `*.tmp` (ignored
by readers, removed by the next write) and every earlier night readable. A
file that cannot be read (truncated, not Parquet) is reported naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.errors import UsageError
from rnnbench.jsonkind import read_kind_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KEEP_SAMPLES",
    "KIND",
    "MARKER",
    "SAMPLE_COLUMNS",
    "CorruptNightError",
    "Night",
    "create",
    "is_history",
    "newest_documents",
    "night_document",
    "nights",
    "read_frame",
    "read_nights",
    "write_night",
]

KIND = "rnnbench-history"
API_VERSION = 1
MARKER = "rnnbench-history.json"
KEEP_SAMPLES = 30  # nights of each machine whose samples are kept
SAMPLE_COLUMNS = ("samples_s", "round_samples_s")  # stored in samples/, not in summary/
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
DOCUMENT_KEY = b"rnnbench.document"  # the summary's Parquet metadata entry holding the run document's header
# the columns a night stored before its header was kept rebuilds one from, as `frame` names them
_HEADER_COLUMNS = ("source", "run_id", "date", "commit", "dirty", "preset", "shard")
_FINGERPRINT_COLUMNS = ("machine", "hostname", "cpu_model", "cpu_cores", "gpu_name", "gpu_driver", "cuda", "blas",
                        "python", "os", "frameworks", "lock_digest")  # fmt: skip


class CorruptNightError(UsageError):
    """A night's file cannot be read; the message names it."""


@dataclass(frozen=True)
class Night:
    """One stored night of one machine."""

    machine: str
    name: str  # the file stem: UTC start and the result file's name
    summary: Path
    samples: Path | None  # None once the night is older than the kept ones


def is_history(path: str | Path) -> bool:
    """Whether `path` is a history folder (it holds the marker file)."""
    return (Path(path) / MARKER).is_file()


def create(path: str | Path, keep_samples: int = KEEP_SAMPLES) -> Path:
    """An empty history folder at `path` (an existing history is left as it is, its settings kept)."""
    root = Path(path)
    if is_history(root):
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(f"{root} exists and is not an rnnbench history (no {MARKER}); give a new or empty folder")
    root.mkdir(parents=True, exist_ok=True)
    _write_atomically(
        root / MARKER,
        json.dumps({"kind": KIND, "api_version": API_VERSION, "keep_samples": keep_samples}, indent=1).encode(),
    )
    return root


def _settings(root: Path) -> dict[str, Any]:
    return read_kind_json(root / MARKER, KIND, API_VERSION, "history marker")


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _table_bytes(table: Any, floats: bool = False) -> bytes:
    """`table` as zstd Parquet; `floats`: a table of raw float samples, whose mantissas are noise to
    a compressor: byte-stream-split encoding (each byte plane apart) without dictionaries packs them
    17% tighter than the defaults (measured on a night's samples; docs/history.md)."""
    import pyarrow as pa  # heavy: only readers and writers of the history need it
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    if floats:
        pq.write_table(table, sink, compression="zstd", use_dictionary=False, use_byte_stream_split=True)
    else:
        pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def night_name(date: Any, source: str) -> str:
    """`YYYYmmddTHHMMSS-<result file stem>-<digest>`: sorts in time; the digest of the file's bytes
    tells two different files of one name apart (a document and its legacy copy), while storing the
    same file again, from wherever, replaces its night."""
    import pandas as pd  # heavy: the caller has a frame already

    stamp = pd.Timestamp(date)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp
    stem = Path(source).name.removesuffix(".gz").removesuffix(".json")
    try:
        data = Path(source).read_bytes()
    except OSError:
        data = source.encode()
    return f"{stamp:%Y%m%dT%H%M%S}-{_SAFE.sub('_', stem)}-{hashlib.sha1(data).hexdigest()[:8]}"


def write_night(root: str | Path, frame: pd.DataFrame, document: Mapping[str, Any] | None = None) -> Night:
    """Store the rows of one night of one machine (a frame `rnnbench.load` gave for one result file),
    and `document`, the run document's header (all of it but its records; None for an asv result).

    Replaces a night of the same name (writing a night twice is harmless); drops the samples of
    this machine's nights older than the newest `keep_samples`.
    """
    import pyarrow as pa

    root = Path(root)
    settings = _settings(root)
    if frame.empty:
        raise UsageError("nothing to store: the night has no rows")
    machines = frame["machine"].dropna().unique()
    if len(machines) != 1 or frame["file"].nunique() != 1:
        raise UsageError("a night is one result file of one machine")
    machine = _SAFE.sub("_", str(machines[0]))
    name = night_name(frame["date"].min(), str(frame["file"].iloc[0]))
    rows = frame.reset_index(drop=True)
    summary = rows.drop(columns=[c for c in (*SAMPLE_COLUMNS, "commit8") if c in rows.columns])
    summary.insert(0, "row", range(len(rows)))
    summary["round_medians_s"] = [_round_medians(r) for r in rows["round_samples_s"]]
    samples = pa.table(
        {
            "row": pa.array(range(len(rows)), pa.int32()),
            "round_samples_s": pa.array(
                [[list(map(float, r)) for r in rs] for rs in rows["round_samples_s"]], pa.list_(pa.list_(pa.float64()))
            ),
        }
    )
    night = Night(
        machine, name, root / "summary" / machine / f"{name}.parquet", root / "samples" / machine / f"{name}.parquet"
    )
    for path in (night.summary, night.samples):
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(summary, preserve_index=False)
    if document is not None:
        header = json.dumps({k: v for k, v in document.items() if k != "records"})
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), DOCUMENT_KEY: header.encode()})
    _write_atomically(night.summary, _table_bytes(table))
    assert night.samples is not None
    _write_atomically(night.samples, _table_bytes(samples, floats=True))
    _prune_samples(root / "samples" / machine, int(settings.get("keep_samples", KEEP_SAMPLES)))
    return night


def _round_medians(rounds: Sequence[Sequence[float]]) -> list[float]:
    import statistics

    return [statistics.median(r) for r in rounds if len(r)]


def _prune_samples(folder: Path, keep: int) -> None:
    files = sorted(folder.glob("*.parquet"))
    for old in files[: max(0, len(files) - keep)]:
        old.unlink(missing_ok=True)


def nights(
    root: str | Path, machines: Iterable[str] | None = None, last: int | None = None, since: str | None = None
) -> list[Night]:
    """The stored nights, oldest first per machine: of `machines` (default all), the `last` N of each,
    from `since` on (a UTC `YYYY-mm-dd[THH:MM:SS]`)."""
    root = Path(root)
    _settings(root)
    wanted = {_SAFE.sub("_", m) for m in machines} if machines else None
    found: list[Night] = []
    for folder in sorted((root / "summary").glob("*")):
        if not folder.is_dir() or (wanted is not None and folder.name not in wanted):
            continue
        names = sorted(p.stem for p in folder.glob("*.parquet"))
        if since:
            cut = re.sub(r"[-:]", "", since)[:15]
            names = [n for n in names if n[: len(cut)] >= cut]
        if last is not None:
            names = names[-last:] if last > 0 else []
        for name in names:
            samples = root / "samples" / folder.name / f"{name}.parquet"
            found.append(Night(folder.name, name, folder / f"{name}.parquet", samples if samples.is_file() else None))
    return found


def _read(path: Path, columns: Sequence[str] | None) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if columns is None:
            return pq.read_table(path)
        present = set(pq.read_schema(path).names)
        return pq.read_table(path, columns=[c for c in columns if c in present])
    except (OSError, pa.ArrowException) as exc:
        raise CorruptNightError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0][:120]})") from None


def read_frame(
    root: str | Path,
    machines: Iterable[str] | None = None,
    last: int | None = None,
    since: str | None = None,
    columns: Sequence[str] | None = None,
    keys: Iterable[str] | None = None,
    samples: bool = True,
    on_corrupt: Any = None,
) -> pd.DataFrame:
    """The stored rows as one frame (the summary columns, and the samples where kept and asked for).

    `columns` limits what is read (None: every column); `keys` keeps only those cases. A night
    whose files cannot be read is passed to `on_corrupt(error)` and left out, or raises
    `CorruptNightError` when there is no `on_corrupt`. Rows of nights without kept samples have
    empty sample lists.
    """
    return read_nights(nights(root, machines, last, since), columns, keys, samples, on_corrupt)


def read_nights(
    stored: Iterable[Night],
    columns: Sequence[str] | None = None,
    keys: Iterable[str] | None = None,
    samples: bool = True,
    on_corrupt: Any = None,
) -> pd.DataFrame:
    """The rows of the nights `stored` (from `nights`) as one frame, read as `read_frame` reads them."""
    import pandas as pd

    wanted_keys = set(keys) if keys is not None else None
    want_samples = samples and (columns is None or any(c in SAMPLE_COLUMNS for c in columns))
    summary_columns = None if columns is None else ["row", *(c for c in columns if c not in SAMPLE_COLUMNS)]
    parts = []
    for night in stored:
        try:
            table = _read(night.summary, summary_columns).to_pandas()
            if wanted_keys is not None and "key" in table:
                table = table[table["key"].isin(wanted_keys)]
            if want_samples:
                table = _with_samples(table, night)
        except CorruptNightError as exc:
            if on_corrupt is None:
                raise
            on_corrupt(exc)
            continue
        parts.append(table.drop(columns=["row"], errors="ignore"))
    if not parts:
        return pd.DataFrame(columns=list(columns) if columns else [])
    return pd.concat(parts, ignore_index=True)


def night_document(night: Night) -> dict[str, Any] | None:
    """The header of the run document `night` was stored from (all of it but its records), or None for an
    asv result. It is read from the summary file's footer (no row is read); a night stored before headers
    were kept gets one rebuilt from its first row: run_id, created (its first case's date), preset, shard
    and the machine fingerprint as the rows hold it (no package lock, no end time, no shards' list).
    `CorruptNightError` when the file cannot be read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(night.summary).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise CorruptNightError(
            f"{night.summary}: not a readable Parquet file ({str(exc).splitlines()[0][:120]})"
        ) from None
    if DOCUMENT_KEY in metadata:
        try:
            header = json.loads(metadata[DOCUMENT_KEY])
        except ValueError:
            raise CorruptNightError(f"{night.summary}: its run document header is not JSON") from None
        return header if isinstance(header, dict) else None
    return _rebuilt_header(night)


def _rebuilt_header(night: Night) -> dict[str, Any] | None:
    import pandas as pd

    rows = _read(night.summary, [*_HEADER_COLUMNS, *_FINGERPRINT_COLUMNS]).to_pandas()
    if rows.empty or "run_id" not in rows or rows["source"].iloc[0] != "run":
        return None

    def value(column: str) -> Any:
        v = rows[column].iloc[0] if column in rows else None
        return None if v is None or (not isinstance(v, str) and pd.isna(v)) else v.item() if hasattr(v, "item") else v

    machine = {c: value(c) for c in _FINGERPRINT_COLUMNS} | {"git_commit": value("commit"), "git_dirty": value("dirty")}
    if isinstance(machine["frameworks"], str):
        machine["frameworks"] = json.loads(machine["frameworks"])
    created = pd.to_datetime(rows["date"], utc=True, errors="coerce", format="mixed").min()
    return {
        "run_id": value("run_id"), "created": None if pd.isna(created) else created.isoformat(),
        "preset": value("preset"), "shard": value("shard"), "machine": machine,
    }  # fmt: skip


def newest_documents(
    root: str | Path, machine: str | None = None, on_corrupt: Any = None
) -> Iterator[tuple[Night, dict[str, Any]]]:
    """(night, run document header) of the run-document nights in `root`, newest first within each machine
    (of `machine` only, when given), asv nights left out. Each header is read as the caller asks for the
    next one, so finding the newest night opens one file's footer. A night that cannot be read is passed
    to `on_corrupt(error)` and passed over, or raises `CorruptNightError` when there is no `on_corrupt`."""
    by_machine: dict[str, list[Night]] = {}
    for night in nights(root, [machine] if machine is not None else None):
        by_machine.setdefault(night.machine, []).append(night)
    for stored in by_machine.values():
        for night in reversed(stored):
            try:
                header = night_document(night)
            except CorruptNightError as exc:
                if on_corrupt is None:
                    raise
                on_corrupt(exc)
                continue
            if header is not None:
                yield night, header


def _with_samples(table: pd.DataFrame, night: Night) -> pd.DataFrame:
    """`table` with each row's samples from the night's samples file: `round_samples_s` a list of numpy
    arrays (one per round), `samples_s` one array; empty lists where the night keeps no samples.

    Arrays rather than lists of Python floats: a month of nights holds some 15 million samples, and
    Arrow hands them over as arrays without making an object per sample."""
    import numpy as np

    rounds: dict[int, list[Any]] = {}
    flat: dict[int, Any] = {}
    if night.samples is not None:
        stored = _read(night.samples, None)
        nested = stored.column("round_samples_s").combine_chunks()
        rows = stored.column("row").to_numpy()
        per_round = nested.flatten()  # one list per round, all rows one after the other
        values = per_round.flatten().to_numpy(zero_copy_only=False)
        # offsets relative to the first, in case Arrow hands over a slice
        round_bounds = per_round.offsets.to_numpy() - per_round.offsets[0].as_py()
        row_bounds = nested.offsets.to_numpy() - nested.offsets[0].as_py()
        arrays = np.split(values, round_bounds[1:-1])
        for i, r in enumerate(rows):
            a, b = row_bounds[i], row_bounds[i + 1]
            rounds[int(r)] = arrays[a:b]
            flat[int(r)] = values[round_bounds[a] : round_bounds[b]]
    table = table.copy()
    table["round_samples_s"] = [rounds.get(int(r), []) for r in table["row"]]
    table["samples_s"] = [flat.get(int(r), []) for r in table["row"]]
    return table
