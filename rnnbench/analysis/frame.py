"""One tidy frame: every runner document and asv result under `results/` as one pandas DataFrame.

This module owns reading result files (both the runner's `rnnbench-run`
documents, through the typed model in `sweep.records`, and asv 0.6 result
files) and the column vocabulary every analysis (`report`, `compare`,
`regressions`, `export`) works on: one row per measured case, metric and run,
with the `Case` fields, the metric (`metric`, `unit`, `direction`, `value`),
the time statistics, the per-call samples (flat and per round), and the
provenance (source, file, commit, date, machine fingerprint).

Metrics: runner rows and asv `time_*` benchmarks are `time` in `s`, lower is
better, and only they fill `median_s` and the samples. asv `track_*` and
`peakmem_*` benchmarks are their own metrics, named after the method
(`gflops`, `concat_over_separate`) or `peakmem`, with the `unit` from asv's
`benchmarks.json` and a `direction`: `lower` for times and bytes, `higher`
for rates (a unit ending in `/s`, e.g. GFLOP/s), None for anything else
(a ratio has no better side). Their number is in `value`.

Files that are not results (unreadable JSON, another tool's documents, a newer
`api_version`) are skipped with a `SkippedFileWarning` naming the file, and a
malformed record (a field of the wrong type, a non-finite or non-positive
time, statistics that disagree with the samples) with one naming the file and
the field, never an exception: a results tree collected from many machines
always holds some debris, and one bad record must not hide the rest.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import math
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnbench.analysis import columnar
from rnnbench.asvsuite import parse_shape
from rnnbench.case import PASSES, Case
from rnnbench.errors import UsageError
from rnnbench.sweep.grid import CELL_VARIANTS, PRIMARY_MODE
from rnnbench.sweep.records import KIND, DocumentError, Record, RunDocument

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CASE_COLUMNS",
    "COLUMNS",
    "MACHINE_COLUMNS",
    "METRIC_COLUMNS",
    "STAT_COLUMNS",
    "SkippedFileWarning",
    "SkippedRecordWarning",
    "export",
    "iter_rows",
    "load",
    "one_line_warnings",
    "result_files",
]


CASE_COLUMNS = (
    "key",
    "framework",
    "device",
    "cell",
    "variant",
    "nonlinearity",
    "gru_update",
    "gru_reset",
    "formulation",
    "mode",
    "pass",
    "batch",
    "input_size",
    "hidden",
    "seq_len",
    "layers",
    "dtype",
)
METRIC_COLUMNS = (
    "metric",  # "time" (runner rows, asv time_*), "peakmem", or an asv track_* name ("gflops", ...)
    "unit",  # "s", "bytes", or the unit an asv track_* benchmark declares ("GFLOP/s", ...)
    "direction",  # "lower" or "higher" is better; None where neither is (a ratio)
    "value",  # the metric's number: median seconds for "time"
)
STAT_COLUMNS = (
    "status",
    "error",
    "median_s",
    "iqr_s",
    "mean_s",
    "q25_s",
    "q75_s",
    "samples_s",
    "n_samples",
    "rounds",  # sweeps over the case's group whose samples it holds (asv: 1)
    "round_samples_s",  # the samples per round, a list of lists; samples_s is them one after the other
    "number",
    "compile_s",
    "flops",
    "gflops",
    "peak_gflops",
    "peak_fraction",
    "machine_peak_gflops",  # the machine's best GEMM over frameworks (peak_fraction's denominator)
    "bandwidth_gbps",  # the machine's best STREAM triad on the device (the roofline's memory ceiling)
    "gpu_throttled",  # NVML saw a power/thermal slowdown around the case (CUDA only)
    "max_abs_error",
    "max_rel_error",
    "noisy",
    "threads",
)
MACHINE_COLUMNS = (
    "machine",
    "hostname",
    "cpu_model",
    "cpu_cores",
    "gpu_name",
    "gpu_driver",
    "cuda",
    "cudnn",
    "blas",
    "python",
    "os",
    "framework_version",
    "frameworks",
    "lock_digest",  # the digest of the run's environment lock (machine["lock_digest"]; None before locks)
)
PROVENANCE_COLUMNS = (
    "source",  # "run" (rnnbench runner document) or "asv"
    "file",
    "run_id",
    "benchmark",  # asv benchmark name, None for runner rows
    "params",  # asv parameter values as text, None for runner rows
    "commit",
    "dirty",
    "date",  # when the case was measured (asv: the commit date asv records)
    "preset",
    "shard",
)
COLUMNS = (*CASE_COLUMNS, *METRIC_COLUMNS, *STAT_COLUMNS, *MACHINE_COLUMNS, *PROVENANCE_COLUMNS, "commit8")


class SkippedFileWarning(UserWarning):
    """A file under the given paths was not a readable result and was left out."""


class SkippedRecordWarning(SkippedFileWarning):
    """A record in a result file was malformed and was left out (the rest of the file was read)."""


def _skip(path: Path, reason: str, category: type[Warning] = SkippedFileWarning) -> None:
    warnings.warn(f"skipped {path}: {reason}", category, stacklevel=3)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show rnnbench's warnings as `rnnbench: warning: ...` lines on stderr (the CLI's voice)."""

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        print(f"rnnbench: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", SkippedFileWarning)
        old, warnings.showwarning = warnings.showwarning, show
        try:
            yield
        finally:
            warnings.showwarning = old


