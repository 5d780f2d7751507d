"""Histories: each case's series over runs, its step changes, and its newest run against its own baseline.

This module owns the per-case time series and the two judgements made on them.
A series is one case on one machine *and one hardware fingerprint* (CPU model,
GPU model, core count) from one source: asv and the runner are different
timing engines, so their points never join one line, and a machine name whose
hardware changed (a new GPU in the same box, a resized VM) starts a new series
with a warning naming both fingerprints, never a silent merge.

- `detect` finds step changes with asv's own `asv.step_detect.detect_steps`: a
  piecewise-constant fit to the medians (an L1 Potts model, robust to single
  outliers; points weighted by 1/IQR as asv weighs them by 1/CI); each jump of
  at least the threshold between consecutive pieces is a step.
- `baseline` is the statistical mode of continuous-benchmarking services: the
  newest run of every series against the spread of its own previous N runs,
  by the one history rule (`rnnbench.judge.published.judge_history`: a 99%
  prediction interval on log values, never narrower than the threshold; a
  series whose band is wider than the threshold is `too noisy to judge from
  history`, never a regression). The nightly's verdicts apply the same rule.

Both use the metric's direction (a GFLOP/s rise is an improvement, a neutral
ratio only `changed`) and mark framework version changes ("torch 2.12.0 ->
2.13.0") next to the point where they happened.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnbench.display import format_markdown, format_table, format_value, hardware_label, text_or_blank
from rnnbench.judge.bootstrap import prediction_bands
from rnnbench.judge.published import HISTORY_CONFIDENCE, MIN_HISTORY, Published, read_history_band
from rnnbench.judge.rules import change_kind

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BASELINE_CONFIDENCE",
    "MIN_POINTS",
    "BaselineVerdict",
    "HardwareChangeWarning",
    "StepChange",
    "baseline",
    "detect",
    "format_baseline",
    "format_steps",
    "series",
    "version_change",
]

MIN_POINTS = 3  # a step needs a level before it and at least one point after
MIN_LEVEL = 2  # points an interior level must hold to count as one
MIN_BASELINE = MIN_HISTORY  # runs a baseline needs to have a spread
BASELINE_CONFIDENCE = HISTORY_CONFIDENCE
TOO_NOISY = str(Published.TOO_NOISY_HISTORY)


class HardwareChangeWarning(UserWarning):
    """A machine name's results come from more than one hardware fingerprint: its history is split."""


@dataclass(frozen=True)
class StepChange:
    kind: str  # "regression", "improvement", or "changed" (a metric without a direction)
    machine: str
    key: str
    source: str
    ratio: float  # value after / value before
    before_s: float  # the level before, in `unit` (seconds for times)
    after_s: float
    commit: str | None  # first point at the new level
    date: str
    commit_before: str | None  # last point at the old level
    points: int  # length of the series
    metric: str = "time"
    unit: str = "s"
    versions: str = ""  # framework version change at the step, e.g. "torch 2.12.0 -> 2.13.0"


def _hardware(frame: pd.DataFrame) -> pd.Series:
    cols = [c if c in frame.columns else None for c in ("cpu_model", "gpu_name", "cpu_cores")]
    values = [frame[c] if c else [None] * len(frame) for c in cols]
    import pandas as pd  # lazy: pandas is heavy and only `.[report]` installs it

    return pd.Series([hardware_label(*v) for v in zip(*values)], index=frame.index, dtype=object)


def _series_label(frame: pd.DataFrame) -> pd.Series:
    """Per row: its machine name, or `machine [hardware]` where that machine name had several fingerprints."""
    hw = _hardware(frame)
    label = frame["machine"].astype(object).where(frame["machine"].notna(), "unknown")
    out = label.copy()
    for machine, idx in label.groupby(label).groups.items():
        prints = hw.loc[idx]
        if prints.nunique() <= 1:
            continue
        dated = frame.loc[idx].assign(_hw=prints).sort_values("date", kind="stable")
        order = list(dict.fromkeys(dated["_hw"]))
        for before, after in itertools.pairwise(order):
            when = dated.loc[dated["_hw"] == after, "date"].min()
            warnings.warn(
                f"machine {machine}: hardware changed from {before} to {after}"
                + (f" (first seen {when:%Y-%m-%d})" if hasattr(when, "strftime") and when == when else "")
                + "; its results form separate series",
                HardwareChangeWarning,
                stacklevel=4,
            )
        out.loc[idx] = [f"{machine} [{h}]" for h in prints]
    return out


