"""Judging every case of two sides at once: the one loop behind `compare` and `ab`, and its result.

This module owns `Comparison`, what a two-sided comparison found (a verdict
per case, the cases it could not pair, its warnings), and `judge_cases`, the
loop that fills it from cases already paired up: pool the noise over the
comparison (unpaired sides only), judge each case with `compare_rounds`, apply
the busy-machine rule (a paired case's busy rounds are dropped on both sides,
`paired_rounds`; an unpaired case flagged busy gets no verdict), and warn
about a whole-run shift. `compare` pairs the
rows of two pandas frames (`rnnbench.analysis.comparison`), `ab` the records
of its two documents (`judge_records` here, which needs no pandas); both end
in `judge_cases`, so a rule or a message changes in one place.

Each judged case carries what a verdict file needs: its key, verdict, ratio,
interval (`ci_low`, `ci_high`) and, on the `Comparison`, the method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnbench.judge.bootstrap import NoiseModel, pooled_noise
from rnnbench.judge.rules import (
    BUSY_NOTE,
    CONFIDENCE,
    METHOD,
    PAIRED_METHOD,
    REGRESSION_VERDICTS,
    THRESHOLD,
    VERDICTS,
    SampleVerdict,
    Verdict,
    compare_rounds,
    rounds_of,
    stall_flagged,
)
from rnnbench.measure.timing import busy

__all__ = [
    "CaseComparison",
    "CasePair",
    "Comparison",
    "Unpaired",
    "common_mode",
    "judge_cases",
    "judge_records",
    "paired_rounds",
    "paired_verdict",
    "sort_cases",
]


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
    verdict: Verdict
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


def sort_cases(cases: list[CaseComparison]) -> list[CaseComparison]:
    """Regressions first, biggest change first within a verdict."""
    order = {v: i for i, v in enumerate(VERDICTS)}
    return sorted(cases, key=lambda c: (order[c.verdict], -c.ratio if c.ratio == c.ratio else 0, c.key, c.metric))


@dataclass(frozen=True)
class CasePair:
    """One case measured `ok` on both sides, as the judge needs it."""

    key: str
    machine: str | None
    base_rounds: list[list[float]]
    new_rounds: list[list[float]]
    base_value: float  # median, in `unit`
    new_value: float
    busy: bool  # either side was flagged as measured on a busy machine (`stall_flagged`)
    metric: str = "time"
    unit: str = "s"
    direction: str | None = "lower"
    note: str = ""  # appended to the verdict's note (which of several runs was taken)


@dataclass(frozen=True)
class Unpaired:
    """The cases of a comparison that get no verdict, listed as the summary lists them."""

    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    not_ok: list[tuple[str, str, str]] = field(default_factory=list)
    both_skipped: int = 0


def judge_cases(
    pairs: Sequence[CasePair],
    unpaired: Unpaired | None = None,
    *,
    paired: bool = False,
    threshold: float = THRESHOLD,
    confidence: float = CONFIDENCE,
    warnings: Sequence[str] = (),
) -> Comparison:
    """A verdict for every pair: paired round by round (`ab`), or two separate runs held to the pooled
    noise floor (`compare`); busy cases get none. `warnings` come first in the result's."""
    # the noise no case's few rounds can show, from every timed case that was not flagged as stalled
    timed = [(p.base_rounds, p.new_rounds) for p in pairs if p.unit == "s" and not p.busy]
    noise = None if paired else pooled_noise(timed)
    unpaired = unpaired or Unpaired()
    cases = [_judge_pair(p, threshold, confidence, paired, noise) for p in pairs]
    stalled = sum(p.busy for p in pairs)
    notes = list(warnings)
    if stalled:
        notes.append(f"{stalled} cases were flagged as measured on a busy machine: no verdict on them")
    if noise is not None and abs(noise.shift) > math.log1p(threshold):
        notes.append(
            f"the whole run moved {math.exp(noise.shift) - 1:+.1%} (common-mode shift): with one run a side, a "
            "machine-wide shift and a change that hits every case look alike, so it counts as drift and widens "
            "every interval; `rnnbench ab` interleaves the two sides and tells them apart"
        )
    return Comparison(
        cases=sort_cases(cases), only_base=unpaired.only_base, only_new=unpaired.only_new, not_ok=unpaired.not_ok,
        both_skipped=unpaired.both_skipped, threshold=threshold, confidence=confidence,
        method=PAIRED_METHOD if paired else METHOD, warnings=notes, noise=noise,
    )  # fmt: skip


