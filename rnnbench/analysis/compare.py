"""Verdicts between two sets of results: is NEW faster, slower, the same, or too noisy to say?

This module owns the statistics of a two-sided comparison (`compare`, and the
paired judgement `ab` uses) and the verdict vocabulary. Per case (joined on
`key` and the metric, and on `machine` when either side holds several
machines) it reports the ratio NEW/BASE, a percentile bootstrap interval of
that ratio, and the minimum detectable effect (MDE): the smallest change these
samples' noise would let it call with 80% probability.

The bootstrap follows the nesting of the noise (Kalibera and Jones, "Rigorous
benchmarking in reasonable time"): where a record keeps its rounds apart
(`round_samples_s`), each replicate first resamples rounds, then samples
within each chosen round, so drift between rounds (minutes apart: frequency,
other load) widens the interval as much as it really moves results. Where the
round structure is unknown, it resamples the flat samples. `ab` pairs the two
sides round by round (both ran in the same round, minutes apart from the
next), resamples the round pairs and judges the geometric mean of per-round
ratios, so a drift that hits both sides cancels.

`compare` (two separate runs) holds its interval to a floor. A sweep affords
2 to 5 rounds, and a bootstrap over 3 rounds sees little of the between-round
variance it is meant to show: when a case's rounds happen to agree, its
interval is narrow however noisy the machine is (issue 9: 28 of 316 cases
`slower` between two quick runs of the same code). The floor is a t interval
on a *moderated* variance (Smyth's limma, 2004): the case's own between-round
variance of log round medians pooled with the typical one over every case of
the comparison (`NoiseModel`: the pooled variance and its weight fitted as
limma does), plus the variance between runs beyond what the rounds show (the
cross-case scatter of log ratios around the common-mode shift, robustly:
MAD), since runs minutes apart drift more than rounds within one run; and the
common-mode shift itself, the one draw of whole-run drift two runs give,
counts as a variance of its size (a machine 6% slower today must not make
every case `slower`; `ab` is how to tell such a shift from a change). `ab`
pairs its sides round by round and has no floor: on the 2-core VM the floor
cost it most of its power and stopped no false alarm (see
docs/measurements/2026-11-22-ci-cpu-2core-issue9-targets.md).

The verdict reads the interval against the band [1/(1 + t), 1 + t]:

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

Every comparison also reports the run-wide common-mode shift: the median
NEW/BASE time ratio over all compared cases. A whole-run shift (another
machine state, a new BLAS) reads differently from a change in a few cases.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnbench.display import escape_markdown, format_markdown, format_table, format_time, printable
from rnnbench.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONFIDENCE",
    "MAX_PRIOR_DF",
    "METHOD",
    "PAIRED_METHOD",
    "REGRESSION_VERDICTS",
    "SAME_CONFIDENCE",
    "THRESHOLD",
    "VERDICTS",
    "WINNER_CONFIDENCE",
    "CaseComparison",
    "Comparison",
    "NoiseModel",
    "SampleVerdict",
    "Winner",
    "common_mode",
    "compare_frames",
    "compare_rounds",
    "compare_samples",
    "format_comparison",
    "format_value",
    "metric_of",
    "pooled_noise",
    "resolve",
    "resolve_winner",
    "rounds_of",
    "stall_flagged",
]

THRESHOLD = 0.05
CONFIDENCE = 0.99
# `same` is an equivalence claim, tested as equivalence is (Schuirmann's two one-sided tests at 5%:
# the 90% interval inside the band), while `slower`/`faster` keep the 99% interval, so a false alarm
# stays rarer than a false `same`. Measured on the 2-core VM by re-judging the day's `ab` pairs
# (docs/measurements/2026-12-07-ci-cpu-2core-ab-equivalence.md): the A/A of 14:24 gave 177 of 316 `same`
# with 99%, 227 with the 90% equivalence test, and the same `slower`/`faster` (the 99% interval decides those)
SAME_CONFIDENCE = 0.90
WINNER_CONFIDENCE = 0.95
POWER = 0.80
N_RESAMPLES = 2000
MIN_SAMPLES = 3
# the most the pooled round variance may weigh, in rounds' degrees of freedom (when every case's
# variance looks alike, limma's estimate is infinite: the pooled one is then all there is)
MAX_PRIOR_DF = 1000.0
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
VERDICTS = ("slower", "worse", "changed", "faster", "better", "too noisy", "same")
REGRESSION_VERDICTS = frozenset({"slower", "worse"})
# column names under which the timing engine may flag a case measured on a busy machine
STALL_COLUMNS = ("stalled", "stall", "stalls", "busy")


@dataclass(frozen=True)
class SampleVerdict:
    """The comparison of two sample sets."""

    ratio: float
    ci_low: float
    ci_high: float
    mde: float  # minimum detectable effect, as a fraction (0.05 = 5%)
    verdict: str
    note: str = ""


def _z(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def _clean(rounds: Sequence[Sequence[float]]) -> list[np.ndarray]:
    out = [np.asarray(r, dtype=float) for r in rounds]
    return [r[np.isfinite(r)] for r in out if len(r)]


def _padded(rounds: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rounds as one (k, M) array padded with NaN, and each round's size."""
    sizes = np.array([len(r) for r in rounds])
    pad = np.full((len(rounds), int(sizes.max())), np.nan)
    for i, r in enumerate(rounds):
        pad[i, : len(r)] = r
    return pad, sizes