def _metric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with metric/unit/direction/value columns, whether or not the loader wrote them."""
    import pandas as pd  # lazy: pandas is heavy and only `.[report]` installs it

    f = frame
    if "metric" not in f.columns:
        f = f.assign(metric="time")
    f = f.assign(metric=f["metric"].fillna("time"))
    is_time = f["metric"].eq("time")
    unit = f["unit"] if "unit" in f.columns else pd.Series([None] * len(f), index=f.index, dtype=object)
    f = f.assign(unit=unit.where(unit.notna(), is_time.map({True: "s", False: ""})))
    if "direction" in f.columns:
        direction = f["direction"].astype(object).where(f["direction"].notna(), None)
        f = f.assign(direction=direction.where(~(is_time & direction.isna()), "lower"))
    else:
        f = f.assign(direction=[("lower" if u == "s" else None) for u in f["unit"]])
    value = pd.to_numeric(f["value"], errors="coerce") if "value" in f.columns else pd.Series(math.nan, index=f.index)
    median = pd.to_numeric(f["median_s"], errors="coerce")
    time_unit = f["unit"].eq("s")
    # times live in median_s, other metrics in value; each falls back to the other column
    return f.assign(_y=median.where(time_unit, value).fillna(value.where(time_unit, median)))


def series(frame: pd.DataFrame, metrics: bool = False) -> Iterator[tuple[tuple[str, str, str], pd.DataFrame]]:
    """(series label, key, source) -> its successful measurements in date order.

    The label is the machine name, or `machine [hardware]` when that name holds
    several hardware fingerprints (a `HardwareChangeWarning` names them). With
    `metrics`, every metric is a series (its key gets ` [metric]`); otherwise
    only times. Each group has a column `_y` with the value in its unit.
    """
    ok = _series_rows(frame)
    if ok is not None and not metrics:
        ok = ok[ok["metric"].eq("time")]
    if ok is None or ok.empty:
        return
    for ident, group in ok.groupby(["_series", "_skey", "source"], sort=True, dropna=False):
        yield (str(ident[0]), str(ident[1]), str(ident[2])), group.drop(columns="_code")


def _versions(row: Any) -> dict[str, str]:
    """{framework: version} of one row: its own framework's version, or every recorded one."""
    out: dict[str, str] = {}
    fw, ver = text_or_blank(row.get("framework")), text_or_blank(row.get("framework_version"))
    if fw and ver:
        out[fw] = ver
    return out


def version_change(before: Any, after: Any) -> str:
    """'torch 2.12.0 -> 2.13.0' where the case's framework version differs between two rows, else ''."""
    a, b = _versions(before), _versions(after)
    changes = [f"{k} {a[k]} -> {b[k]}" for k in sorted(a) if k in b and a[k] != b[k]]
    return ", ".join(changes)


def detect(frame: pd.DataFrame, threshold: float = 0.05, min_points: int = MIN_POINTS) -> list[StepChange]:
    """Every step change of at least `threshold` (relative) in every series of `frame`."""
    from asv.step_detect import detect_steps  # lazy: asv is heavy and only `.[asv]` installs it

    found: list[StepChange] = []
    for (machine, key, source), g in series(frame, metrics=True):
        if len(g) < min_points:
            continue
        y = [float(v) for v in g["_y"]]
        # asv weighs each point by the inverse width of its confidence interval;
        # the IQR is the spread both sources record, so it plays that role here
        iqr = [float(v) for v in g["iqr_s"]] if g["unit"].iloc[0] == "s" else []
        w = [1 / v for v in iqr] if iqr and all(v > 0 for v in iqr) else None  # NaN > 0 is False
        steps = detect_steps(y, w)
        # a one-point piece between two others is a blip, not a new level (asv's
        # detect_regressions has min_size=2 for the same reason); the newest piece
        # stays even when short, so last night's regression is reported at once
        steps = [p for i, p in enumerate(steps) if p[1] - p[0] >= MIN_LEVEL or i in (0, len(steps) - 1)]
        rows = [r for _, r in g.iterrows()]
        for prev, nxt in itertools.pairwise(steps):
            before, after = float(prev[2]), float(nxt[2])
            ratio = after / before
            if ratio >= 1 + threshold or ratio <= 1 / (1 + threshold):
                at, last = int(nxt[0]), int(prev[1]) - 1
                found.append(
                    StepChange(
                        kind=change_kind(ratio, rows[at]["direction"]), machine=machine, key=key, source=source,
                        ratio=ratio, before_s=before, after_s=after,
                        commit=rows[at]["commit"], date=rows[at]["date"].isoformat(),
                        commit_before=rows[last]["commit"], points=len(g),
                        metric=str(rows[at]["metric"]), unit=str(rows[at]["unit"]),
                        versions=version_change(rows[last], rows[at]),
                    )
                )  # fmt: skip
    found.sort(key=lambda s: -abs(math.log(s.ratio)) if s.ratio > 0 else 0)
    return found


