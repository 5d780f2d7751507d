"""The interactive dashboard: a static site of Plotly charts that reads its data on demand.

This module owns turning results (a history folder or results folders) into
the dashboard's site and writing it:

    SITE/index.html                      the page (package data `site/index.html`)
    SITE/assets/dashboard.{js,css}       its code (package data)
    SITE/assets/plotly.min.js            copied from the `plotly` package: nothing comes from a CDN
    SITE/data/index.js                   every case series: its filter fields, newest value and verdict,
                                         roofline point; the ceilings; the night's regressions
    SITE/data/s/<ab>/<id>.js             one file per case series: its nights (date, commit, framework
                                         version, median, quartiles, the baseline band and verdict)

Every data file is JavaScript that hands its payload to `rnnbenchData(name,
payload)`: the page inserts a `<script>` tag to load one, which works from
the file system (where Chromium refuses `fetch` of a local file) as on
GitHub Pages. The page loads `index.js` first and a series file only when
its history is opened, so the first view costs the same whatever the
history's length, and a case's history costs one small file.

Plotly rather than Vega-Lite: the page builds every chart in its own
JavaScript from columnar arrays, and Plotly's JavaScript API takes such
arrays as they are, with hover, zoom, click events and heatmaps built in;
its PyPI package ships `plotly.min.js` as package data, so the offline
copy is one file copy from an installed, pinned package. (docs/dashboard.md)

A case's band is its baseline: the `HISTORY_CONFIDENCE` prediction
interval from its previous `n` nights, the rule of
`rnnbench.analysis.history.baseline`, computed here for every night at once
(vectorised over the sorted frame) so each point carries its own verdict.
The night's regressions are those of `verdicts.json` where the site folder
holds one, else the series whose newest night lies above its band (the
verdicts `rnnbench regressions --baseline n` gives).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

# the analysis this page uses, in one place (a refactor of analysis/ touches these lines only)
from rnnbench.analysis import columnar
from rnnbench.analysis.frame import SkippedFileWarning, load
from rnnbench.analysis.verdicts import read_verdicts
from rnnbench.errors import UsageError
from rnnbench.judge.published import HISTORY_CONFIDENCE, Published, history_verdicts
from rnnbench.measure.roofline import case_bytes
from rnnbench.report.build import MARKER  # one marker for both kinds: `rnnbench report` wrote this folder

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "BASELINE_RUNS",
    "COLUMNS",
    "VERDICTS_FILE",
    "build_dashboard",
    "read_results",
    "series_id",
]

BASELINE_RUNS = 5  # nights a band is computed from (the nightly's `regressions --baseline 5`)
VERDICTS_FILE = "verdicts.json"  # the night's paired verdicts, where the pipeline left them in the site folder

# the columns the dashboard reads: a history is read by column, so a year of nights stays fast
COLUMNS = (
    "machine",
    "key",
    "source",
    "framework",
    "device",
    "cell",
    "variant",
    "formulation",
    "mode",
    "pass",
    "dtype",
    "batch",
    "input_size",
    "hidden",
    "seq_len",
    "layers",
    "metric",
    "status",
    "median_s",
    "q25_s",
    "q75_s",
    "iqr_s",
    "date",
    "commit",
    "framework_version",
    "flops",
    "gflops",
    "peak_gflops",
    "machine_peak_gflops",
    "bandwidth_gbps",
)
_NUMERIC = ("median_s", "q25_s", "q75_s", "iqr_s", "gflops", "peak_gflops", "machine_peak_gflops", "bandwidth_gbps")
_INTEGER = ("batch", "input_size", "hidden", "seq_len", "layers", "flops")
# filter fields of the index, dictionary-encoded (a value list and one code per case)
_CATEGORIES = ("machine", "source", "framework", "device", "variant", "formulation", "mode", "pass", "dtype", "shape")


def read_results(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The time measurements under `paths` with the dashboard's columns only: a history folder is read
    by column without samples (`columnar.read_frame`), results folders through `rnnbench.load`."""
    import pandas as pd

    paths = [Path(p) for p in (paths or ["results"])]
    histories = [p for p in paths if columnar.is_history(p)]
    documents = [p for p in paths if p not in histories]
    parts = []
    if documents:
        parts.append(load(documents).reindex(columns=list(COLUMNS)))
    for root in histories:
        stored = columnar.read_frame(
            root,
            columns=list(COLUMNS),
            samples=False,
            on_corrupt=lambda exc: warnings.warn(str(exc), SkippedFileWarning, 2),
        )
        parts.append(stored.reindex(columns=list(COLUMNS)))
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0] if parts else pd.DataFrame()
    frame = frame.reindex(columns=list(COLUMNS))
    if frame.empty:
        return frame
    frame["date"] = pd.to_datetime(frame["date"], utc=True, errors="coerce", format="mixed")
    for col in _NUMERIC:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in _INTEGER:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    metric = frame["metric"].astype(object).where(frame["metric"].notna(), "time")
    keep = metric.eq("time") & frame["status"].eq("ok") & frame["median_s"].gt(0) & frame["date"].notna()
    return frame[keep].reset_index(drop=True)


