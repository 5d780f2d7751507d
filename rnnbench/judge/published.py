"""The published verdict: the words a night states of a case, and the history rule behind its drift.

This module owns what a night publishes (`verdicts.json`, the landing page,
`regressions.txt`, the feed, the job summary all read it): the words
(`Published`), how a paired `Verdict` becomes one (`published`), and the one
history rule (`judge_history`) that both `rnnbench regressions --baseline N`
and the nightly's drift judgement apply.

The history rule is the statistical mode of continuous-benchmarking services:
the newest night of a case against the spread of its previous N nights, a
prediction interval on log values (`bootstrap.prediction_band`). Its
half-width, as a ratio, is the case's minimum detectable effect (MDE): the
smallest change that could fall outside the band. Between nights a case
moves by far more than within one run on a shared machine, so where the MDE
exceeds the threshold the history cannot tell a change of the threshold's
size from the machine's wander, and the case is `too noisy to judge from
history`: never a published regression, however far its newest night lies
out (a note says so, for a person to look at). What pairing sees (a change of
commit or environment) is judged paired, not here.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnbench.judge.bootstrap import prediction_band, prediction_bands
from rnnbench.judge.rules import THRESHOLD, Verdict, change_kind

__all__ = [
    "HISTORY_CONFIDENCE",
    "HISTORY_METHOD",
    "MIN_HISTORY",
    "HistoryVerdict",
    "Published",
    "history_verdicts",
    "judge_history",
    "published",
    "read_history_band",
]

HISTORY_CONFIDENCE = 0.99
MIN_HISTORY = 2  # previous nights a spread needs
HISTORY_METHOD = (
    f"newest night vs the spread of its previous nights on the same machine and hardware: a {HISTORY_CONFIDENCE:.0%} "
    "prediction interval on log values (t quantile x sd x sqrt(1 + 1/k)), no narrower than the threshold; "
    "MDE: the band's half-width as a ratio; a case whose MDE exceeds the threshold is too noisy to judge from history"
)


class Published(str, enum.Enum):
    """The words of a published verdict (`verdicts.json`); a `str`, so JSON carries the words themselves."""

    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    CHANGED = "changed"  # a metric with no better side moved
    TOO_NOISY = "too noisy"  # paired: the interval straddles an edge of the band
    TOO_NOISY_HISTORY = "too noisy to judge from history"
    SAME = "same"  # paired: the change is inside the band
    WITHIN = "within"  # history: inside its band, and the band is narrow enough to judge

    def __str__(self) -> str:
        return self.value


_FROM_PAIRED = {
    Verdict.SLOWER: Published.REGRESSION,
    Verdict.WORSE: Published.REGRESSION,
    Verdict.FASTER: Published.IMPROVEMENT,
    Verdict.BETTER: Published.IMPROVEMENT,
    Verdict.CHANGED: Published.CHANGED,
    Verdict.TOO_NOISY: Published.TOO_NOISY,
    Verdict.SAME: Published.SAME,
}


def published(verdict: Verdict | str) -> Published:
    """The published word for a paired (or compared) `Verdict`: `slower` is a regression, and so on."""
    return _FROM_PAIRED[Verdict(verdict)]


@dataclass(frozen=True)
class HistoryVerdict:
    """The newest night of one case against its previous nights."""

    verdict: Published  # regression, improvement, changed, within, or too noisy to judge from history
    ratio: float  # newest / the geometric mean of the previous nights
    center: float  # that geometric mean, in the metric's unit
    low: float  # the band the newest night had to fall in
    high: float
    mde: float  # the band's half-width as a ratio, minus 1 (0.05 = 5%)
    nights: int  # previous nights used
    outside: bool  # the newest night lies outside the band (said in a note when too noisy to judge)


def judge_history(
    previous: Sequence[float] | np.ndarray,
    newest: float,
    direction: str | None = "lower",
    threshold: float = THRESHOLD,
    confidence: float = HISTORY_CONFIDENCE,
) -> HistoryVerdict:
    """The history rule: `newest` against the `confidence` prediction band of `previous` (all > 0, at least
    `MIN_HISTORY` of them), read in the metric's direction; too noisy to judge where the MDE exceeds the
    threshold."""
    if len(previous) < MIN_HISTORY:
        raise ValueError(f"the history rule needs at least {MIN_HISTORY} previous values, got {len(previous)}")
    logs = np.log(np.asarray(previous, dtype=float))
    mu, half = prediction_band(logs, confidence, threshold)
    return read_history_band(math.log(newest), mu, half, len(previous), direction, threshold)


def read_history_band(
    newest_log: float, mu: float, half: float, nights: int, direction: str | None, threshold: float = THRESHOLD
) -> HistoryVerdict:
    """The history rule's verdict, given the band (`mu` +- `half` on the log scale, from `prediction_band`
    or one row of `prediction_bands`): too noisy to judge where the MDE exceeds the threshold, else a
    change where the newest value lies outside the band, else within."""
    dev = newest_log - mu
    mde = math.expm1(half)
    outside = abs(dev) > half
    if _too_noisy(mde, threshold):
        verdict = Published.TOO_NOISY_HISTORY
    elif outside:
        verdict = Published(change_kind(math.exp(dev), direction))
    else:
        verdict = Published.WITHIN
    return HistoryVerdict(
        verdict=verdict, ratio=math.exp(dev), center=math.exp(mu), low=math.exp(mu - half), high=math.exp(mu + half),
        mde=mde, nights=nights, outside=outside,
    )  # fmt: skip


def _too_noisy(mde: Any, threshold: float) -> Any:
    # the band is floored at the threshold, so the MDE is the threshold exactly when the spread allows it;
    # a hair of float error must not turn a quiet case noisy
    return mde > threshold * (1 + 1e-9)


def history_verdicts(
    codes: np.ndarray,
    values: np.ndarray,
    n: int,
    threshold: float = THRESHOLD,
    confidence: float = HISTORY_CONFIDENCE,
) -> dict[str, np.ndarray]:
    """`judge_history` for every night of many time series at once (rows sorted by series `codes`, then
    in time; lower is better): each row against its series' previous `n` rows. Returns per row the band
    (`low`, `high`, `centre`, in the values' unit), `mde` and the published word (`verdict`; "" where
    fewer than `MIN_HISTORY` rows precede it). The dashboard draws every night's band with it."""
    logs = np.log(np.asarray(values, dtype=float))
    centre, half, k = prediction_bands(codes, logs, n, confidence, threshold)
    dev = logs - centre
    mde = np.expm1(half)
    verdict = np.where(
        _too_noisy(mde, threshold),
        Published.TOO_NOISY_HISTORY.value,
        np.where(np.abs(dev) > half, np.where(dev > 0, Published.REGRESSION.value, Published.IMPROVEMENT.value),
                 Published.WITHIN.value),
    )  # fmt: skip
    valid = k >= MIN_HISTORY
    return {
        "low": np.where(valid, np.exp(centre - half), np.nan),
        "high": np.where(valid, np.exp(centre + half), np.nan),
        "centre": np.exp(centre),
        "mde": np.where(valid, mde, np.nan),
        "verdict": np.where(valid, verdict, ""),
    }
