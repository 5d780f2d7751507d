"""The verdict rules and their messages: when a change is `slower`, `same`, `too noisy`, and who wins a race.

This module owns the verdict vocabulary (`Verdict`), its thresholds and
confidences, and the reading of an interval of NEW/BASE against the band
[1/(1 + t), 1 + t]:

- `slower` / `faster` (times and rates; for a rate such as GFLOP/s a drop is
  `slower`), `worse` / `better` (other metrics with a direction, e.g. bytes):
  the whole interval lies outside the band on that side;
- `changed`: a metric with no direction (a neutral ratio) moved outside the band;
- `same`: the 90% interval lies inside the band (any change is smaller than t),
  tested as equivalence is: two one-sided tests at 5% (Schuirmann). The
  alarms above keep the 99% interval: a false `slower` costs a person's
  afternoon, a false `same` one missed small change;
- `too noisy`: the interval straddles an edge of the band (the MDE says how large
  a change these samples could have shown), or the case was flagged as measured
  on a busy machine (a stall), where no verdict is honest.

`compare_rounds` judges one case (two lists of rounds, paired or not) with the
intervals of `rnnbench.judge.bootstrap`; `resolve_winner` names the fastest of
several alternatives only when its lead is resolved; `stall_flagged` is the
busy-machine rule. Every command that states a verdict (`compare`, `ab`,
`regressions`' direction, the landing page, `run`'s summary, the report) takes
it from here. numpy and the standard library only (see `bootstrap`).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnbench.judge.bootstrap import (
    NoiseModel,
    bootstrap_medians,
    bootstrap_paired,
    clean_rounds,
    normal_quantile,
    percentile_interval,
    round_spread,
)
from rnnbench.measure.timing import busy

__all__ = [
    "BUSY_NOTE",
    "CONFIDENCE",
    "METHOD",
    "PAIRED_METHOD",
    "REGRESSION_VERDICTS",
    "SAME_CONFIDENCE",
    "THRESHOLD",
    "VERDICTS",
    "WINNER_CONFIDENCE",
    "SampleVerdict",
    "Verdict",
    "Winner",
    "change_kind",
    "compare_rounds",
    "compare_samples",
    "fastest",
    "metric_of",
    "present",
    "read_band",
    "resolve_winner",
    "rounds_of",
    "stall_flagged",
    "worse",
]

THRESHOLD = 0.05
CONFIDENCE = 0.99
# `same` is an equivalence claim, tested as equivalence is (Schuirmann's two one-sided tests at 5%:
# the 90% interval inside the band), while `slower`/`faster` keep the 99% interval, so a false alarm
# stays rarer than a false `same` (docs/measurements/2026-12-07-ci-cpu-2core-ab-equivalence.md)
SAME_CONFIDENCE = 0.90
WINNER_CONFIDENCE = 0.95
POWER = 0.80
N_RESAMPLES = 2000
MIN_SAMPLES = 3
METHOD = (
    f"ratio = median(NEW) / median(BASE); {CONFIDENCE:.0%} interval: percentile bootstrap, hierarchical where rounds "
    f"are recorded (rounds, then samples within a round; {N_RESAMPLES} resamples, each side independently), "
    f"no narrower than a t interval on the moderated between-round variance plus the between-run scatter; "
    f"verdict: interval vs the band [1/(1+t), 1+t] (`same`: the {SAME_CONFIDENCE:.0%} interval inside it); MDE: smallest change flagged with {POWER:.0%} power at this noise"
)
PAIRED_METHOD = (
    f"ratio = geometric mean over rounds of median(NEW round) / median(BASE round), BASE and NEW interleaved case by "
    f"case and round by round; {CONFIDENCE:.0%} interval: paired hierarchical bootstrap (round pairs, then samples "
    f"within each; {N_RESAMPLES} resamples); verdict: interval vs the band [1/(1+t), 1+t] (`same`: the "
    f"{SAME_CONFIDENCE:.0%} interval inside it)"
)
BUSY_NOTE = "busy machine: a stall was flagged; no verdict"
# column names under which the timing engine may flag a case measured on a busy machine
STALL_COLUMNS = ("stalled", "stall", "stalls", "busy")


class Verdict(str, enum.Enum):
    """What a comparison says of one case; a `str`, so text and JSON carry the words themselves."""

    SLOWER = "slower"
    WORSE = "worse"
    CHANGED = "changed"
    FASTER = "faster"
    BETTER = "better"
    TOO_NOISY = "too noisy"
    SAME = "same"

    def __str__(self) -> str:
        return self.value


VERDICTS = tuple(Verdict)  # in the order a listing shows them: regressions first
REGRESSION_VERDICTS = frozenset({Verdict.SLOWER, Verdict.WORSE})


@dataclass(frozen=True)
class SampleVerdict:
    """The comparison of two sample sets."""

    ratio: float
    ci_low: float
    ci_high: float
    mde: float  # minimum detectable effect, as a fraction (0.05 = 5%)
    verdict: Verdict
    note: str = ""


def worse(rose: bool, direction: str | None) -> bool:
    """Whether a metric that moved (up when `rose`) moved the bad way: up for `lower` is better metrics."""
    return rose if direction == "lower" else not rose


def change_kind(ratio: float, direction: Any) -> str:
    """A step or a run outside its history's band, named as `regressions` names it: `regression`,
    `improvement`, or `changed` for a metric with no direction."""
    if direction is None or direction != direction:
        return "changed"
    return "regression" if worse(ratio > 1, direction) else "improvement"


def read_band(lo: float, hi: float, threshold: float, direction: str | None, time_like: bool) -> Verdict:
    """Read an interval of NEW/BASE against the band, in the metric's direction."""
    up, down = lo >= 1 + threshold, hi <= 1 / (1 + threshold)
    if up or down:
        if direction is None:
            return Verdict.CHANGED
        bad = worse(up, direction)
        if time_like:
            return Verdict.SLOWER if bad else Verdict.FASTER
        return Verdict.WORSE if bad else Verdict.BETTER
    if 1 / (1 + threshold) <= lo and hi <= 1 + threshold:
        return Verdict.SAME
    return Verdict.TOO_NOISY