def series_id(machine: object, key: object, source: object) -> str:
    """A case series' name in the site (its data file and its URL): stable across builds."""
    return hashlib.sha1(f"{machine}\0{key}\0{source}".encode()).hexdigest()[:12]


def _rounded(values: Any) -> np.ndarray:
    """`values` to 4 significant digits (what a tooltip shows), vectorised: an integer divided (or
    multiplied) by an exact power of ten is the double nearest the short decimal, so JSON writes it short."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    out = v.copy()
    ok = np.isfinite(v) & (v != 0)
    digits = 3 - np.floor(np.log10(np.abs(v[ok]))).astype(int)
    scale = 10.0 ** np.abs(digits)
    out[ok] = np.where(digits >= 0, np.round(v[ok] * scale) / scale, np.round(v[ok] / scale) * scale)
    return out


def _numbers(values: np.ndarray) -> str:
    """A JSON array of floats, missing values as null."""
    return json.dumps(values.tolist()).replace("NaN", "null")


def _texts(frame: pd.DataFrame, column: str, fmt: Any) -> np.ndarray:
    """`fmt` of each row's value, computed once per distinct value (a year of rows holds few)."""
    import numpy as np

    codes, uniques = frame[column].factorize()
    text = np.array([fmt(u) for u in uniques] + [""], dtype=object)
    return text[codes]  # code -1 (missing) takes the trailing ""


def _series_files(frame: pd.DataFrame, bands: dict[str, np.ndarray], data: Path, paired: dict[str, Any]) -> int:
    """One data file per series: one pass over the sorted frame, each series a slice of its columns,
    every column formatted once for all series."""
    import numpy as np

    codes = frame["_code"].to_numpy()
    sid = frame["_sid"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True])
    texts = {
        "date": _texts(frame, "date", lambda d: f"{d:%Y-%m-%dT%H:%M:%SZ}"),
        "commit": _texts(frame, "commit", lambda c: str(c)[:12]),
        "version": _texts(frame, "framework_version", str),
        "verdict": bands["verdict"].astype(object),
    }
    median = frame["median_s"].to_numpy(dtype=float)
    iqr = frame["iqr_s"].to_numpy(dtype=float)
    numbers = {
        "median": _rounded(median),
        "q25": _rounded(_or(frame["q25_s"].to_numpy(dtype=float), median - iqr / 2)),
        "q75": _rounded(_or(frame["q75_s"].to_numpy(dtype=float), median + iqr / 2)),
        "low": _rounded(bands["low"]),
        "high": _rounded(bands["high"]),
    }
    made: set[Path] = set()
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        name = str(sid[a])
        parts = [f'"id":"{name}"']
        parts += [f'"{k}":{json.dumps(v[a:b].tolist())}' for k, v in texts.items()]
        parts += [f'"{k}":{_numbers(v[a:b])}' for k, v in numbers.items()]
        if name in paired:
            parts.append(f'"paired":{json.dumps(paired[name], allow_nan=False)}')
        folder = data / "s" / name[:2]
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        with open(folder / f"{name}.js", "w", encoding="utf-8") as f:
            f.write(f'rnnbenchData("s:{name}",{{{",".join(parts)}}});\n'.replace("</", "<\\/"))
    return len(bounds) - 1


