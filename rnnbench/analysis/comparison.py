"""`compare` on results frames: pair two sides' rows case by case, then judge them (`rnnbench.judge`).

This module owns the frame-level half of a comparison: one row per join key
(the most recent measurement of each case, on `key` and the metric, and on
`machine` when either side holds several machines), the rows' values, rounds
and busy flags, and the warnings only frames can give (hardware that differs
between the sides). The statistics and the verdict rules live in
`rnnbench.judge`; the text, markdown and JSON in `rnnbench.analysis.render`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rnnbench.display import hardware_label
from rnnbench.judge.cases import CasePair, Comparison, Unpaired, judge_cases
from rnnbench.judge.rules import CONFIDENCE, THRESHOLD, metric_of, present, rounds_of, stall_flagged

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["compare_frames", "hardware_warnings", "measured_value"]


def measured_value(row: Any, unit: str) -> float:
    """The row's measured value in its unit: `median_s` for times, `value` for other metrics."""
    first, second = ("median_s", "value") if unit == "s" else ("value", "median_s")
    for col in (first, second):
        if present(row.get(col)):
            return float(row[col])
    return math.nan


def _latest_per_case(frame: pd.DataFrame, by: list[str]) -> tuple[pd.DataFrame, dict[Any, int]]:
    """One row per join key: the most recent measurement, and how many there were."""
    counts = frame.groupby(by, dropna=False).size().to_dict()
    latest = frame.sort_values("date", kind="stable", na_position="first").drop_duplicates(by, keep="last")
    return latest.set_index(by, drop=False), counts


def _with_metric(frame: pd.DataFrame) -> pd.DataFrame:
    if "metric" in frame.columns:
        return frame.assign(metric=frame["metric"].fillna("time"))
    return frame.assign(metric="time")


def hardware_warnings(base: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """One line per machine (or for the pair of sides) whose hardware fingerprint differs between BASE and NEW."""

    def prints(frame: pd.DataFrame) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for row in frame.drop_duplicates(["machine", "cpu_model", "gpu_name", "cpu_cores"]).itertuples():
            out.setdefault(str(row.machine), set()).add(hardware_label(row.cpu_model, row.gpu_name, row.cpu_cores))
        return out

    needed = {"machine", "cpu_model", "gpu_name", "cpu_cores"}
    if not needed <= set(base.columns) or not needed <= set(new.columns):
        return []
    pb, pn = prints(base), prints(new)
    out = []
    if len(pb) == 1 and len(pn) == 1:
        (mb, hb), (mn, hn) = next(iter(pb.items())), next(iter(pn.items()))
        if hb != hn:
            out.append(
                f"BASE and NEW ran on different hardware: BASE {mb} ({'; '.join(sorted(hb))}), "
                f"NEW {mn} ({'; '.join(sorted(hn))}); ratios include the hardware change"
            )
        return out
    for m in sorted(set(pb) & set(pn)):
        if pb[m] != pn[m]:
            out.append(
                f"machine {m}: hardware differs between BASE ({'; '.join(sorted(pb[m]))}) and NEW "
                f"({'; '.join(sorted(pn[m]))})"
            )
    return out


class _Join:
    """How two frames pair up: on key and metric when each side holds one machine (a deliberate
    cross-machine comparison when the two differ), on machine too when a side holds several."""

    def __init__(self, base: pd.DataFrame, new: pd.DataFrame) -> None:
        machines = set(base["machine"].dropna()) | set(new["machine"].dropna())
        self.single = base["machine"].nunique() <= 1 and new["machine"].nunique() <= 1
        self.by = ["key", "metric"] if self.single else ["machine", "key", "metric"]
        self.only_machine = next(iter(machines)) if len(machines) == 1 else None

    def key(self, idx: Any) -> str:
        return str(idx[0] if self.single else idx[1])

    def machine(self, idx: Any) -> str | None:
        return self.only_machine if self.single else str(idx[0])

    def label(self, idx: Any) -> str:
        key, metric = (idx[0], idx[1]) if self.single else (idx[1], idx[2])
        text = key if metric == "time" else f"{key} [{metric}]"
        return text if self.single else f"{text} @ {idx[0]}"


def _case_pair(join: _Join, idx: Any, rb: Any, rn: Any, runs: tuple[int, int]) -> CasePair:
    rounds_b, rounds_n = rounds_of(rb), rounds_of(rn)
    metric, unit, direction = metric_of(rn)
    if metric != "time" and not sum(map(len, rounds_b)):
        rounds_b = rounds_n = []  # a metric without samples of its own: the time samples say nothing of it
    return CasePair(
        key=join.key(idx), machine=join.machine(idx), base_rounds=rounds_b, new_rounds=rounds_n,
        base_value=measured_value(rb, unit), new_value=measured_value(rn, unit),
        busy=stall_flagged(rb) or stall_flagged(rn), metric=metric, unit=unit, direction=direction,
        note=f"latest of {runs[0]}/{runs[1]} runs" if max(runs) > 1 else "",
    )  # fmt: skip


def compare_frames(
    base: pd.DataFrame, new: pd.DataFrame, threshold: float = THRESHOLD, confidence: float = CONFIDENCE
) -> Comparison:
    """Verdicts for every case present on both sides; the rest are listed, not dropped."""
    base, new = _with_metric(base), _with_metric(new)
    join = _Join(base, new)
    b, nb = _latest_per_case(base, join.by)
    n, nn = _latest_per_case(new, join.by)
    pairs: list[CasePair] = []
    not_ok: list[tuple[str, str, str]] = []
    both_skipped = 0
    for idx in sorted(set(b.index) & set(n.index), key=str):
        rb, rn = b.loc[idx], n.loc[idx]
        if rb["status"] == rn["status"] == "skipped":
            both_skipped += 1
        elif rb["status"] != "ok" or rn["status"] != "ok":
            not_ok.append((join.label(idx), str(rb["status"]), str(rn["status"])))
        else:
            pairs.append(_case_pair(join, idx, rb, rn, (nb.get(idx, 1), nn.get(idx, 1))))
    unpaired = Unpaired(
        only_base=[join.label(i) for i in sorted(set(b.index) - set(n.index), key=str)],
        only_new=[join.label(i) for i in sorted(set(n.index) - set(b.index), key=str)],
        not_ok=not_ok,
        both_skipped=both_skipped,
    )
    return judge_cases(
        pairs, unpaired, threshold=threshold, confidence=confidence, warnings=hardware_warnings(base, new)
    )