def compare_rounds(
    base: Sequence[Sequence[float]],
    new: Sequence[Sequence[float]],
    threshold: float = THRESHOLD,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    *,
    paired: bool = False,
    direction: str | None = "lower",
    time_like: bool = True,
    n_resamples: int = N_RESAMPLES,
    noise: NoiseModel | None = None,
    same_confidence: float = SAME_CONFIDENCE,
) -> SampleVerdict:
    """Ratio NEW/BASE with a hierarchical bootstrap interval, the MDE and a verdict.

    `base` and `new` are lists of rounds, each a list of samples. With
    `paired`, round i of BASE and round i of NEW ran side by side (as `ab` runs
    them) and are resampled together; only rounds present on both sides count.
    With `noise` (`pooled_noise` over the comparison's cases) and unpaired, the
    interval is no narrower than the t interval on the moderated variance.
    """
    b, n = clean_rounds(base), clean_rounds(new)
    if paired:
        keep = [i for i in range(min(len(b), len(n))) if len(b[i]) and len(n[i])]
        b, n = [b[i] for i in keep], [n[i] for i in keep]
    fb = np.concatenate(b) if b else np.array([])
    fn = np.concatenate(n) if n else np.array([])
    if len(fb) < MIN_SAMPLES or len(fn) < MIN_SAMPLES:
        ratio = float(np.median(fn) / np.median(fb)) if len(fb) and len(fn) else math.nan
        return SampleVerdict(
            ratio, math.nan, math.nan, math.nan, Verdict.TOO_NOISY, f"fewer than {MIN_SAMPLES} samples"
        )
    if paired:
        ratio = float(np.exp(np.mean([np.log(np.median(y) / np.median(x)) for x, y in zip(b, n)])))
    else:
        ratio = float(np.median(fn) / np.median(fb))
    if np.array_equal(np.sort(fb), np.sort(fn)):
        # the same measurements carry no evidence of change, however noisy they are
        return SampleVerdict(ratio, 1.0, 1.0, threshold, Verdict.SAME, "identical samples")
    rng = np.random.default_rng(seed)
    if paired:
        reps = bootstrap_paired(b, n, n_resamples, rng)
    else:
        reps = bootstrap_medians(n, n_resamples, rng) / bootstrap_medians(b, n_resamples, rng)
    floor = None if paired else noise
    lo, hi = percentile_interval(reps, ratio, b, n, confidence, floor)
    mde = _mde(lo, hi, threshold, confidence)
    verdict = read_band(lo, hi, threshold, direction, time_like)
    if verdict == Verdict.TOO_NOISY and same_confidence < confidence:
        # the equivalence test: a narrower interval may show the change is inside the band
        slo, shi = percentile_interval(reps, ratio, b, n, same_confidence, floor)
        if read_band(slo, shi, threshold, direction, time_like) == Verdict.SAME:
            note = f"equivalent: {same_confidence:.0%} interval {slo:.3f}-{shi:.3f}"
            return SampleVerdict(ratio, lo, hi, mde, Verdict.SAME, note)
    note = ""
    if verdict == Verdict.TOO_NOISY and (len(b) > 1 or len(n) > 1):
        spread = max(round_spread(b), round_spread(n))
        if spread > threshold:
            note = f"rounds differ by {spread:.1%}"
    return SampleVerdict(ratio, lo, hi, mde, verdict, note)


def _mde(lo: float, hi: float, threshold: float, confidence: float) -> float:
    """The minimum detectable effect of an interval: the standard error of log(ratio) read from it, and
    the lower bound clears 1 + t with POWER probability once the true ratio is (1 + t) * exp((z_conf + z_power) * se)."""
    z_conf = normal_quantile(0.5 + confidence / 2)
    se = (math.log(hi) - math.log(lo)) / (2 * z_conf) if lo > 0 and hi > 0 else math.inf
    return (1 + threshold) * math.exp(min((z_conf + normal_quantile(POWER)) * se, 700.0)) - 1


