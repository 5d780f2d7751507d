"""The statistics of a two-sided comparison, as pure functions over arrays of samples: no rules, no I/O.

This module owns the intervals the verdicts (`rnnbench.judge.rules`) are read
from. A side is a list of rounds, each a list of samples (seconds).

The bootstrap follows the nesting of the noise (Kalibera and Jones, "Rigorous
benchmarking in reasonable time"): where a record keeps its rounds apart,
each replicate first resamples rounds, then samples within each chosen round,
so drift between rounds (minutes apart: frequency, other load) widens the
interval as much as it really moves results. The paired bootstrap (`ab`: both
sides ran in the same round) resamples the round pairs and takes the
geometric mean of per-round ratios, so a drift that hits both sides cancels.

Two separate runs (`compare`) hold their interval to a floor. A sweep affords
2 to 5 rounds, and a bootstrap over 3 rounds sees little of the between-round
variance it is meant to show: when a case's rounds happen to agree, its
interval is narrow however noisy the machine is. The floor is a t interval on
a *moderated* variance (Smyth's limma, 2004): the case's own between-round
variance of log round medians pooled with the typical one over every case of
the comparison (`NoiseModel`: the pooled variance and its weight fitted as
limma does), plus the variance between runs beyond what the rounds show (the
cross-case scatter of log ratios around the common-mode shift, robustly:
MAD), since runs minutes apart drift more than rounds within one run; and the
common-mode shift itself, the one draw of whole-run drift two runs give,
counts as a variance of its size.

Only numpy and the standard library are imported at the top: `rnnbench run`'s
summary (`resolve_winner`) reaches this module with only `.[torch]` installed.
scipy serves the floor alone (`compare`, with `.[report]`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "MAX_PRIOR_DF",
    "NoiseModel",
    "bootstrap_medians",
    "bootstrap_paired",
    "clean_rounds",
    "normal_quantile",
    "percentile_interval",
    "pooled_noise",
    "prediction_band",
    "prediction_bands",
    "round_spread",
]

# the most the pooled round variance may weigh, in rounds' degrees of freedom (when every case's
# variance looks alike, limma's estimate is infinite: the pooled one is then all there is)
MAX_PRIOR_DF = 1000.0


def normal_quantile(p: float) -> float:
    """The standard normal quantile at `p` (the stdlib's, so the winner's path needs no scipy)."""
    return NormalDist().inv_cdf(p)


def clean_rounds(rounds: Sequence[Sequence[float]]) -> list[np.ndarray]:
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


def _nanmedian_rows(values: np.ndarray) -> np.ndarray:
    """The median of each row of a 2-D array, NaN (padding) left out; every row holds at least one number.
    What `np.nanmedian(values, axis=1)` gives, by one sort: numpy's nanmedian takes a per-row path for
    small arrays that made the replicates of a year-sized night's winner maps cost seconds."""
    ordered = np.sort(values, axis=1)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(values), axis=1)
    rows = np.arange(len(values))
    return (ordered[rows, (count - 1) // 2] + ordered[rows, count // 2]) / 2


def bootstrap_medians(rounds: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` bootstrap replicates of the median: rounds resampled, then samples within each chosen round."""
    pad, sizes = _padded(rounds)
    picks = rng.integers(0, len(rounds), (n, len(rounds)))
    values = _resample(pad, sizes, picks, rng).reshape(n, -1)
    return _widen_by_rounds(_nanmedian_rows(values), len(rounds))


def bootstrap_paired(base: list[np.ndarray], new: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` replicates of the geometric mean of per-round median ratios, round pairs resampled together."""
    pb, sb = _padded(base)
    pn, sn = _padded(new)
    picks = rng.integers(0, len(base), (n, len(base)))
    mb = _nanmedian_rows(_resample(pb, sb, picks, rng).reshape(n * len(base), -1)).reshape(n, len(base))
    mn = _nanmedian_rows(_resample(pn, sn, picks, rng).reshape(n * len(base), -1)).reshape(n, len(base))
    return _widen_by_rounds(np.asarray(np.exp(np.mean(np.log(mn / mb), axis=1))), len(base))


def _widen_by_rounds(reps: np.ndarray, k: int) -> np.ndarray:
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
        b, n = clean_rounds(base), clean_rounds(new)
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
    from scipy.special import digamma, polygamma  # lazy: only `.[report]` installs scipy

    e = np.log(variances) - digamma(dfs / 2) + np.log(dfs / 2)
    centre = float(np.mean(e))
    excess = (float(np.var(e, ddof=1)) if len(e) > 1 else 0.0) - float(np.mean(polygamma(1, dfs / 2)))
    if excess <= 0:  # no more spread than chi-square sampling gives: one variance for every case
        return math.exp(centre), MAX_PRIOR_DF
    prior_df = min(MAX_PRIOR_DF, 2 * _trigamma_inverse(excess))
    return math.exp(centre + float(digamma(prior_df / 2)) - math.log(prior_df / 2)), prior_df


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x, by Newton's method from limma's starting point."""
    from scipy.special import polygamma  # lazy: only `.[report]` installs scipy

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
    from scipy.stats import t  # lazy: only `.[report]` installs scipy

    ob, on = _own_var(_round_logs(b)), _own_var(_round_logs(n))
    # with one run a side, the whole run's shift is the only draw of run-to-run drift there is: it
    # counts as a variance of that size, so a machine that is 6% slower today makes no case `slower`
    se2 = _moderated(ob, noise) / len(b) + _moderated(on, noise) / len(n) + noise.run_var + noise.shift**2
    df = noise.prior_df + min(ob[1], on[1])
    return float(t.ppf(0.5 + confidence / 2, df)) * math.sqrt(se2)


def percentile_interval(
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


def round_spread(rounds: list[np.ndarray]) -> float:
    """Largest / smallest round median, minus 1: the between-round spread."""
    meds = [float(np.median(r)) for r in rounds if len(r)]
    return max(meds) / min(meds) - 1 if len(meds) > 1 and min(meds) > 0 else 0.0


def prediction_bands(
    codes: np.ndarray, logs: np.ndarray, n: int, confidence: float, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of many series at once (rows sorted by series `codes`, then in time): the centre and
    half-width on the log scale of a `confidence` prediction interval for that row from its series'
    previous `n` rows (t quantile x sd x sqrt(1 + 1/k)), no narrower than `threshold`, so a very quiet
    history does not flag changes nobody acts on; and k, the previous rows used (NaN band below 2).

    Running sums of the logs, centred per series so their differences keep their precision, give
    every window's mean and sd without a loop over series: a year of nights of thousands of cases
    is judged in one pass."""
    from scipy.stats import t  # lazy: only `.[report]` installs scipy

    codes = np.asarray(codes)
    y = np.asarray(logs, dtype=float)
    pos = np.arange(len(y))
    first = np.r_[True, codes[1:] != codes[:-1]] if len(y) else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, pos, 0)) if len(y) else pos
    _, inverse = np.unique(codes, return_inverse=True)
    means = np.bincount(inverse, weights=y) / np.bincount(inverse)
    centred = y - means[inverse]
    cs, cs2 = np.r_[0.0, np.cumsum(centred)], np.r_[0.0, np.cumsum(centred**2)]
    lo = np.maximum(start, pos - n)
    k = pos - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (cs[pos] - cs[lo]) / k
        sd = np.sqrt(np.maximum((cs2[pos] - cs2[lo] - k * mean**2) / (k - 1), 0.0))
        q = t.ppf(0.5 + confidence / 2, np.maximum(k - 1, 1))
        half = np.maximum(q * sd * np.sqrt(1 + 1 / k), math.log(1 + threshold))
    short = k < 2
    return np.where(short, np.nan, mean + means[inverse]), np.where(short, np.nan, half), k


def prediction_band(logs: np.ndarray, confidence: float, threshold: float) -> tuple[float, float]:
    """(centre, half-width) on the log scale for one more value of `logs`: `prediction_bands`' rule
    for a single series. `regressions --baseline` judges a newest run with it."""
    logs = np.asarray(logs, dtype=float)
    centre, half, _ = prediction_bands(np.zeros(len(logs) + 1, int), np.r_[logs, 0.0], len(logs), confidence, threshold)
    return float(centre[-1]), float(half[-1])