@dataclass(frozen=True)
class BaselineVerdict:
    """The newest run of one series against the spread of its previous runs."""

    kind: str  # "regression", "improvement", "changed" (outside the band), "within", or TOO_NOISY
    machine: str
    key: str
    source: str
    metric: str
    unit: str
    newest: float  # in `unit`
    center: float  # geometric mean of the baseline runs
    low: float  # the band the newest run had to fall in
    high: float
    ratio: float  # newest / center
    runs: int  # baseline runs used
    commit: str | None
    date: str
    versions: str = ""  # framework version of the newest run vs the baseline's
    mde: float = math.nan  # the band's half-width as a ratio: the smallest change this series could show
    outside: bool = False  # the newest run lies outside the band (whatever the kind)


def baseline(
    frame: pd.DataFrame, n: int, threshold: float = 0.05, confidence: float = BASELINE_CONFIDENCE
) -> tuple[list[BaselineVerdict], int]:
    """Every series' newest run against its previous `n` runs (those on the same machine and hardware).

    The rule is `judge_history`'s: a `confidence` prediction interval for one
    more run, on log values (t quantile x sd x sqrt(1 + 1/k)), widened to at
    least `threshold` so a very quiet history does not flag changes nobody acts
    on; where it is wider than `threshold` the series is too noisy to judge.
    Returns the verdicts (every series with at least `MIN_BASELINE` earlier
    runs) and how many series were too short to judge.
    """
    rows = _series_rows(frame)
    if rows is None:
        return [], 0
    codes = rows["_code"].to_numpy()
    y = rows["_y"].to_numpy(dtype=float)
    # every series at once: its band from its previous n rows (one pass, no loop over series)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre, half, k = prediction_bands(codes, np.log(y), n, confidence, threshold)
    ends = np.r_[np.flatnonzero(codes[1:] != codes[:-1]), len(codes) - 1]
    starts = np.r_[0, ends[:-1] + 1]
    columns = {
        c: rows[c].to_numpy(dtype=object)
        for c in (
            "_series",
            "_skey",
            "source",
            "metric",
            "unit",
            "direction",
            "commit",
            "framework",
            "framework_version",
        )
    }
    dates = rows["date"].to_numpy(dtype=object)
    out: list[BaselineVerdict] = []
    short = 0
    for first, last in zip(starts, ends):
        if last - first < MIN_BASELINE or not (y[first : last + 1] > 0).all():
            short += 1
            continue
        direction = columns["direction"][last] if isinstance(columns["direction"][last], str) else None
        h = read_history_band(math.log(y[last]), float(centre[last]), float(half[last]), int(k[last]), direction,
                              threshold)  # fmt: skip
        commit = columns["commit"][last]
        out.append(
            BaselineVerdict(
                kind=str(h.verdict), machine=str(columns["_series"][last]), key=str(columns["_skey"][last]),
                source=str(columns["source"][last]), metric=str(columns["metric"][last]),
                unit=str(columns["unit"][last]), newest=float(y[last]), center=h.center, low=h.low, high=h.high,
                ratio=h.ratio, runs=h.nights, commit=commit if isinstance(commit, str) else None,
                date=dates[last].isoformat(), versions=_window_versions(columns, max(first, last - n), last),
                mde=h.mde, outside=h.outside,
            )
        )  # fmt: skip
    order = {"regression": 0, "changed": 1, "improvement": 2, TOO_NOISY: 3, "within": 4}
    out.sort(key=lambda v: (order[v.kind], -abs(math.log(v.ratio)), v.key))
    return out, short


def _series_rows(frame: pd.DataFrame) -> pd.DataFrame | None:
    """The successful rows of every series (as `series` groups them), sorted by series then date, with the
    series' number in `_code`; None when there are none."""
    f = _metric_columns(frame)
    ok = f[f["status"].eq("ok") & f["_y"].notna() & f["date"].notna()]
    if ok.empty:
        return None
    ok = ok.assign(_series=_series_label(ok))
    ok = ok.assign(_skey=[k if m == "time" else f"{k} [{m}]" for k, m in zip(ok["key"], ok["metric"])])
    ok = ok.sort_values(["_series", "_skey", "source", "date"], kind="stable")
    return ok.assign(_code=ok.groupby(["_series", "_skey", "source"], sort=False, dropna=False).ngroup().to_numpy())