def compare_samples(
    base: Sequence[float],
    new: Sequence[float],
    threshold: float = THRESHOLD,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> SampleVerdict:
    """Ratio of medians NEW/BASE of two flat sample sets (one round each); see `compare_rounds`."""
    return compare_rounds([base], [new], threshold, confidence, seed)


# -- ties -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Winner:
    """The fastest of several alternatives, or the alternatives it cannot be told apart from."""

    winner: str | None  # None: a tie
    tied: tuple[str, ...]  # the fastest and every alternative whose interval against it includes 1
    lead: float  # runner-up / fastest, from medians
    ci_low: float  # interval of the runner-up's lead
    ci_high: float

    @property
    def label(self) -> str:
        return self.winner if self.winner else "tie: " + ", ".join(self.tied)


def _medians(rounds: Mapping[str, Sequence[Sequence[float]]]) -> dict[str, float]:
    clean = {k: clean_rounds(v) for k, v in rounds.items()}
    return {k: float(np.median(np.concatenate(v))) for k, v in clean.items() if v}


def fastest(rounds: Mapping[str, Sequence[Sequence[float]]]) -> str | None:
    """The alternative with the lowest median, resolved or not: the only one `resolve_winner` can name.
    Two runs whose fastest is the same have no change of winner, so a reader that looks for changes
    bootstraps only the groups whose fastest differs."""
    meds = _medians(rounds)
    return min(meds, key=lambda k: meds[k]) if meds else None


def resolve_winner(
    rounds: Mapping[str, Sequence[Sequence[float]]], confidence: float = WINNER_CONFIDENCE, seed: int = 0
) -> Winner:
    """Name the fastest alternative only when its lead over each other one is resolved (interval excludes 1).

    `rounds` maps an alternative (a formulation) to its samples, as a list of
    rounds. Fewer than `MIN_SAMPLES` samples leave a lead unresolved.
    """
    meds = _medians(rounds)
    if not meds:
        return Winner(None, (), math.nan, math.nan, math.nan)
    order = sorted(meds, key=lambda k: meds[k])
    best = order[0]
    if len(order) == 1:
        return Winner(best, (best,), math.nan, math.nan, math.nan)
    tied = [best]
    bounds: dict[str, tuple[float, float]] = {}
    for other in order[1:]:
        v = compare_rounds(rounds[best], rounds[other], 0.0, confidence, seed, n_resamples=1000)
        bounds[other] = (v.ci_low, v.ci_high)
        if not v.ci_low > 1:  # NaN (too few samples) is unresolved too
            tied.append(other)
    runner = order[1]
    lead = meds[runner] / meds[best]
    lo, hi = bounds[runner]
    return Winner(best if len(tied) == 1 else None, tuple(tied), lead, lo, hi)


# -- rows: a frame row (pandas Series) or a record (dict), read alike through `.get` ------------------


def present(v: Any) -> bool:
    """Whether a cell holds a value: not None, not NaN (numpy's or pandas'), not pandas' NA or NaT."""
    if v is None:
        return False
    if np.ndim(v) != 0:
        return True
    try:
        return not bool(v != v)
    except TypeError:  # pandas' NA: its comparisons are NA too, and NA has no truth value
        return False


def metric_of(row: Any) -> tuple[str, str, str | None]:
    """(metric, unit, direction) of a row; rows without those fields are times in seconds."""
    metric = str(row.get("metric")) if present(row.get("metric")) else "time"
    unit = str(row.get("unit")) if present(row.get("unit")) else ("s" if metric == "time" else "")
    d = row.get("direction")
    direction = str(d) if present(d) else ("lower" if unit == "s" else None)
    return metric, unit, direction


def rounds_of(row: Any) -> list[list[float]]:
    """A row's samples as rounds: `round_samples_s` where recorded, else one round of `samples_s`."""
    rs = row.get("round_samples_s")
    if (
        isinstance(rs, (list, tuple, np.ndarray))
        and len(rs)
        and all(isinstance(r, (list, tuple, np.ndarray)) for r in rs)
    ):
        rounds = [[float(s) for s in r] for r in rs if len(r)]
        if rounds:
            return rounds
    samples = row.get("samples_s")
    return [[float(s) for s in samples]] if isinstance(samples, (list, tuple, np.ndarray)) and len(samples) else []


def stall_flagged(row: Any) -> bool:
    """Whether this row (a frame row or a record dict) was measured on a busy machine: a flag column
    set, or a `stalls` count (the timing engine's) whose samples show more than a quiet machine's
    background (`timing.busy`)."""
    for col in STALL_COLUMNS:
        v = row.get(col)
        if isinstance(v, (list, tuple, np.ndarray)):
            if len(v):
                return True
        elif col == "stalls" and present(v):
            samples = row.get("samples_s")
            weighable = isinstance(samples, (list, tuple, np.ndarray)) and len(samples) > 0
            # without its samples a count cannot be weighed against the background: any stall flags
            if busy([float(x) for x in samples]) if weighable else bool(v):
                return True
        elif present(v) and bool(v):
            return True
    return False
