"""One tidy frame: every runner document and asv result under `results/` as one pandas DataFrame.

This module owns reading result files (both the runner's `rnnbench-run`
documents and asv 0.6 result files) and the column vocabulary every analysis
(`report`, `compare`, `regressions`, `export`) works on: one row per measured
case per run, with the `Case` fields, the statistics, the per-call samples,
and the provenance (source, file, commit, date, machine fingerprint).

Files that are not results (unreadable JSON, another tool's documents, a newer
`api_version`) are skipped with a `SkippedFileWarning` naming the file, never
an exception: a results tree collected from many machines always holds some
debris, and one bad file must not hide the rest.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.case import Case
from rnnbench.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CASE_COLUMNS",
    "COLUMNS",
    "MACHINE_COLUMNS",
    "STAT_COLUMNS",
    "SkippedFileWarning",
    "export",
    "iter_rows",
    "load",
    "one_line_warnings",
]

RUN_KIND = "rnnbench-run"
RUN_API_VERSION = 1

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
COLUMNS = (*CASE_COLUMNS, *STAT_COLUMNS, *MACHINE_COLUMNS, *PROVENANCE_COLUMNS, "commit8")

_RECORD_REQUIRED = ("key", "framework", "device", "cell", "formulation", "status")


class SkippedFileWarning(UserWarning):
    """A file under the given paths was not a readable result and was left out."""


def _skip(path: Path, reason: str) -> None:
    warnings.warn(f"skipped {path}: {reason}", SkippedFileWarning, stacklevel=3)


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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        _skip(path, f"not readable JSON ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        return None


def _is_asv_result(doc: Any) -> bool:
    return isinstance(doc, dict) and "commit_hash" in doc and "results" in doc and "result_columns" in doc


# -- runner documents --------------------------------------------------------------------------------


def _quantiles(samples: Sequence[float]) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    import numpy as np

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
    }


def _run_rows(path: Path, doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc.get("api_version") != RUN_API_VERSION:
        _skip(path, f"rnnbench-run api_version {doc.get('api_version')!r}, this reader knows {RUN_API_VERSION}")
        return
    machine, records = doc.get("machine"), doc.get("records")
    if not isinstance(machine, dict) or not isinstance(records, list):
        _skip(path, "rnnbench-run document without a machine object and a records list")
        return
    bad = 0
    for rec in records:
        if not isinstance(rec, dict) or any(k not in rec for k in _RECORD_REQUIRED):
            bad += 1
            continue
        samples = [float(s) for s in rec.get("samples_s") or []]
        q25, q75 = _quantiles(samples)
        row = {c: rec.get(c) for c in CASE_COLUMNS + STAT_COLUMNS if c in rec}
        row.update(
            samples_s=samples,
            n_samples=len(samples),
            q25_s=q25,
            q75_s=q75,
            **_machine_columns(machine, str(rec["framework"])),
            source="run",
            file=str(path),
            run_id=doc.get("run_id"),
            benchmark=None,
            params=None,
            commit=machine.get("git_commit"),
            dirty=machine.get("git_dirty"),
            date=rec.get("timestamp") or doc.get("created"),
            preset=doc.get("preset"),
            shard=doc.get("shard"),
        )
        yield row
    if bad:
        _skip(path, f"{bad} of {len(records)} records lack {', '.join(_RECORD_REQUIRED)} (the rest were read)")


# -- asv results ------------------------------------------------------------------------------------

# Benchmark class names in the asv suite are the cell (bench_cells.GRU), method names the pass.
_CELLS = {"rnn": "rnn", "gru": "gru", "lstm": "lstm"}
_SHAPE = re.compile(r"^b(\d+)_i(\d+)_h(\d+)_t(\d+)(?:_l(\d+))?$")


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _shape_fields(value: Any) -> dict[str, int]:
    """`b16_i64_h64_t32[_l2]` or a (batch, input, hidden, seq_len) tuple -> Case fields."""
    names = ("batch", "input_size", "hidden", "seq_len", "layers")
    if isinstance(value, str) and (m := _SHAPE.match(value)):
        return {n: int(v) for n, v in zip(names, m.groups()) if v is not None}
    if isinstance(value, (tuple, list)) and len(value) in (4, 5) and all(isinstance(v, int) for v in value):
        return dict(zip(names, value))
    return {}


def _asv_case(name: str, params: dict[str, Any]) -> Case | None:
    """The `Case` an asv benchmark measured, if its name and parameters say enough to rebuild it."""
    from rnnbench.sweep.grid import CELL_VARIANTS, PRIMARY_MODE

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
        else:
            fields[pname] = value
    if "cell" not in fields and len(parts) >= 2 and parts[-2].lower() in _CELLS:
        fields["cell"] = _CELLS[parts[-2].lower()]
    method = parts[-1]
    if "pass_" not in fields and method.startswith("time_"):
        fields["pass_"] = method[len("time_") :]
    if "mode" not in fields and fields.get("framework") in PRIMARY_MODE:
        # asv suites that do not parametrise the mode run each framework the way its users do
        fields["mode"] = PRIMARY_MODE[fields["framework"]]
    try:
        return Case.from_dict(fields) if {"framework", "formulation", "cell"} <= fields.keys() else None
    except (UsageError, TypeError):
        return None


def _asv_param_names(path: Path, cache: dict[Path, dict[str, list[str]]]) -> dict[str, list[str]]:
    """Parameter names per benchmark from the nearest `benchmarks.json` above `path`."""
    for parent in path.parents:
        if parent in cache:
            return cache[parent]
        bj = parent / "benchmarks.json"
        if bj.is_file():
            try:
                doc = json.loads(bj.read_text(encoding="utf-8"))
                names = {k: list(v.get("param_names") or []) for k, v in doc.items() if isinstance(v, dict)}
            except (OSError, ValueError, AttributeError):
                names = {}
            cache[parent] = names
            return names
    return {}


def _asv_machine(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = {}
    mj = path.parent / "machine.json"
    if mj.is_file():
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(mj.read_text(encoding="utf-8"))
    return info if isinstance(info, dict) else {}


def _asv_rows(
    path: Path, doc: dict[str, Any], names_cache: dict[Path, dict[str, list[str]]]
) -> Iterator[dict[str, Any]]:
    import itertools

    from asv.results import Results

    try:
        res = Results.load(str(path))
    except Exception as exc:  # asv raises its own error types and plain ones for old formats
        _skip(
            path, f"asv could not read it ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})"
        )
        return
    machine_json = _asv_machine(path)
    machine_name = res.params.get("machine") or machine_json.get("machine") or path.parent.name
    machine = {
        "machine": machine_name,
        "cpu_model": machine_json.get("cpu"),
        "cpu_cores": _literal(str(machine_json["num_cpu"])) if machine_json.get("num_cpu") else None,
        "os": machine_json.get("os"),
        "python": res.params.get("python"),
    }
    # asv stores the commit date in milliseconds since the epoch
    date = datetime.fromtimestamp(res.date / 1000, tz=timezone.utc).isoformat() if res.date else None
    param_names = _asv_param_names(path, names_cache)
    for bench in sorted(res.get_all_result_keys()):
        params = res.get_result_params(bench)
        values = res.get_result_value(bench, params)
        stats = res.get_result_stats(bench, params)
        samples = res.get_result_samples(bench, params)
        combos = list(itertools.product(*params)) if params else [()]
        if not params:  # an unparametrised benchmark has scalars here
            values, stats, samples = [values], [stats], [samples]
        pnames = param_names.get(bench) or [f"param{i}" for i in range(len(params))]
        for i, combo in enumerate(combos):
            pvalues = {n: _literal(v) for n, v in zip(pnames, combo)}
            case = _asv_case(bench, pvalues)
            value = values[i] if i < len(values) else None
            st = (stats[i] if i < len(stats) else None) or {}
            smp = [float(s) for s in (samples[i] if samples and i < len(samples) and samples[i] else [])]
            q25, q75 = st.get("q_25"), st.get("q_75")
            if smp and q25 is None:
                q25, q75 = _quantiles(smp)
            ok = value is not None and value == value
            # asv writes NaN for a benchmark skipped in setup (NotImplementedError) and null for a failure
            status = "ok" if ok else ("failed" if value is None else "skipped")
            row: dict[str, Any] = dict(case.to_dict()) if case else {}
            if case:
                row.update(key=case.key, variant=case.spec.label, flops=case.flops)
            else:
                row["key"] = f"asv/{bench}/" + "/".join(str(v) for v in pvalues.values())
            median = float(value) if ok and value is not None else None
            row.update(
                status=status,
                error={
                    "ok": None,
                    "failed": "asv recorded a failure",
                    "skipped": "skipped by asv (setup raised NotImplementedError)",
                }[status],
                median_s=median,
                iqr_s=(q75 - q25) if q25 is not None and q75 is not None else None,
                q25_s=q25,
                q75_s=q75,
                samples_s=smp,
                n_samples=len(smp),
                number=st.get("number"),
                gflops=(case.flops / median / 1e9) if case and median else None,
                **{**dict.fromkeys(MACHINE_COLUMNS), **machine},
                source="asv",
                file=str(path),
                run_id=None,
                benchmark=bench,
                params=", ".join(f"{k}={v}" for k, v in pvalues.items()),
                commit=res.commit_hash,
                dirty=None,
                date=date,
                preset=None,
                shard=None,
            )
            if case:
                row["framework_version"] = None
            yield row


# -- the frame --------------------------------------------------------------------------------------


def iter_rows(paths: Iterable[str | Path] | None = None) -> Iterator[dict[str, Any]]:
    """Every measured case in the result files under `paths` (default `results/`), as dicts."""
    roots = [Path(p) for p in (paths or ["results"])]
    names_cache: dict[Path, dict[str, list[str]]] = {}
    for path in _json_files(roots):
        if path.name in ("benchmarks.json", "machine.json") and path.parent.name != "runs":
            continue  # asv's metadata files, read alongside the results they describe
        doc = _read_json(path)
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == RUN_KIND:
            yield from _run_rows(path, doc)
        elif _is_asv_result(doc):
            yield from _asv_rows(path, doc, names_cache)
        else:
            _skip(path, "neither an rnnbench-run document nor an asv result")


def load(paths: Iterable[str | Path] | str | Path | None = None) -> pd.DataFrame:
    """All runner documents and asv results under `paths` (files or folders; default `results/`).

    One row per measured case per run, columns `COLUMNS`; `date` is a UTC
    timestamp, `samples_s` a list of per-call seconds (empty when none were
    recorded). Files that are not results are skipped with a `SkippedFileWarning`.
    """
    import pandas as pd

    if isinstance(paths, (str, Path)):
        paths = [paths]
    frame = pd.DataFrame(list(iter_rows(paths)), columns=list(COLUMNS[:-1]))
    frame["date"] = pd.to_datetime(frame["date"], utc=True, errors="coerce", format="mixed")
    for col in ("batch", "input_size", "hidden", "seq_len", "layers", "flops", "number", "threads", "cpu_cores"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    for col in ("median_s", "iqr_s", "mean_s", "q25_s", "q75_s", "compile_s", "gflops", "peak_gflops",
                "machine_peak_gflops", "bandwidth_gbps"):  # fmt: skip
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame["commit8"] = frame["commit"].str[:8]
    return frame


def export(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write `frame` as CSV or Parquet (by the suffix of `out`); samples become JSON text in CSV."""
    out = Path(out)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        flat = frame.copy()
        flat["samples_s"] = [json.dumps(list(s)) for s in flat["samples_s"]]
        flat.to_csv(out, index=False)
    else:
        raise UsageError(f"--out must end in .csv or .parquet, got {out.name!r}")
    return out