def _resample(pad: np.ndarray, sizes: np.ndarray, picks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Samples drawn with replacement within the rounds `picks` (n, slots): (n, slots, M), NaN beyond a round's size."""
    m = pad.shape[1]
    size = sizes[picks][..., None]  # (n, slots, 1)
    idx = np.minimum((rng.random((*picks.shape, m)) * size).astype(int), size - 1)
    values = pad[picks[..., None], idx]
    return np.where(np.arange(m) < size, values, np.nan)


def _boot_medians(rounds: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` bootstrap replicates of the median: rounds resampled, then samples within each chosen round."""
    pad, sizes = _padded(rounds)
    picks = rng.integers(0, len(rounds), (n, len(rounds)))
    values = _resample(pad, sizes, picks, rng).reshape(n, -1)
    return _widen(np.asarray(np.nanmedian(values, axis=1)), len(rounds))


def _boot_paired(base: list[np.ndarray], new: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` replicates of the geometric mean of per-round median ratios, round pairs resampled together."""
    pb, sb = _padded(base)
    pn, sn = _padded(new)
    picks = rng.integers(0, len(base), (n, len(base)))
    mb = np.nanmedian(_resample(pb, sb, picks, rng), axis=2)
    mn = np.nanmedian(_resample(pn, sn, picks, rng), axis=2)
    return _widen(np.asarray(np.exp(np.mean(np.log(mn / mb), axis=1))), len(base))


def _widen(reps: np.ndarray, k: int) -> np.ndarray:
    """Replicates spread by sqrt(k / (k - 1)) on the log scale, around their mean.

    Resampling k rounds with replacement shows only (k - 1) / k of the
    between-round variance of their mean (the cluster bootstrap's known bias);
    with the 2 to 5 rounds a sweep affords that bias is 10-30% of the variance,
    enough to turn round drift into false alarms, so it is undone here.
    """
    if k < 2:
        return reps
    logs = np.log(reps)
    centre = float(np.mean(logs))
    return np.asarray(np.exp(centre + (logs - centre) * np.sqrt(k / (k - 1))))


def _verdict(lo: float, hi: float, threshold: float, direction: str | None, time_like: bool) -> str:
    """Read an interval of NEW/BASE against the band, in the metric's direction."""
    up, down = lo >= 1 + threshold, hi <= 1 / (1 + threshold)
    if up or down:
        if direction is None:
            return "changed"
        bad = up if direction == "lower" else down
        if time_like:
            return "slower" if bad else "faster"
        return "worse" if bad else "better"
    if 1 / (1 + threshold) <= lo and hi <= 1 + threshold:
        return "same"
    return "too noisy"


@dataclass(frozen=True)
class NoiseModel:
    """What a whole comparison says about noise that one case's few rounds cannot show.

    `round_var`: the typical variance of a round's log median around its case's level, pooled over
    the comparison's cases; `run_var`: the extra
    variance of a case's log ratio between two separate runs, beyond what their rounds explain.
    """

    round_var: float
    run_var: float = 0.0
    prior_df: float = MAX_PRIOR_DF
    cases: int = 0  # how many cases the pooled variance came from
    shift: float = 0.0  # log of the common-mode shift between two separate runs: one draw of their drift


def _round_logs(rounds: list[np.ndarray]) -> np.ndarray:
    return np.log([float(np.median(r)) for r in rounds if len(r) and np.median(r) > 0])


def _own_var(logs: np.ndarray) -> tuple[float, int]:
    """Sample variance of `logs` and its degrees of freedom (0, 0 with fewer than two)."""
    return (float(np.var(logs, ddof=1)), len(logs) - 1) if len(logs) > 1 else (0.0, 0)


def pooled_noise(pairs: Sequence[tuple[Sequence[Sequence[float]], Sequence[Sequence[float]]]]) -> NoiseModel | None:
    """The `NoiseModel` of a comparison: `pairs` holds each case's (BASE rounds, NEW rounds).

    The pooled variance and its weight (prior degrees of freedom) are fitted to the cases' own
    variances as limma does (Smyth 2004, `fitFDist`): each case's variance is a scaled chi-square
    around a common one, and the more alike the cases' variances are, the more the pooled one
    counts. None when no case has two rounds.
    """
    variances: list[float] = []
    dfs: list[int] = []
    ratios: list[float] = []
    inverse_rounds: list[float] = []
    for base, new in pairs:
        b, n = _clean(base), _clean(new)
        if not b or not n:
            continue
        for logs in (_round_logs(b), _round_logs(n)):
            var, df = _own_var(logs)
            if df and var > 0:
                variances.append(var)
                dfs.append(df)
        ratios.append(math.log(np.median(np.concatenate(n)) / np.median(np.concatenate(b))))
        inverse_rounds.append(1 / len(b) + 1 / len(n))
    if not variances:
        return None
    round_var, prior_df = _fit_prior(np.asarray(variances), np.asarray(dfs, dtype=float))
    run_var, shift = 0.0, 0.0
    if len(ratios) >= 10:  # a scatter needs cases enough to be told from one case's change
        shift = float(np.median(ratios))
        dev = np.asarray(ratios) - shift
        scatter = (1.4826 * float(np.median(np.abs(dev)))) ** 2
        run_var = max(0.0, scatter - round_var * float(np.median(inverse_rounds)))
    return NoiseModel(round_var, run_var, prior_df, len(pairs), shift)


def _fit_prior(variances: np.ndarray, dfs: np.ndarray) -> tuple[float, float]:
    """(s0^2, d0) with s^2 ~ s0^2 F(df, d0), by moments of log s^2 (limma's fitFDist, without covariates)."""
    from scipy.special import digamma, polygamma

    e = np.log(variances) - digamma(dfs / 2) + np.log(dfs / 2)
    centre = float(np.mean(e))
    excess = (float(np.var(e, ddof=1)) if len(e) > 1 else 0.0) - float(np.mean(polygamma(1, dfs / 2)))
    if excess <= 0:  # no more spread than chi-square sampling gives: one variance for every case
        return math.exp(centre), MAX_PRIOR_DF
    prior_df = min(MAX_PRIOR_DF, 2 * _trigamma_inverse(excess))
    return math.exp(centre + float(digamma(prior_df / 2)) - math.log(prior_df / 2)), prior_df


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x, by Newton's method from limma's starting point."""
    from scipy.special import polygamma

    if x > 1e7:
        return 1 / math.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(polygamma(1, y))
        step = tri * (1 - tri / x) / float(polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def _moderated(own: tuple[float, int], noise: NoiseModel) -> float:
    var, df = own
    return (noise.prior_df * noise.round_var + df * var) / (noise.prior_df + df)


def _floor_half_width(b: list[np.ndarray], n: list[np.ndarray], noise: NoiseModel, confidence: float) -> float:
    """Half-width, on the log scale, of the t interval on the moderated variance (see the module docstring)."""
    from scipy.stats import t

    ob, on = _own_var(_round_logs(b)), _own_var(_round_logs(n))
    # with one run a side, the whole run's shift is the only draw of run-to-run drift there is: it
    # counts as a variance of that size, so a machine that is 6% slower today makes no case `slower`
    se2 = _moderated(ob, noise) / len(b) + _moderated(on, noise) / len(n) + noise.run_var + noise.shift**2
    df = noise.prior_df + min(ob[1], on[1])
    return float(t.ppf(0.5 + confidence / 2, df)) * math.sqrt(se2)


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
    b, n = _clean(base), _clean(new)
    if paired:
        keep = [i for i in range(min(len(b), len(n))) if len(b[i]) and len(n[i])]
        b, n = [b[i] for i in keep], [n[i] for i in keep]
    fb = np.concatenate(b) if b else np.array([])
    fn = np.concatenate(n) if n else np.array([])
    if len(fb) < MIN_SAMPLES or len(fn) < MIN_SAMPLES:
        ratio = float(np.median(fn) / np.median(fb)) if len(fb) and len(fn) else math.nan
        return SampleVerdict(ratio, math.nan, math.nan, math.nan, "too noisy", f"fewer than {MIN_SAMPLES} samples")
    if paired:
        ratio = float(np.exp(np.mean([np.log(np.median(y) / np.median(x)) for x, y in zip(b, n)])))
    else:
        ratio = float(np.median(fn) / np.median(fb))
    if np.array_equal(np.sort(fb), np.sort(fn)):
        # the same measurements carry no evidence of change, however noisy they are
        return SampleVerdict(ratio, 1.0, 1.0, threshold, "same", "identical samples")
    rng = np.random.default_rng(seed)
    if paired:
        reps = _boot_paired(b, n, n_resamples, rng)
    else:
        reps = _boot_medians(n, n_resamples, rng) / _boot_medians(b, n_resamples, rng)
    lo, hi = _interval(reps, ratio, b, n, confidence, None if paired else noise)
    # standard error of log(ratio) from the interval; the lower bound clears 1 + t with
    # POWER probability once the true ratio is (1 + t) * exp((z_conf + z_power) * se)
    z_conf = _z(0.5 + confidence / 2)
    se = (math.log(hi) - math.log(lo)) / (2 * z_conf) if lo > 0 and hi > 0 else math.inf
    mde = (1 + threshold) * math.exp(min((z_conf + _z(POWER)) * se, 700.0)) - 1
    verdict = _verdict(lo, hi, threshold, direction, time_like)
    note = ""
    if verdict == "too noisy" and same_confidence < confidence:
        # the equivalence test: a narrower interval may show the change is inside the band
        slo, shi = _interval(reps, ratio, b, n, same_confidence, None if paired else noise)
        if _verdict(slo, shi, threshold, direction, time_like) == "same":
            return SampleVerdict(
                ratio, lo, hi, mde, "same", f"equivalent: {same_confidence:.0%} interval {slo:.3f}-{shi:.3f}"
            )
    if verdict == "too noisy" and (len(b) > 1 or len(n) > 1):
        spread = max(_round_spread(b), _round_spread(n))
        if spread > threshold:
            note = f"rounds differ by {spread:.1%}"
    return SampleVerdict(ratio, lo, hi, mde, verdict, note)


def _interval(
    reps: np.ndarray,
    ratio: float,
    b: list[np.ndarray],
    n: list[np.ndarray],
    confidence: float,
    noise: NoiseModel | None,
) -> tuple[float, float]:
    """The percentile interval of the replicates at `confidence`, no narrower than the floor with `noise`."""
    tail = (1 - confidence) / 2 * 100
    lo, hi = (float(v) for v in np.percentile(reps, [tail, 100 - tail]))
    if noise is not None:
        h = _floor_half_width(b, n, noise, confidence)
        lo, hi = min(lo, ratio * math.exp(-h)), max(hi, ratio * math.exp(h))
    return lo, hi


def _round_spread(rounds: list[np.ndarray]) -> float:
    """Largest / smallest round median, minus 1: the between-round spread."""
    meds = [float(np.median(r)) for r in rounds if len(r)]
    return max(meds) / min(meds) - 1 if len(meds) > 1 and min(meds) > 0 else 0.0


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


def resolve_winner(
    rounds: Mapping[str, Sequence[Sequence[float]]], confidence: float = WINNER_CONFIDENCE, seed: int = 0
) -> Winner:
    """Name the fastest alternative only when its lead over each other one is resolved (interval excludes 1).

    `rounds` maps an alternative (a formulation) to its samples, as a list of
    rounds. Fewer than `MIN_SAMPLES` samples leave a lead unresolved.
    """
    clean = {k: _clean(v) for k, v in rounds.items()}
    clean = {k: v for k, v in clean.items() if v}
    meds = {k: float(np.median(np.concatenate(v))) for k, v in clean.items()}
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


# -- frames -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseComparison:
    key: str
    machine: str | None
    base_value: float  # median, in `unit`
    new_value: float
    n_base: int
    n_new: int
    ratio: float
    ci_low: float
    ci_high: float
    mde: float
    verdict: str
    note: str = ""
    metric: str = "time"
    unit: str = "s"
    direction: str | None = "lower"
    rounds_base: int = 1
    rounds_new: int = 1


@dataclass(frozen=True)
class Comparison:
    """Everything `compare` or `ab` found: verdicts per case and the cases it could not pair."""

    cases: list[CaseComparison]
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    not_ok: list[tuple[str, str, str]] = field(default_factory=list)  # (case, base status, new status)
    both_skipped: int = 0  # not applicable on either side (e.g. numpy train): counted, not listed
    threshold: float = THRESHOLD
    confidence: float = CONFIDENCE
    method: str = METHOD
    warnings: list[str] = field(default_factory=list)  # hardware differences, busy machine...
    noise: NoiseModel | None = None  # the pooled noise the intervals were held to (None: no case had 2 rounds)

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.cases)

    @property
    def regressions(self) -> int:
        return sum(c.verdict in REGRESSION_VERDICTS for c in self.cases)

    @property
    def common_mode(self) -> tuple[float, int]:
        """Median NEW/BASE time ratio over every compared case, and how many cases it spans."""
        return common_mode(self.cases)


def common_mode(cases: Sequence[CaseComparison]) -> tuple[float, int]:
    """The run-wide shift: median NEW/BASE over all time cases with a ratio (NaN, 0 when none)."""
    ratios = [c.ratio for c in cases if c.unit == "s" and math.isfinite(c.ratio) and c.ratio > 0]
    return (float(np.median(ratios)) if ratios else math.nan), len(ratios)


def _present(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, float):
        return not math.isnan(v)
    try:
        import pandas as pd

        return not bool(pd.isna(v)) if np.ndim(v) == 0 else True
    except (TypeError, ValueError):
        return True


def metric_of(row: Any) -> tuple[str, str, str | None]:
    """(metric, unit, direction) of a frame row; rows without those columns are times in seconds."""
    metric = str(row["metric"]) if "metric" in row.index and _present(row["metric"]) else "time"
    unit = str(row["unit"]) if "unit" in row.index and _present(row["unit"]) else ("s" if metric == "time" else "")
    if "direction" in row.index:
        d = row["direction"]
        direction = str(d) if _present(d) else ("lower" if unit == "s" else None)
    else:
        direction = "lower" if unit == "s" else None
    return metric, unit, direction


def _value(row: Any, unit: str) -> float:
    """The row's measured value in its unit: `median_s` for times, `value` for other metrics."""
    first, second = ("median_s", "value") if unit == "s" else ("value", "median_s")
    for col in (first, second):
        if col in row.index and _present(row[col]):
            return float(row[col])
    return math.nan


def rounds_of(row: Any) -> list[list[float]]:
    """A row's samples as rounds: `round_samples_s` where recorded, else one round of `samples_s`."""
    if "round_samples_s" in row.index:
        rs = row["round_samples_s"]
        if (
            isinstance(rs, (list, tuple, np.ndarray))
            and len(rs)
            and all(isinstance(r, (list, tuple, np.ndarray)) for r in rs)
        ):
            rounds = [[float(s) for s in r] for r in rs if len(r)]
            if rounds:
                return rounds
    samples = row["samples_s"] if "samples_s" in row.index else None
    return [[float(s) for s in samples]] if isinstance(samples, (list, tuple, np.ndarray)) and len(samples) else []


def stall_flagged(row: Any) -> bool:
    """Whether this row (a frame row or a record dict) was measured on a busy machine: a flag column
    set, or a `stalls` count (the timing engine's) whose samples show more than a quiet machine's
    background (`timing.busy`)."""
    from rnnbench.measure.timing import busy

    for col in STALL_COLUMNS:
        v = row.get(col)
        if isinstance(v, (list, tuple, np.ndarray)):
            if len(v):
                return True
        elif col == "stalls" and _present(v):
            samples = row.get("samples_s")
            weighable = isinstance(samples, (list, tuple, np.ndarray)) and len(samples) > 0
            # without its samples a count cannot be weighed against the background: any stall flags
            if busy([float(x) for x in samples]) if weighable else bool(v):
                return True
        elif _present(v) and bool(v):
            return True
    return False


def _latest(frame: pd.DataFrame, by: list[str]) -> tuple[pd.DataFrame, dict[Any, int]]:
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
    from rnnbench.analysis.history import hardware_label

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


def compare_frames(
    base: pd.DataFrame, new: pd.DataFrame, threshold: float = THRESHOLD, confidence: float = CONFIDENCE
) -> Comparison:
    """Verdicts for every case present on both sides; the rest are listed, not dropped."""
    base, new = _with_metric(base), _with_metric(new)
    machines = set(base["machine"].dropna()) | set(new["machine"].dropna())
    single = base["machine"].nunique() <= 1 and new["machine"].nunique() <= 1
    # comparing one machine's results with one other machine's is a deliberate cross-machine
    # comparison; with several machines on a side, cases only pair within a machine
    by = ["key", "metric"] if single else ["machine", "key", "metric"]
    b, nb = _latest(base, by)
    n, nn = _latest(new, by)

    def label(idx: Any) -> str:
        key, metric = (idx[0], idx[1]) if single else (idx[1], idx[2])
        text = key if metric == "time" else f"{key} [{metric}]"
        return text if single else f"{text} @ {idx[0]}"

    cases: list[CaseComparison] = []
    not_ok: list[tuple[str, str, str]] = []
    both_skipped = 0
    stalled = 0
    paired_rows: list[tuple[Any, Any, Any, list[list[float]], list[list[float]]]] = []
    for idx in sorted(set(b.index) & set(n.index), key=str):
        rb, rn = b.loc[idx], n.loc[idx]
        if rb["status"] == rn["status"] == "skipped":
            both_skipped += 1
            continue
        if rb["status"] != "ok" or rn["status"] != "ok":
            not_ok.append((label(idx), str(rb["status"]), str(rn["status"])))
            continue
        rounds_b, rounds_n = rounds_of(rb), rounds_of(rn)
        if metric_of(rn)[0] != "time" and not sum(map(len, rounds_b)):
            rounds_b = rounds_n = []  # a metric without samples of its own: the time samples say nothing of it
        paired_rows.append((idx, rb, rn, rounds_b, rounds_n))
    # the noise no case's few rounds can show, from every timed case that was not flagged as stalled
    noise = pooled_noise(
        [
            (rs_b, rs_n)
            for _, rb, rn, rs_b, rs_n in paired_rows
            if metric_of(rn)[1] == "s" and not stall_flagged(rb) and not stall_flagged(rn)
        ]
    )
    for idx, rb, rn, rounds_b, rounds_n in paired_rows:
        metric, unit, direction = metric_of(rn)
        time_like = unit == "s" or "flop" in unit.lower()
        v = compare_rounds(
            rounds_b, rounds_n, threshold, confidence, direction=direction, time_like=time_like,
            noise=noise if unit == "s" else None,
        )  # fmt: skip
        verdict, note = v.verdict, v.note
        if stall_flagged(rb) or stall_flagged(rn):
            verdict, note = "too noisy", "busy machine: a stall was flagged; no verdict"
            stalled += 1
        if nb.get(idx, 1) > 1 or nn.get(idx, 1) > 1:
            note = "; ".join(filter(None, [note, f"latest of {nb.get(idx, 1)}/{nn.get(idx, 1)} runs"]))
        vb, vn = _value(rb, unit), _value(rn, unit)
        cases.append(
            CaseComparison(
                key=str(idx[0] if single else idx[1]),
                machine=(next(iter(machines)) if len(machines) == 1 else None) if single else str(idx[0]),
                base_value=vb,
                new_value=vn,
                n_base=sum(map(len, rounds_b)),
                n_new=sum(map(len, rounds_n)),
                ratio=v.ratio if math.isfinite(v.ratio) else (vn / vb if vb else math.nan),
                ci_low=v.ci_low,
                ci_high=v.ci_high,
                mde=v.mde,
                verdict=verdict,
                note=note,
                metric=metric,
                unit=unit,
                direction=direction,
                rounds_base=max(1, len(rounds_b)),
                rounds_new=max(1, len(rounds_n)),
            )
        )
    warnings = hardware_warnings(base, new)
    if stalled:
        warnings.append(f"{stalled} cases were flagged as measured on a busy machine: no verdict on them")
    if noise is not None and abs(noise.shift) > math.log1p(threshold):
        warnings.append(
            f"the whole run moved {math.exp(noise.shift) - 1:+.1%} (common-mode shift): with one run a side, a "
            "machine-wide shift and a change that hits every case look alike, so it counts as drift and widens "
            "every interval; `rnnbench ab` interleaves the two sides and tells them apart"
        )
    return Comparison(
        cases=sort_cases(cases),
        only_base=[label(i) for i in sorted(set(b.index) - set(n.index), key=str)],
        only_new=[label(i) for i in sorted(set(n.index) - set(b.index), key=str)],
        not_ok=not_ok, both_skipped=both_skipped, threshold=threshold, confidence=confidence,
        warnings=warnings, noise=noise,
    )  # fmt: skip


def sort_cases(cases: list[CaseComparison]) -> list[CaseComparison]:
    """Regressions first, biggest change first within a verdict."""
    order = {v: i for i, v in enumerate(VERDICTS)}
    return sorted(cases, key=lambda c: (order[c.verdict], -c.ratio if c.ratio == c.ratio else 0, c.key, c.metric))


# -- finding the two sides ---------------------------------------------------------------------------

_COMMIT = re.compile(r"^[0-9a-fA-F]{4,40}$")


def resolve(spec: str, store: str | Path = "results") -> pd.DataFrame:
    """A result file, a directory, or a commit prefix of documents in `store` -> its rows."""
    from rnnbench.analysis.frame import load

    path = Path(spec)
    if path.exists():
        frame = load([path])
        if frame.empty:
            raise UsageError(f"no rnnbench or asv results in {spec}")
        return frame
    if not _COMMIT.match(spec):
        raise UsageError(f"{spec!r} is not a file, a directory or a commit prefix")
    if not Path(store).is_dir():
        raise UsageError(
            f"{spec!r} is not a file or directory, and there is no results store {store} to look up a commit in"
        )
    frame = load([store])
    commits = frame["commit"].fillna("")
    hit = frame[commits.str.lower().str.startswith(spec.lower())]
    found = sorted(set(hit["commit"]))
    if not found:
        raise UsageError(f"no results for commit {spec!r} under {store}")
    if len(found) > 1:
        raise UsageError(f"commit prefix {spec!r} is ambiguous under {store}: {', '.join(c[:12] for c in found)}")
    return hit


# -- output -----------------------------------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    """A measured value in its own unit: seconds scaled to ms/µs/ns, bytes to KiB/MiB/GiB, others as is."""
    if value != value:
        return "-"
    if unit == "s":
        return format_time(value)
    if unit in ("bytes", "B", "byte"):
        for name, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value:.0f} B"
    return f"{value:.3g} {unit}".rstrip()


def _finite(v: object) -> object:
    """JSON has no NaN: an undefined interval or MDE is null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


def _ci(c: CaseComparison) -> str:
    return "-" if c.ci_low != c.ci_low else f"[{c.ci_low:.3f}, {c.ci_high:.3f}]"


def _case_json(c: CaseComparison) -> dict[str, Any]:
    d = {k: _finite(v) for k, v in asdict(c).items()}
    if c.unit == "s":  # the names readers of earlier versions know
        d["base_median_s"], d["new_median_s"] = d["base_value"], d["new_value"]
    return d


def _common_text(cmp: Comparison) -> str:
    shift, n = cmp.common_mode
    if not n:
        return "common-mode shift: - (no time case compared)"
    return f"common-mode shift: median NEW/BASE time ratio {shift:.3f} ({shift - 1:+.1%}) over {n} cases"


def _noise_json(noise: NoiseModel | None) -> dict[str, Any] | None:
    if noise is None:
        return None
    return {
        "round_sd": math.sqrt(noise.round_var), "run_sd": math.sqrt(noise.run_var), "shift": math.exp(noise.shift),
        "prior_df": noise.prior_df, "cases": noise.cases,
    }  # fmt: skip


def _noise_text(noise: NoiseModel | None) -> list[str]:
    """The floor's line: none for `ab` (no floor) or where no case had two rounds."""
    if noise is None:
        return []
    run = f", between runs {math.sqrt(noise.run_var):.1%}" if noise.run_var else ""
    run += f", whole-run shift {math.exp(noise.shift) - 1:+.1%} counted as drift" if noise.shift else ""
    return [
        f"noise floor: between rounds {math.sqrt(noise.round_var):.1%}{run} (log sd, pooled over {noise.cases} "
        f"cases, prior df {noise.prior_df:.3g})"
    ]


def format_comparison(cmp: Comparison, fmt: str = "table") -> str:
    """The comparison as a text table, a markdown table or JSON."""
    counts = {v: cmp.count(v) for v in VERDICTS if cmp.count(v) or v in ("slower", "faster", "too noisy", "same")}
    shift, n_shift = cmp.common_mode
    if fmt == "json":
        return json.dumps(
            {
                "method": cmp.method,
                "threshold": cmp.threshold,
                "confidence": cmp.confidence,
                "counts": counts,
                "common_mode": {"ratio": _finite(shift), "cases": n_shift},
                "noise": _noise_json(cmp.noise),
                "warnings": cmp.warnings,
                "cases": [_case_json(c) for c in cmp.cases],
                "only_base": cmp.only_base,
                "only_new": cmp.only_new,
                "not_ok": [{"case": k, "base": b, "new": n} for k, b, n in cmp.not_ok],
                "both_skipped": cmp.both_skipped,
            },
            indent=2,
            allow_nan=False,
        )
    headers = ["verdict", "new/base", f"{cmp.confidence:.0%} CI", "MDE", "base", "new", "case", "note"]
    rows = [
        [
            c.verdict,
            f"{c.ratio:.3f}",
            _ci(c),
            _pct(c.mde),
            format_value(c.base_value, c.unit),
            format_value(c.new_value, c.unit),
            c.key if c.metric == "time" else f"{c.key} [{c.metric}]",
            c.note,
        ]
        for c in cmp.cases
    ]
    summary = ", ".join(f"{n} {v}" for v, n in counts.items()) + f" (threshold {cmp.threshold:.0%})"
    if cmp.both_skipped:
        summary += f"; {cmp.both_skipped} not applicable on both sides"
    extra = []
    for title, keys in (("only in BASE", cmp.only_base), ("only in NEW", cmp.only_new)):
        if keys:
            extra.append(f"{title} ({len(keys)}): " + ", ".join(keys))
    if cmp.not_ok:
        extra.append(
            f"not ok on one side ({len(cmp.not_ok)}): "
            + ", ".join(f"{k} (base {b}, new {n})" for k, b, n in cmp.not_ok)
        )
    warn = [f"warning: {w}" for w in cmp.warnings]
    if fmt == "markdown":
        table = format_markdown(headers, rows)
        # case labels and warnings name machines and cases from result files: escaped like the table's cells
        head = [
            f"**{summary}**",
            f"**{escape_markdown(_common_text(cmp))}**",
            *(f"> {escape_markdown(w)}" for w in warn),
            f"_{escape_markdown(cmp.method)}_",
            *(f"_{escape_markdown(line)}_" for line in _noise_text(cmp.noise)),
        ]
        return "\n\n".join([*head, table, *(f"- {escape_markdown(e)}" for e in extra)]) + "\n"
    warn, extra = [printable(w) for w in warn], [printable(e) for e in extra]
    return "\n".join(
        [
            summary,
            _common_text(cmp),
            *warn,
            cmp.method,
            *_noise_text(cmp.noise),
            "",
            format_table(headers, rows),
            *(["", *extra] if extra else []),
        ]
    )