def _or(values: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """`values`, with `fallback` where a value is missing (older documents have no quartiles, only the IQR)."""
    import numpy as np

    return np.where(np.isnan(values), fallback, values)


def _floats(values: Any) -> list[float | None]:
    """JSON numbers with 4 significant digits, None for a missing value."""
    return [None if v != v else v for v in _rounded(values).tolist()]


def _script(name: str, payload: Any) -> str:
    # `</` is escaped so a key holding "</script>" cannot end an inline script if the file is ever inlined
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f"rnnbenchData({json.dumps(name)},{text});\n"


def _read_verdicts(path: Path) -> list[dict[str, Any]] | None:
    """The cases of the night's verdicts document (`rnnbench verdicts`), or None when there is none."""
    if not path.is_file():
        return None
    return list(read_verdicts(path)["cases"])


def _index(latest: pd.DataFrame, counts: pd.Series) -> dict[str, Any]:
    """The cases' filter fields (dictionary-encoded), newest value and roofline point."""
    import pandas as pd

    shape = [f"B{b} H{h} T{t}" for b, h, t in zip(latest["batch"], latest["hidden"], latest["seq_len"])]
    latest = latest.assign(shape=shape, variant=latest["variant"].fillna(latest["cell"]))
    fields: dict[str, Any] = {}
    for col in _CATEGORIES:
        values = latest[col].astype(object).where(latest[col].notna(), "")
        cat = pd.Categorical(values.astype(str))
        fields[col] = {"values": list(cat.categories), "codes": cat.codes.tolist()}
    intensity: list[float | None] = []
    cols = [
        latest[c].tolist()
        for c in ("cell", "batch", "input_size", "hidden", "seq_len", "layers", "dtype", "pass", "flops")
    ]
    for cell, b, i, h, t, layers, dtype, pas, flops in zip(*cols):
        try:
            traffic = case_bytes(str(cell), int(b), int(i), int(h), int(t), int(layers), str(dtype), pas == "train")
            intensity.append(float(flops) / traffic)
        except (TypeError, ValueError, KeyError, ZeroDivisionError):  # no FLOP count, or not an rnnbench case
            intensity.append(None)
    return {
        "id": latest["_sid"].tolist(),
        "key": latest["key"].astype(str).tolist(),
        "fields": fields,
        "batch": [None if v is pd.NA else int(v) for v in latest["batch"]],
        "hidden": [None if v is pd.NA else int(v) for v in latest["hidden"]],
        "seq_len": [None if v is pd.NA else int(v) for v in latest["seq_len"]],
        "layers": [None if v is pd.NA else int(v) for v in latest["layers"]],
        "median": _floats(latest["median_s"].to_numpy()),
        "date": latest["date"].dt.strftime("%Y-%m-%d").tolist(),
        "nights": [int(counts[s]) for s in latest["_sid"]],
        "gflops": _floats(latest["gflops"].to_numpy()),
        "intensity": [None if v is None else float(f"{v:.4g}") for v in intensity],
    }


def _ceilings(latest: pd.DataFrame) -> list[dict[str, Any]]:
    """Per machine, device and dtype: the roofline's compute and bandwidth ceilings (as the static report)."""
    out = []
    for (machine, device, dtype), g in latest.groupby(["machine", "device", "dtype"], dropna=False):
        best = g["machine_peak_gflops"].max()
        compute = best if best == best else g["peak_gflops"].max()
        bandwidth = g["bandwidth_gbps"].max()
        out.append(
            {
                "machine": str(machine),
                "device": str(device),
                "dtype": str(dtype),
                "compute": None if compute != compute else float(compute),
                "bandwidth": None if bandwidth != bandwidth else float(bandwidth),
            }
        )
    return out


def _regressions(
    latest: pd.DataFrame, bands: dict[str, np.ndarray], n: int, verdicts: list[dict[str, Any]] | None
) -> tuple[list[dict[str, Any]], str]:
    """The newest night's regressions, each with the series it links to, and where they came from:
    `verdicts` (verdicts.json) where given, else each series' newest night outside its baseline band."""
    out: list[dict[str, Any]] = []
    if verdicts is not None:
        ids = dict(zip(latest["key"], latest["_sid"]))
        for v in verdicts:
            if str(v["verdict"]) == Published.REGRESSION.value:
                out.append({**v, "id": ids.get(v["key"]), "verdict": str(v["verdict"])})
        return sorted(out, key=lambda r: -(r.get("ratio") or 0)), f"{VERDICTS_FILE} ({len(verdicts)} verdicts)"
    columns = [latest[c].tolist() for c in ("_sid", "key", "machine", "median_s", "commit")]
    for at, sid, key, machine, new, commit in zip(latest.index.to_numpy(), *columns):
        if bands["verdict"][at] != "regression":
            continue
        out.append(
            {
                "id": sid,
                "key": key,
                "machine": machine,
                "verdict": "regression",
                "ratio": float(new / bands["centre"][at]),
                "low": float(bands["low"][at]),
                "high": float(bands["high"][at]),
                "new": float(new),
                "base": float(bands["centre"][at]),
                "commit": str(commit)[:12] if isinstance(commit, str) else "",
            }
        )
    return sorted(out, key=lambda r: -r["ratio"]), (
        f"baseline band of the previous {n} nights ({HISTORY_CONFIDENCE:.0%} prediction interval)"
    )


def _paired(verdicts: list[dict[str, Any]] | None, frame: pd.DataFrame) -> dict[str, dict]:
    """Series id -> the newest night's paired verdict (for its tooltip), from verdicts.json."""
    if not verdicts:
        return {}
    ids = dict(zip(frame["key"], frame["_sid"]))
    keep = ("verdict", "ratio", "ci_low", "ci_high", "method")
    return {ids[v["key"]]: {k: v.get(k) for k in keep} for v in verdicts if v["key"] in ids}


def check_out_dir(out: Path) -> None:
    """UsageError unless `out` is missing, empty (but for a verdicts.json), or a folder a report wrote."""
    if not out.exists() or (out / MARKER).is_file():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    try:
        names = {p.name for p in out.iterdir()}
    except OSError as exc:
        raise UsageError(f"cannot read --out {out}: {exc.strerror or exc}") from None
    if names - {VERDICTS_FILE}:
        raise UsageError(
            f"--out {out} is not empty and no earlier report was written there (no {MARKER}); "
            "give a new or empty folder"
        )


def _plotly_js() -> Path:
    try:
        import plotly
    except ImportError:
        raise UsageError("the dashboard needs plotly (pip install 'rnnbench[report]'), or use --static") from None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise UsageError(f"the installed plotly has no {path}; reinstall plotly")
    return path


def _write_site(
    out: Path,
    frame: pd.DataFrame,
    bands: dict[str, Any],
    index: dict[str, Any],
    paired: dict[str, Any],
    plotly_js: Path,
) -> None:
    """The site's files: built in a folder beside the old site and swapped in at the end, so a failed
    build leaves the previous site."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in (*out.glob(".build-*"), *out.glob(".old-*")):  # what a killed build left
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".build-"))
    try:
        data = stage / "data"
        data.mkdir()
        _series_files(frame, bands, data, paired)
        (data / "index.js").write_text(_script("index", index), encoding="utf-8")
        assets = stage / "assets"
        assets.mkdir()
        shutil.copyfile(plotly_js, assets / "plotly.min.js")
        site = resources.files("rnnbench.report") / "site"
        for name in ("dashboard.js", "dashboard.css"):
            (assets / name).write_text(site.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
        (stage / "index.html").write_text(site.joinpath("index.html").read_text(encoding="utf-8"), encoding="utf-8")
        (out / MARKER).write_text("written by rnnbench report; a later report may replace this folder's files\n")
        for name in ("data", "assets"):
            old = out / name
            if old.exists():
                trash = Path(tempfile.mkdtemp(dir=out, prefix=".old-"))
                os.replace(old, trash / name)
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(stage / name, old)
        os.replace(stage / "index.html", out / "index.html")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write to {out}: {exc.strerror or exc}", str(out)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def build_dashboard(
    frame: pd.DataFrame,
    out: str | Path,
    baseline_runs: int = BASELINE_RUNS,
    threshold: float = 0.05,
    verdicts: str | Path | None = None,
) -> Path:
    """Write the dashboard for `frame` (from `read_results`) into `out`; returns `out/index.html`.

    `verdicts`: a verdicts.json to show as the night's regressions (default: `out/verdicts.json`
    where it exists, else the baseline of each series' previous `baseline_runs` nights).
    """
    out = Path(out)
    check_out_dir(out)
    if frame.empty:
        raise UsageError("no successful time measurement to show")
    plotly_js = _plotly_js()
    verdict_rows = _read_verdicts(Path(verdicts) if verdicts else out / VERDICTS_FILE)
    if verdicts and verdict_rows is None:
        raise UsageError(f"--verdicts {verdicts}: no such file")

    import numpy as np

    # one code per series, computed per distinct series (not per row: a year holds millions of rows)
    code = frame.groupby(["machine", "key", "source"], sort=False, dropna=False).ngroup().to_numpy()
    heads = frame.drop_duplicates(["machine", "key", "source"])
    sid = np.array([series_id(m, k, s) for m, k, s in zip(heads["machine"], heads["key"], heads["source"])], object)
    order = np.lexsort((frame["date"].to_numpy(), code))
    frame = frame.iloc[order].reset_index(drop=True)
    frame["_code"] = code[order]
    frame["_sid"] = sid[code[order]]
    bands = history_verdicts(
        frame["_code"].to_numpy(), frame["median_s"].to_numpy(dtype=float), baseline_runs, threshold
    )
    latest = frame.drop_duplicates("_code", keep="last")
    counts = frame["_sid"].value_counts()
    regressions, regression_source = _regressions(latest, bands, baseline_runs, verdict_rows)
    last_verdict = dict(zip(latest["_sid"], bands["verdict"][latest.index.to_numpy()]))
    for r in regressions:  # the index marks what the regressions list says, whatever its source
        if r.get("id"):
            last_verdict[r["id"]] = "regression"
    index = _index(latest, counts)
    index["verdict"] = [last_verdict[s] for s in index["id"]]
    index.update(
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        ceilings=_ceilings(latest),
        regressions=regressions,
        regression_source=regression_source,
        baseline_runs=baseline_runs,
        threshold=threshold,
        first_date=f"{frame['date'].min():%Y-%m-%d}",
        last_date=f"{frame['date'].max():%Y-%m-%d}",
        rows=len(frame),
    )

    _write_site(out, frame, bands, index, _paired(verdict_rows, latest), plotly_js)
    return out / "index.html"
