"""Verdicts between two sets of results: is NEW faster, slower, the same, or too noisy to say?

This module owns the statistics of a two-sided comparison and the `compare`
command. Per case (joined on `key`, and on `machine` when either side holds
several machines) it reports the ratio of medians NEW/BASE, a percentile
bootstrap confidence interval of that ratio over the per-call samples
(`scipy.stats.bootstrap`, resampling each side independently), and the
minimum detectable effect (MDE): the smallest slowdown that these two sample
sets' noise would let `compare` call `slower` with 80% probability. The verdict reads the interval against
the threshold band [1/(1 + t), 1 + t]:

- `slower`: the whole interval lies above 1 + t (slower by at least t, with
  the stated confidence);
- `faster`: the whole interval lies below 1/(1 + t);
- `same`: the whole interval lies inside the band (an equivalence test: any
  change is smaller than the threshold);
- `too noisy`: the interval straddles an edge of the band; the MDE column says
  how large a change these samples could have shown.

Testing against the edge of the band rather than against 1 matters on real
machines: back-to-back runs drift by a few percent (frequency, other load)
more than their within-run samples show, and a test against 1 would call that
drift a regression. A real change of a few times t clears the edge easily.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnbench.display import format_markdown, format_table, format_time
from rnnbench.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONFIDENCE",
    "METHOD",
    "THRESHOLD",
    "CaseComparison",
    "Comparison",
    "SampleVerdict",
    "compare_frames",
    "compare_samples",
    "format_comparison",
    "resolve",
]

THRESHOLD = 0.05
CONFIDENCE = 0.99
POWER = 0.80
N_RESAMPLES = 2000
MIN_SAMPLES = 3
METHOD = (
    f"ratio = median(NEW) / median(BASE); {CONFIDENCE:.0%} interval: percentile bootstrap over per-call samples "
    f"(scipy.stats.bootstrap, {N_RESAMPLES} resamples, each side resampled independently); "
    f"verdict: interval vs the band [1/(1+t), 1+t]; MDE: smallest slowdown flagged with {POWER:.0%} power at this noise"
)
VERDICTS = ("slower", "faster", "too noisy", "same")


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


def compare_samples(
    base: Sequence[float],
    new: Sequence[float],
    threshold: float = THRESHOLD,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> SampleVerdict:
    """Ratio of medians NEW/BASE with a bootstrap interval, the MDE and a verdict."""
    from scipy.stats import bootstrap

    a = np.asarray(base, dtype=float)
    b = np.asarray(new, dtype=float)
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        ratio = float(np.median(b) / np.median(a)) if len(a) and len(b) else math.nan
        return SampleVerdict(ratio, math.nan, math.nan, math.nan, "too noisy", f"fewer than {MIN_SAMPLES} samples")
    ratio = float(np.median(b) / np.median(a))
    if np.array_equal(np.sort(a), np.sort(b)):
        # the same measurements carry no evidence of change, however noisy they are
        return SampleVerdict(ratio, 1.0, 1.0, threshold, "same", "identical samples")

    def stat(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return np.asarray(np.median(y, axis=axis) / np.median(x, axis=axis))

    res = bootstrap(
        (a, b),
        stat,
        vectorized=True,
        paired=False,
        n_resamples=N_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        rng=seed,
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    # standard error of log(ratio) from the interval; the lower bound clears 1 + t with
    # POWER probability once the true ratio is (1 + t) * exp((z_conf + z_power) * se)
    z_conf = _z(0.5 + confidence / 2)
    se = (math.log(hi) - math.log(lo)) / (2 * z_conf) if lo > 0 and hi > 0 else math.inf
    mde = (1 + threshold) * math.exp(min((z_conf + _z(POWER)) * se, 700.0)) - 1
    if lo >= 1 + threshold:
        verdict = "slower"
    elif hi <= 1 / (1 + threshold):
        verdict = "faster"
    elif 1 / (1 + threshold) <= lo and hi <= 1 + threshold:
        verdict = "same"
    else:
        verdict = "too noisy"
    return SampleVerdict(ratio, lo, hi, mde, verdict)


@dataclass(frozen=True)
class CaseComparison:
    key: str
    machine: str | None
    base_median_s: float
    new_median_s: float
    n_base: int
    n_new: int
    ratio: float
    ci_low: float
    ci_high: float
    mde: float
    verdict: str
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """Everything `compare` found: verdicts per case and the cases it could not pair."""

    cases: list[CaseComparison]
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    not_ok: list[tuple[str, str, str]] = field(default_factory=list)  # (case, base status, new status)
    both_skipped: int = 0  # not applicable on either side (e.g. numpy train): counted, not listed
    threshold: float = THRESHOLD
    confidence: float = CONFIDENCE

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.cases)


def _latest(frame: pd.DataFrame, by: list[str]) -> tuple[pd.DataFrame, dict[Any, int]]:
    """One row per join key: the most recent measurement, and how many there were."""
    counts = frame.groupby(by, dropna=False).size().to_dict()
    latest = frame.sort_values("date", kind="stable", na_position="first").drop_duplicates(by, keep="last")
    return latest.set_index(by), counts


def compare_frames(
    base: pd.DataFrame, new: pd.DataFrame, threshold: float = THRESHOLD, confidence: float = CONFIDENCE
) -> Comparison:
    """Verdicts for every case present on both sides; the rest are listed, not dropped."""
    machines = set(base["machine"].dropna()) | set(new["machine"].dropna())
    single = base["machine"].nunique() <= 1 and new["machine"].nunique() <= 1
    # comparing one machine's results with one other machine's is a deliberate cross-machine
    # comparison; with several machines on a side, cases only pair within a machine
    by = ["key"] if single else ["machine", "key"]
    b, nb = _latest(base, by)
    n, nn = _latest(new, by)

    def label(idx: Any) -> str:
        return idx if single else f"{idx[1]} @ {idx[0]}"

    cases: list[CaseComparison] = []
    not_ok: list[tuple[str, str, str]] = []
    both_skipped = 0
    for idx in sorted(set(b.index) & set(n.index), key=str):
        rb, rn = b.loc[idx], n.loc[idx]
        if rb["status"] == rn["status"] == "skipped":
            both_skipped += 1
            continue
        if rb["status"] != "ok" or rn["status"] != "ok":
            not_ok.append((label(idx), str(rb["status"]), str(rn["status"])))
            continue
        v = compare_samples(rb["samples_s"], rn["samples_s"], threshold, confidence)
        note = v.note
        if nb.get(idx, 1) > 1 or nn.get(idx, 1) > 1:
            note = "; ".join(filter(None, [note, f"latest of {nb.get(idx, 1)}/{nn.get(idx, 1)} runs"]))
        cases.append(
            CaseComparison(
                key=str(idx if single else idx[1]),
                machine=(next(iter(machines)) if len(machines) == 1 else None) if single else str(idx[0]),
                base_median_s=float(rb["median_s"]),
                new_median_s=float(rn["median_s"]),
                n_base=len(rb["samples_s"]),
                n_new=len(rn["samples_s"]),
                ratio=v.ratio,
                ci_low=v.ci_low,
                ci_high=v.ci_high,
                mde=v.mde,
                verdict=v.verdict,
                note=note,
            )
        )
    order = {v: i for i, v in enumerate(VERDICTS)}
    cases.sort(key=lambda c: (order[c.verdict], -c.ratio if c.ratio == c.ratio else 0, c.key))
    return Comparison(
        cases=cases,
        only_base=[label(i) for i in sorted(set(b.index) - set(n.index), key=str)],
        only_new=[label(i) for i in sorted(set(n.index) - set(b.index), key=str)],
        not_ok=not_ok,
        both_skipped=both_skipped,
        threshold=threshold,
        confidence=confidence,
    )


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


def _finite(v: object) -> object:
    """JSON has no NaN: an undefined interval or MDE is null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


def _ci(c: CaseComparison) -> str:
    return "-" if c.ci_low != c.ci_low else f"[{c.ci_low:.3f}, {c.ci_high:.3f}]"


def format_comparison(cmp: Comparison, fmt: str = "table") -> str:
    """The comparison as a text table, a markdown table or JSON."""
    counts = {v: cmp.count(v) for v in VERDICTS}
    if fmt == "json":
        return json.dumps(
            {
                "method": METHOD,
                "threshold": cmp.threshold,
                "confidence": cmp.confidence,
                "counts": counts,
                "cases": [{k: _finite(v) for k, v in asdict(c).items()} for c in cmp.cases],
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
            format_time(c.base_median_s),
            format_time(c.new_median_s),
            c.key,
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
    if fmt == "markdown":
        table = format_markdown(headers, rows)
        return "\n\n".join([f"**{summary}**", f"_{METHOD}_", table, *(f"- {e}" for e in extra)]) + "\n"
    return "\n".join([summary, METHOD, "", format_table(headers, rows), *(["", *extra] if extra else [])])