def _judge_pair(
    p: CasePair, threshold: float, confidence: float, paired: bool, noise: NoiseModel | None
) -> CaseComparison:
    time_like = p.unit == "s" or "flop" in p.unit.lower()
    v = compare_rounds(
        p.base_rounds, p.new_rounds, threshold, confidence, paired=paired, direction=p.direction, time_like=time_like,
        noise=noise if p.unit == "s" else None,
    )  # fmt: skip
    verdict, note = (Verdict.TOO_NOISY, BUSY_NOTE) if p.busy else (v.verdict, v.note)
    vb, vn = p.base_value, p.new_value
    return CaseComparison(
        key=p.key, machine=p.machine, base_value=vb, new_value=vn,
        n_base=sum(map(len, p.base_rounds)), n_new=sum(map(len, p.new_rounds)),
        ratio=v.ratio if math.isfinite(v.ratio) else (vn / vb if vb else math.nan),
        ci_low=v.ci_low, ci_high=v.ci_high, mde=v.mde, verdict=verdict,
        note="; ".join(filter(None, [note, p.note])), metric=p.metric, unit=p.unit, direction=p.direction,
        rounds_base=max(1, len(p.base_rounds)), rounds_new=max(1, len(p.new_rounds)),
    )  # fmt: skip


# -- the two documents of one `ab` run ------------------------------------------------------------


# A paired case keeps a verdict while this many of its round pairs were measured on a quiet machine:
# two rounds give the round-level bootstrap a spread to read, and an interval from them is as wide as
# that spread says (a busy night gets wide intervals, not false ones)
MIN_QUIET_ROUNDS = 2
# the record fields that flag a whole side as busy, whatever its rounds show (the timing engine's
# `stalls` count is weighed round by round instead: `paired_rounds`)
_SIDE_FLAGS = ("stalled", "stall", "busy")


@dataclass(frozen=True)
class PairedRounds:
    """The round pairs of one paired case that count: those where neither side's samples show a busy
    machine (`timing.busy`). A stall lands in one turn of one side, so it says nothing about the rounds
    before and after it: a busy round is dropped on both sides and the rest still judge the case."""

    base: list[list[float]]
    new: list[list[float]]
    dropped: int  # round pairs dropped as busy
    busy: bool  # too few quiet rounds left (or a side flagged busy as a whole): no verdict

    @property
    def note(self) -> str:
        if not self.dropped or self.busy:
            return ""
        return f"{self.dropped} busy round{'s' if self.dropped > 1 else ''} dropped"


def paired_rounds(base: Mapping[str, Any], new: Mapping[str, Any]) -> PairedRounds:
    """Round i of BASE beside round i of NEW (both `ok` records of one `ab` case), the busy ones dropped.
    A record without per-round samples is weighed whole, as the unpaired rule does (`stall_flagged`)."""
    rb, rn = rounds_of(base), rounds_of(new)
    flagged = any(bool(row.get(col)) for row in (base, new) for col in _SIDE_FLAGS)
    if not (base.get("round_samples_s") is not None and new.get("round_samples_s") is not None):
        return PairedRounds(rb, rn, 0, flagged or stall_flagged(base) or stall_flagged(new))
    n = min(len(rb), len(rn))
    keep = [i for i in range(n) if len(rb[i]) and len(rn[i]) and not busy(rb[i]) and not busy(rn[i])]
    dropped = sum(1 for i in range(n) if len(rb[i]) and len(rn[i])) - len(keep)
    quiet = len(keep) >= min(MIN_QUIET_ROUNDS, n)
    return PairedRounds([rb[i] for i in keep], [rn[i] for i in keep], dropped, flagged or not quiet)


def paired_verdict(base: Mapping[str, Any], new: Mapping[str, Any], threshold: float) -> tuple[SampleVerdict, bool]:
    """The paired round-level verdict of two `ok` records of one case over their quiet rounds
    (`paired_rounds`), and whether too few were quiet (then no verdict stands, however the interval
    reads): the rule `ab`'s extra rounds stop on, the same `judge_records` judges with."""
    # no moderated floor here (compare has one): measured on the 2-core VM it cost ab most of its power
    # and stopped no false alarm (docs/measurements/2026-11-22-ci-cpu-2core-issue9-targets.md)
    rounds = paired_rounds(base, new)
    v = compare_rounds(rounds.base, rounds.new, threshold, CONFIDENCE, paired=True)
    return v, rounds.busy


def judge_records(
    base: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], threshold: float = THRESHOLD
) -> Comparison:
    """A `Comparison` of two sides' records (times), case by case, with the paired round-level bootstrap."""
    by_new = {r["key"]: r for r in new}
    keys_b, keys_n = {r["key"] for r in base}, set(by_new)
    pairs: list[CasePair] = []
    not_ok: list[tuple[str, str, str]] = []
    both_skipped = 0
    for rb in base:
        rn = by_new.get(rb["key"])
        if rn is None:
            continue
        if rb["status"] == rn["status"] == "skipped":
            both_skipped += 1
        elif rb["status"] != "ok" or rn["status"] != "ok":
            not_ok.append((rb["key"], rb["status"], rn["status"]))
        else:
            rounds = paired_rounds(rb, rn)
            pairs.append(
                CasePair(
                    key=rb["key"], machine=None, base_rounds=rounds.base, new_rounds=rounds.new,
                    base_value=float(rb["median_s"]), new_value=float(rn["median_s"]), busy=rounds.busy,
                    note=rounds.note,
                )
            )  # fmt: skip
    unpaired = Unpaired(sorted(keys_b - keys_n), sorted(keys_n - keys_b), not_ok, both_skipped)
    return judge_cases(pairs, unpaired, paired=True, threshold=threshold)
