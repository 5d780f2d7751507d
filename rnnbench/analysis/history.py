"""Histories and their step changes: how each case's time moved over commits and dates.

This module owns the per-case time series (one per machine, case and source:
asv and the runner are different timing engines, so their points are never
joined into one line) and step detection on them, which the report draws and
`rnnbench regressions` lists. Detection is asv's own: `asv.step_detect.detect_steps`
fits a piecewise-constant function to the medians (an L1 Potts model, robust
to single outliers; points weighted by 1/IQR as asv weighs them by
1/CI); each jump between consecutive pieces whose size reaches
the threshold is a step, a `regression` if the time went up, an `improvement`
if it went down.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rnnbench.display import format_markdown, format_table, format_time

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MIN_POINTS", "StepChange", "detect", "format_steps", "series"]

MIN_POINTS = 3  # a step needs a level before it and at least one point after
MIN_LEVEL = 2  # points an interior level must hold to count as one


@dataclass(frozen=True)
class StepChange:
    kind: str  # "regression" (slower) or "improvement" (faster)
    machine: str
    key: str
    source: str
    ratio: float  # time after / time before
    before_s: float
    after_s: float
    commit: str | None  # first point at the new level
    date: str
    commit_before: str | None  # last point at the old level
    points: int  # length of the series


def series(frame: pd.DataFrame) -> Iterator[tuple[tuple[str, str, str], pd.DataFrame]]:
    """(machine, key, source) -> its successful measurements in date order."""
    ok = frame[frame["status"].eq("ok") & frame["median_s"].notna() & frame["date"].notna()]
    for ident, group in ok.groupby(["machine", "key", "source"], sort=True, dropna=False):
        yield (str(ident[0]), str(ident[1]), str(ident[2])), group.sort_values("date", kind="stable")


def detect(frame: pd.DataFrame, threshold: float = 0.05, min_points: int = MIN_POINTS) -> list[StepChange]:
    """Every step change of at least `threshold` (relative) in every series of `frame`."""
    from asv.step_detect import detect_steps

    found: list[StepChange] = []
    for (machine, key, source), g in series(frame):
        if len(g) < min_points:
            continue
        y = [float(v) for v in g["median_s"]]
        # asv weighs each point by the inverse width of its confidence interval;
        # the IQR is the spread both sources record, so it plays that role here
        iqr = [float(v) for v in g["iqr_s"]]
        w = [1 / v for v in iqr] if all(v > 0 for v in iqr) else None  # NaN > 0 is False
        steps = detect_steps(y, w)
        # a one-point piece between two others is a blip, not a new level (asv's
        # detect_regressions has min_size=2 for the same reason); the newest piece
        # stays even when short, so last night's regression is reported at once
        steps = [p for i, p in enumerate(steps) if p[1] - p[0] >= MIN_LEVEL or i in (0, len(steps) - 1)]
        commits = list(g["commit"])
        dates = list(g["date"])
        for prev, nxt in itertools.pairwise(steps):
            before, after = float(prev[2]), float(nxt[2])
            ratio = after / before
            if ratio >= 1 + threshold or ratio <= 1 / (1 + threshold):
                at = int(nxt[0])
                found.append(
                    StepChange(
                        kind="regression" if ratio > 1 else "improvement",
                        machine=machine,
                        key=key,
                        source=source,
                        ratio=ratio,
                        before_s=before,
                        after_s=after,
                        commit=commits[at],
                        date=dates[at].isoformat(),
                        commit_before=commits[int(prev[1]) - 1],
                        points=len(g),
                    )
                )
    found.sort(key=lambda s: -abs(s.ratio - 1))
    return found


def format_steps(steps: list[StepChange], fmt: str = "table", threshold: float = 0.05) -> str:
    if fmt == "json":
        return json.dumps(
            {"method": "asv.step_detect.detect_steps", "threshold": threshold, "steps": [asdict(s) for s in steps]},
            indent=2,
        )
    head = f"{len(steps)} step changes of at least {threshold:.0%} (asv.step_detect.detect_steps on per-run medians)"
    headers = ["kind", "change", "before", "after", "at commit", "date", "case", "machine", "source"]
    rows: list[list[Any]] = [
        [
            s.kind,
            f"{s.ratio - 1:+.1%}",
            format_time(s.before_s),
            format_time(s.after_s),
            (s.commit or "-")[:8],
            s.date[:19],
            s.key,
            s.machine,
            s.source,
        ]
        for s in steps
    ]
    if fmt == "markdown":
        return f"**{head}**\n\n" + format_markdown(headers, rows) + "\n"
    return head + ("\n\n" + format_table(headers, rows) if rows else "")