# -- finding files ---------------------------------------------------------------------------------


def _json_files(paths: Sequence[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            # hidden folders hold asv environments and caches, never results
            for p in sorted(path.rglob("*.json")):
                if not any(part.startswith(".") for part in p.relative_to(path).parts):
                    yield p
        elif path.is_file():
            yield path
        else:
            raise UsageError(f"no such file or directory: {path}")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        _skip(path, f"not readable JSON ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        return None


def _is_asv_result(doc: Any) -> bool:
    return isinstance(doc, dict) and "commit_hash" in doc and "results" in doc and "result_columns" in doc


# -- runner documents --------------------------------------------------------------------------------


def _quantiles(samples: Sequence[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    q25, q75 = np.percentile(np.asarray(samples, dtype=float), [25, 75])
    return float(q25), float(q75)


def _machine_columns(machine: dict[str, Any], framework: str) -> dict[str, Any]:
    frameworks = machine.get("frameworks") or {}
    return {
        "machine": machine.get("machine"),
        "hostname": machine.get("hostname"),
        "cpu_model": machine.get("cpu_model"),
        "cpu_cores": machine.get("cpu_cores"),
        "gpu_name": machine.get("gpu_name"),
        "gpu_driver": machine.get("gpu_driver"),
        "cuda": machine.get("cuda"),
        # each framework's own cuDNN (read in its worker), else the run's
        "cudnn": ((machine.get("runtimes") or {}).get(framework) or {}).get("cudnn") or machine.get("cudnn"),
        "blas": machine.get("blas"),
        "python": machine.get("python"),
        "os": machine.get("os"),
        "framework_version": frameworks.get(framework) if isinstance(frameworks, dict) else None,
        # a dict per row would make the frame unhashable and unexportable; JSON text keeps it whole
        "frameworks": json.dumps(frameworks, sort_keys=True) if frameworks else None,
        "lock_digest": machine.get("lock_digest") if isinstance(machine.get("lock_digest"), str) else None,
    }


def _time_columns(samples: Any) -> dict[str, Any]:
    """The time statistics of a `records.Samples` (or of none) as frame columns."""
    if samples is None:
        return {"median_s": None, "iqr_s": None, "mean_s": None, "q25_s": None, "q75_s": None,
                "samples_s": [], "n_samples": 0, "rounds": 0, "round_samples_s": []}  # fmt: skip
    q25, q75 = samples.quartiles_s
    return {
        "median_s": samples.median_s,
        "iqr_s": q75 - q25,
        "mean_s": samples.mean_s,
        "q25_s": q25,
        "q75_s": q75,
        "samples_s": list(samples.flat),
        "n_samples": len(samples.flat),
        "rounds": len(samples.rounds),
        "round_samples_s": [list(r) for r in samples.rounds],
    }


def _record_row(path: Path, doc: RunDocument, rec: Record) -> dict[str, Any]:
    machine = doc.machine
    row: dict[str, Any] = {c: v for c, v in rec.case.to_dict().items() if c in CASE_COLUMNS}
    row |= {"key": rec.key, "variant": rec.case.spec.label, "status": rec.status, "error": rec.error}
    row |= {"metric": "time", "unit": "s", "direction": "lower", "value": rec.median_s}
    row |= _time_columns(rec.samples)
    row |= {
        "number": rec.number,
        "compile_s": rec.compile_s,
        "flops": rec.flops,
        "gflops": rec.gflops,
        "peak_gflops": rec.peak_gflops,
        "peak_fraction": rec.peak_fraction,
        "machine_peak_gflops": rec.machine_peak_gflops,
        "bandwidth_gbps": rec.bandwidth_gbps,
        # NVML's throttle flag, filed by the runner on CUDA cases (kept in the record's extra fields)
        "gpu_throttled": rec.extra.get("gpu_throttled") if isinstance(rec.extra.get("gpu_throttled"), bool) else None,
        "max_abs_error": rec.max_abs_error,
        "max_rel_error": rec.max_rel_error,
        "noisy": rec.noisy,
        "threads": rec.threads,
    }
    row.update(
        **_machine_columns(dict(machine), rec.case.framework),
        source="run",
        file=str(path),
        run_id=doc.run_id,
        benchmark=None,
        params=None,
        commit=machine.get("git_commit"),
        dirty=machine.get("git_dirty"),
        date=rec.timestamp or doc.created,
        preset=doc.preset,
        shard=doc.shard,
    )
    return row


def _run_rows(path: Path, raw: dict[str, Any]) -> Iterator[dict[str, Any]]:
    try:
        doc, problems = RunDocument.from_json(raw)
    except DocumentError as exc:
        _skip(path, str(exc))
        return
    for problem in problems:
        _skip(path, str(problem), SkippedRecordWarning)
    for rec in doc.records:
        yield _record_row(path, doc, rec)


# -- asv results ------------------------------------------------------------------------------------

# The suite's benchmark classes whose cell is not a parameter: the cell sweeps are named after their cell
# (`RNNCell`, older suites `GRU`), and `StackedLayers` (benchmarks/bench_layers.py) stacks LSTM layers.
_CLASS_CELLS = {"rnn": "rnn", "gru": "gru", "lstm": "lstm", "stackedlayers": "lstm"}
# older suites wrote shapes as `b16_i64_h64_t32[_l2]`; today's write `B16 I64 H64 T32` (asvsuite.shapes)
_LEGACY_SHAPE = re.compile(r"^b(\d+)_i(\d+)_h(\d+)_t(\d+)(?:_l(\d+))?$")
_SHAPE_NAMES = ("batch", "input_size", "hidden", "seq_len", "layers")
# asv benchmark types (benchmarks.json `type`) -> metric name and unit, where the type fixes them
_TYPE_METRICS = {"time": ("time", "s"), "peakmemory": ("peakmem", "bytes"), "memory": ("mem", "bytes")}
_METHOD_TYPES = {"time_": "time", "peakmem_": "peakmemory", "mem_": "memory", "track_": "track"}


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _shape_fields(value: Any) -> dict[str, int]:
    """A shape parameter -> Case fields: `B16 I64 H64 T32` (today), `b16_i64_h64_t32[_l2]` or a tuple (older suites)."""
    if isinstance(value, str):
        try:
            return dict(zip(_SHAPE_NAMES, parse_shape(value)))
        except UsageError:
            pass
        if m := _LEGACY_SHAPE.match(value):
            return {n: int(v) for n, v in zip(_SHAPE_NAMES, m.groups()) if v is not None}
    if (
        isinstance(value, (tuple, list))
        and len(value) in (4, 5)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return dict(zip(_SHAPE_NAMES, value))
    return {}


def _asv_fields(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The `Case` fields an asv benchmark's name and parameter values say (as many as they say)."""
    parts = name.split(".")
    fields: dict[str, Any] = {}
    for pname, value in params.items():
        if pname == "shape":
            fields.update(_shape_fields(value))
        elif pname == "cell" and value in CELL_VARIANTS:
            spec = CELL_VARIANTS[value]
            fields.update(cell=spec.cell, nonlinearity=spec.nonlinearity)
            fields.update(gru_update=spec.gru_update, gru_reset=spec.gru_reset)
        elif pname in ("pass", "pass_"):
            fields["pass_"] = value
        elif pname == "framework" and isinstance(value, str):
            # `torch:compiled`: a framework in a mode other than its usual one
            framework, _, mode = value.partition(":")
            fields["framework"] = framework
            if mode:
                fields["mode"] = mode
        else:
            fields[pname] = value
    if "cell" not in fields and len(parts) >= 2:
        cls = parts[-2].lower()
        cell = _CLASS_CELLS.get(cls[: -len("cell")] if cls.endswith("cell") else cls)
        if cell:
            fields["cell"] = cell
    method = parts[-1]
    if "pass_" not in fields:
        for prefix in _METHOD_TYPES:
            if method.startswith(prefix) and method[len(prefix) :] in PASSES:
                fields["pass_"] = method[len(prefix) :]
    if "mode" not in fields and fields.get("framework") in PRIMARY_MODE:
        # asv suites that do not parametrise the mode run each framework the way its users do
        fields["mode"] = PRIMARY_MODE[fields["framework"]]
    return fields


def _asv_case(name: str, params: dict[str, Any]) -> Case | None:
    """The `Case` an asv benchmark measured, if its name and parameters say enough to rebuild it."""
    fields = _asv_fields(name, params)
    try:
        return Case.from_dict(fields) if {"framework", "formulation", "cell"} <= fields.keys() else None
    except (UsageError, TypeError, ValueError):
        return None


def _asv_metric(bench: str, info: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(metric, unit, direction) of an asv benchmark, from its `benchmarks.json` type and unit (or its name)."""
    method = bench.rsplit(".", 1)[-1]
    btype = info.get("type")
    if not isinstance(btype, str):
        btype = next((t for p, t in _METHOD_TYPES.items() if method.startswith(p)), "track")
    unit: str | None
    if btype in _TYPE_METRICS:
        metric, unit = _TYPE_METRICS[btype]
    else:
        metric = method[len("track_") :] if method.startswith("track_") else method
        unit = info["unit"] if isinstance(info.get("unit"), str) else None
    if unit in ("s", "bytes"):
        direction: str | None = "lower"
    elif unit is not None and unit.replace(" ", "").endswith("/s"):
        direction = "higher"  # a rate: GFLOP/s, samples/s
    else:
        direction = None  # a ratio, a count: neither side is better by itself
    return metric, unit, direction


def _asv_benchmarks(path: Path, cache: dict[Path, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each benchmark's entry (param_names, type, unit) in the nearest `benchmarks.json` above `path`."""
    for parent in path.parents:
        if parent in cache:
            return cache[parent]
        bj = parent / "benchmarks.json"
        if bj.is_file():
            try:
                doc = json.loads(bj.read_text(encoding="utf-8"))
                info = {k: v for k, v in doc.items() if isinstance(v, dict)} if isinstance(doc, dict) else {}
            except (OSError, ValueError, RecursionError):
                info = {}
            cache[parent] = info
            return info
    return {}


def _asv_machine(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = {}
    mj = path.parent / "machine.json"
    if mj.is_file():
        with contextlib.suppress(OSError, ValueError, RecursionError):
            info = json.loads(mj.read_text(encoding="utf-8"))
    return info if isinstance(info, dict) else {}


def _text_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _asv_rows(
    path: Path, doc: dict[str, Any], bench_cache: dict[Path, dict[str, dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    from asv.results import Results  # lazy: asv is heavy and only `.[asv]` installs it

    try:
        res = Results.load(str(path))
        keys = sorted(res.get_all_result_keys())
        # asv stores the commit date in milliseconds since the epoch
        date = datetime.fromtimestamp(res.date / 1000, tz=timezone.utc).isoformat() if res.date else None
    except Exception as exc:  # asv raises its own error types and plain ones for old formats
        _skip(
            path, f"asv could not read it ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
        )
        return
    machine_json = _asv_machine(path)
    machine_name = _text_or_none(res.params.get("machine")) or _text_or_none(machine_json.get("machine"))
    num_cpu = _literal(str(machine_json["num_cpu"])) if machine_json.get("num_cpu") else None
    machine = {
        "machine": machine_name or path.parent.name,
        "cpu_model": _text_or_none(machine_json.get("cpu")),
        "cpu_cores": num_cpu if isinstance(num_cpu, int) and not isinstance(num_cpu, bool) else None,
        "os": _text_or_none(machine_json.get("os")),
        "python": _text_or_none(res.params.get("python")),
    }
    benchmarks = _asv_benchmarks(path, bench_cache)
    for bench in keys:
        try:
            yield from _asv_bench_rows(path, res, bench, benchmarks.get(bench) or {}, machine, date)
        except Exception as exc:  # a corrupt entry loses that benchmark, never the file or the run
            _skip(path, f"benchmark {bench}: unreadable ({type(exc).__name__})", SkippedRecordWarning)


def _asv_bench_rows(
    path: Path, res: Any, bench: str, info: dict[str, Any], machine: dict[str, Any], date: str | None
) -> Iterator[dict[str, Any]]:
    params = res.get_result_params(bench)
    values = res.get_result_value(bench, params)
    stats = res.get_result_stats(bench, params)
    samples = res.get_result_samples(bench, params)
    combos = list(itertools.product(*params)) if params else [()]
    if not params:  # an unparametrised benchmark has scalars here
        values, stats, samples = [values], [stats], [samples]
    pnames = list(info.get("param_names") or []) or [f"param{i}" for i in range(len(params))]
    metric, unit, direction = _asv_metric(bench, info)
    is_time = metric == "time"
    for i, combo in enumerate(combos):
        pvalues = {n: _literal(v) for n, v in zip(pnames, combo)}
        fields = _asv_fields(bench, pvalues)
        case = _asv_case(bench, pvalues)
        value = values[i] if i < len(values) else None
        st = (stats[i] if i < len(stats) else None) or {}
        raw_samples = samples[i] if samples and i < len(samples) and samples[i] else []
        status, bad = _asv_status(value, raw_samples, metric)
        if bad:
            _skip(path, f"benchmark {bench} ({', '.join(map(str, combo))}): {bad}", SkippedRecordWarning)
            continue
        row: dict[str, Any] = {k: v for k, v in fields.items() if k in CASE_COLUMNS}
        if "pass_" in fields:
            row["pass"] = fields["pass_"]
        if case:
            row.update(case.to_dict())
            row.update(key=case.key, variant=case.spec.label, flops=case.flops)
        else:
            row["key"] = f"asv/{bench}/" + "/".join(str(v) for v in pvalues.values())
        number = float(value) if status == "ok" and value is not None else None
        median = number if is_time else None
        smp = [float(s) for s in raw_samples] if is_time else []
        q25, q75 = (st.get("q_25"), st.get("q_75")) if is_time else (None, None)
        if smp and q25 is None:
            q25, q75 = _quantiles(smp)
        row.update(
            status=status,
            error=_ASV_ERRORS[status],
            metric=metric,
            unit=unit,
            direction=direction,
            value=number,
            median_s=median,
            iqr_s=(q75 - q25) if q25 is not None and q75 is not None else None,
            q25_s=q25,
            q75_s=q75,
            samples_s=smp,
            n_samples=len(smp),
            rounds=1 if smp else 0,
            round_samples_s=[smp] if smp else [],
            number=st.get("number") if is_time else None,
            gflops=(case.flops / median / 1e9) if case and median else None,
            **{**dict.fromkeys(MACHINE_COLUMNS), **machine},
            source="asv",
            file=str(path),
            run_id=None,
            benchmark=bench,
            params=", ".join(f"{k}={v}" for k, v in pvalues.items()),
            commit=_text_or_none(res.commit_hash),
            dirty=None,
            date=date,
            preset=None,
            shard=None,
        )
        yield row


_ASV_ERRORS = {
    "ok": None,
    "failed": "asv recorded a failure",
    "skipped": "skipped by asv (setup raised NotImplementedError)",
}


def _asv_status(value: Any, raw_samples: Sequence[Any], metric: str) -> tuple[str, str | None]:
    """A result's status, and why an `ok` one cannot be a measurement (None if it can)."""
    # asv writes NaN for a benchmark skipped in setup (NotImplementedError) and null for a failure
    if value is None:
        return "failed", None
    if isinstance(value, float) and math.isnan(value):
        return "skipped", None
    bad = _bad_asv_value(value, positive=metric != "track")
    if bad is None and metric == "time":
        bad = next((f"samples: {_bad_asv_value(s, True)}" for s in raw_samples if _bad_asv_value(s, True)), None)
    return "ok", bad


def _bad_asv_value(v: Any, positive: bool) -> str | None:
    """Why an asv number cannot be a measurement (None if it can)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"not a number ({type(v).__name__})"
    if not math.isfinite(v):
        return f"not finite ({v})"
    if positive and v <= 0:
        return f"not positive ({v})"
    return None


# -- the frame --------------------------------------------------------------------------------------


def result_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The files under `paths` that may hold results (asv's metadata files and hidden folders left out)."""
    for path in _json_files([Path(p) for p in paths]):
        if path.name in ("benchmarks.json", "machine.json") and path.parent.name != "runs":
            continue  # asv's metadata files, read alongside the results they describe
        if path.name == columnar.MARKER:
            continue  # a columnar history inside a results folder: read when named, not walked into
        if "gpu-check" in path.parts[:-1]:
            continue  # a GPU check's own files (fingerprint, summary); its run documents live in runs/
        yield path


def iter_rows(
    paths: Iterable[str | Path] | None = None, headers: dict[str, dict[str, Any]] | None = None
) -> Iterator[dict[str, Any]]:
    """Every measured case in the result files under `paths` (default `results/`), as dicts. `headers`, when
    given, receives each run document's header (all of it but its records) under its rows' `file`."""
    bench_cache: dict[Path, dict[str, dict[str, Any]]] = {}
    for path in result_files(paths or ["results"]):
        doc = _read_json(path)
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == KIND:
            if headers is not None:
                headers[str(path)] = {k: v for k, v in doc.items() if k != "records"}
            yield from _run_rows(path, doc)
        elif _is_asv_result(doc):
            yield from _asv_rows(path, doc, bench_cache)
        elif isinstance(doc, dict) and doc.get("kind") == "rnnbench-verdicts":
            continue  # a night's verdicts (analysis.verdicts), archived beside the results it judged: no rows
        else:
            _skip(path, "neither an rnnbench-run document nor an asv result")


def load(
    paths: Iterable[str | Path] | str | Path | None = None,
    machines: Iterable[str] | None = None,
    last: int | None = None,
    since: str | None = None,
    samples: bool = True,
    headers: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """All runner documents, asv results and history folders under `paths` (default `results/`).

    One row per measured case, metric and run, columns `COLUMNS`; `date` is a
    UTC timestamp, `samples_s` a list of per-call seconds (empty when none
    were recorded, or when a history no longer keeps that night's samples)
    and `round_samples_s` the same samples as one list per round. Files that
    are not results are skipped with a `SkippedFileWarning`, malformed records
    with a `SkippedRecordWarning` naming the file and field, unreadable
    history nights likewise. `machines`, `last` (runs per machine) and `since`
    (a UTC date) narrow what is read: a history folder (`analysis.columnar`)
    opens only those nights; documents are read, then narrowed the same way.
    `samples=False` leaves a history's samples unread (empty lists), for the
    verdicts that need medians only. `headers`, when given, receives each run
    document's header (all of it but its records: what `rnnbench history
    import` stores beside a night's rows) keyed by its rows' `file`.
    """
    import pandas as pd  # lazy: pandas is heavy and only `.[report]` installs it

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in (paths or ["results"])]
    histories = [p for p in paths if columnar.is_history(p)]
    documents = [p for p in paths if p not in histories]
    machines = list(machines) if machines is not None else None
    parts = [pd.DataFrame(list(iter_rows(documents, headers)), columns=list(COLUMNS[:-1]))] if documents else []
    if parts and (machines is not None or last is not None or since is not None):
        parts[0] = _narrowed(parts[0], machines, last, since)
    for root in histories:
        stored = columnar.read_frame(
            root, machines, last, since, samples=samples,
            on_corrupt=lambda exc: warnings.warn(str(exc), SkippedFileWarning, 2),
        )  # fmt: skip
        parts.append(stored.reindex(columns=list(COLUMNS[:-1])))
    if not parts:
        frame = pd.DataFrame(columns=list(COLUMNS[:-1]))
    elif len(parts) == 1:
        frame = parts[0]
    else:
        frame = pd.concat(parts, ignore_index=True)
    if histories:
        # Parquet hands back a column that was all missing in one night as nulls of no type, and concat
        # then makes the text columns `object`: infer them again, as building the frame from rows does
        frame = frame.infer_objects()
    frame["date"] = pd.to_datetime(frame["date"], utc=True, errors="coerce", format="mixed")
    int_columns = ("batch", "input_size", "hidden", "seq_len", "layers", "flops", "number", "threads", "cpu_cores")
    for col in (*int_columns, "rounds"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    for col in ("value", "median_s", "iqr_s", "mean_s", "q25_s", "q75_s", "compile_s", "gflops", "peak_gflops",
                "machine_peak_gflops", "bandwidth_gbps"):  # fmt: skip
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["commit8"] = frame["commit"].astype("object").map(lambda c: c[:8] if isinstance(c, str) else None)
    return frame


def _narrowed(frame: pd.DataFrame, machines: list[str] | None, last: int | None, since: str | None) -> pd.DataFrame:
    """Documents' rows narrowed as a history read would be: machines, runs from `since`, the `last` N per machine."""
    import pandas as pd

    if machines is not None:
        frame = frame[frame["machine"].isin(machines)]
    dates = pd.to_datetime(frame["date"], utc=True, errors="coerce", format="mixed")
    if since is not None:
        frame, dates = frame[dates >= pd.Timestamp(since, tz="UTC")], dates[dates >= pd.Timestamp(since, tz="UTC")]
    if last is not None:
        starts = pd.DataFrame({"machine": frame["machine"], "file": frame["file"], "date": dates})
        first = starts.groupby(["machine", "file"], dropna=False)["date"].min().reset_index()
        first["n"] = first.sort_values("date").groupby("machine", dropna=False).cumcount(ascending=False)
        keep = set(first.loc[first["n"] < last, "file"])
        frame = frame[frame["file"].isin(keep)]
    return frame


def export(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write `frame` as CSV or Parquet (by the suffix of `out`); samples become JSON text in CSV."""
    out = Path(out)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        flat = frame.copy()
        flat["samples_s"] = [json.dumps(list(s)) for s in flat["samples_s"]]
        flat["round_samples_s"] = [json.dumps([list(r) for r in s]) for s in flat["round_samples_s"]]
        flat.to_csv(out, index=False)
    else:
        raise UsageError(f"--out must end in .csv or .parquet, got {out.name!r}")
    return out