def _window_versions(columns: dict[str, Any], first: int, last: int) -> str:
    """The framework version changes between the rows first..last-1 of a series and its row `last`."""
    newest = {"framework": columns["framework"][last], "framework_version": columns["framework_version"][last]}
    found = {
        version_change(
            {"framework": columns["framework"][i], "framework_version": columns["framework_version"][i]}, newest
        )
        for i in range(first, last)
        if columns["framework_version"][i] != newest["framework_version"]
    }
    return "; ".join(sorted(v for v in found if v))


# -- output -----------------------------------------------------------------------------------------


STEP_HEADERS = [
    "kind", "change", "before", "after", "at commit", "after commit", "date", "case", "machine", "source", "versions",
]  # fmt: skip


def step_row(s: StepChange) -> list[Any]:
    """One step as a table row under `STEP_HEADERS`, values in the step's own unit (for the CLI and the report)."""
    return [
        s.kind, f"{s.ratio - 1:+.1%}", format_value(s.before_s, s.unit), format_value(s.after_s, s.unit), (s.commit or "-")[:8],
        (s.commit_before or "-")[:8], s.date[:19], s.key, s.machine, s.source, s.versions,
    ]  # fmt: skip


def format_steps(steps: list[StepChange], fmt: str = "table", threshold: float = 0.05) -> str:
    if fmt == "json":
        return json.dumps(
            {"method": "asv.step_detect.detect_steps", "threshold": threshold, "steps": [asdict(s) for s in steps]},
            indent=2,
        )
    head = f"{len(steps)} step changes of at least {threshold:.0%} (asv.step_detect.detect_steps on per-run medians)"
    headers = STEP_HEADERS
    rows = [step_row(s) for s in steps]
    if fmt == "markdown":
        return f"**{head}**\n\n" + format_markdown(headers, rows) + "\n"
    return head + ("\n\n" + format_table(headers, rows) if rows else "")


def format_baseline(
    verdicts: list[BaselineVerdict], short: int, n: int, fmt: str = "table", threshold: float = 0.05
) -> str:
    """The cases outside their baseline band, and how many are too noisy to judge (all judged cases in JSON)."""
    outside = [v for v in verdicts if v.kind not in ("within", TOO_NOISY)]
    noisy = [v for v in verdicts if v.kind == TOO_NOISY]
    method = (
        f"newest run of each case vs its previous {n} runs on the same machine and hardware: "
        f"{BASELINE_CONFIDENCE:.0%} prediction interval on log values, at least +-{threshold:.0%}; "
        f"a case whose band is wider than +-{threshold:.0%} is {TOO_NOISY}"
    )
    if fmt == "json":
        return json.dumps(
            {
                "method": method,
                "baseline_runs": n,
                "threshold": threshold,
                "judged": len(verdicts),
                "too_short": short,
                "outside": len(outside),
                "too_noisy": len(noisy),
                "cases": [asdict(v) for v in verdicts],
            },
            indent=2,
            allow_nan=False,
        )
    head = (
        f"{len(outside)} of {len(verdicts)} cases outside their baseline "
        f"({sum(v.kind == 'regression' for v in outside)} regressions); "
        f"{len(noisy)} {TOO_NOISY} (band wider than +-{threshold:.0%}, "
        f"{sum(v.outside for v in noisy)} of them outside it); "
        f"{short} series too short to judge (fewer than {MIN_BASELINE + 1} runs)"
    )
    headers = ["kind", "newest/baseline", "newest", "band", "mde", "runs", "commit", "date", "case", "machine",
               "versions"]  # fmt: skip
    rows: list[list[Any]] = [
        [
            v.kind, f"{v.ratio - 1:+.1%}", format_value(v.newest, v.unit),
            f"{format_value(v.low, v.unit)} .. {format_value(v.high, v.unit)}", f"{v.mde:.1%}", v.runs,
            (v.commit or "-")[:8], v.date[:19], v.key, v.machine, v.versions,
        ]
        for v in outside
    ]  # fmt: skip
    if fmt == "markdown":
        return f"**{head}**\n\n_{method}_\n\n" + (format_markdown(headers, rows) + "\n" if rows else "")
    return "\n".join([head, method, *(["", format_table(headers, rows)] if rows else [])])
