"""`rnnbench doctor`: is this machine quiet enough for a 5% verdict? Measure it, then advise.

This module owns the self-check of the measurement chain on the machine it
runs on: the timer's resolution and call overhead, the spread of repeated
samples of one fixed numpy kernel, and `compare`'s behaviour on real timings
of a small kernel set measured back to back: the A/A false-alarm rate (the
same kernels twice) and the detection rate of a slowdown injected into the
`concat` formulation only (each call followed by a busy-wait of the given
fraction of its own duration). It also writes those measurement sets as
`rnnbench-run` documents on request, so `compare` and `report` can be tried
on real data.

With a preset (`rnnbench doctor --preset P`, `calibrate`), it measures the
verdicts as they are used: the preset run as A/A and as A/B with a slowdown
injected into one formulation through the worker's self-test switch
(`RNNBENCH_SELFTEST_SLOWDOWN`, `rnnbench.sweep.worker`), in separate sweeps for `compare` and as
interleaved runs for `ab`, reporting each tool's false-alarm rate and the
share of slowed cases it caught.

Samples come from the one timing engine in its fixed-count mode
(`rnnbench.measure.timing.measure_fixed`, calibrated by `timing.calibrate`),
so that both sets of an A/A pair have the same size; the runner uses the same
engine's adaptive mode.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from rnnbench import backends
from rnnbench.analysis.comparison import compare_frames
from rnnbench.analysis.frame import load
from rnnbench.case import Case
from rnnbench.display import format_time
from rnnbench.errors import UsageError
from rnnbench.judge.cases import Comparison
from rnnbench.judge.rules import THRESHOLD, Verdict, compare_samples
from rnnbench.measure import timing
from rnnbench.measure.machine import fingerprint
from rnnbench.measure.timing import Measurement, TimingConfig
from rnnbench.measure.verify import make_inputs
from rnnbench.sweep.ab import BUDGET_S as AB_BUDGET_S
from rnnbench.sweep.ab import ROUNDS as AB_ROUNDS
from rnnbench.sweep.ab import ABOptions, run_ab
from rnnbench.sweep.records import RunDocument
from rnnbench.sweep.runner import RunOptions, run_cases
from rnnbench.sweep.store import document_text, new_document, now_iso
from rnnbench.sweep.worker import SELFTEST_SLOWDOWN, make_record, slowed

__all__ = [
    "KERNEL_SET",
    "CalibrationOptions",
    "DoctorOptions",
    "ErrorRates",
    "Measured",
    "calibrate",
    "document",
    "format_calibration",
    "measure_set",
    "run_doctor",
    "sample_kernel",
    "slowdown_env",
    "timer_stats",
]

# small enough that a full doctor run takes seconds, large enough that a call is
# well above timer resolution: rnn/gru/lstm x three formulations x two shapes
KERNEL_SET: tuple[Case, ...] = tuple(
    Case("numpy", "cpu", cell, form, "eager", "forward", b, i, h, t)
    for cell in ("rnn", "gru", "lstm")
    for form in ("separate", "concat", "hoisted")
    for (b, i, h, t) in ((16, 64, 64, 16), (4, 32, 32, 16))
)
NOISE_CASE = Case("numpy", "cpu", "lstm", "separate", "eager", "forward", 16, 64, 64, 16)


@dataclass(frozen=True)
class Measured:
    case: Case
    samples_s: list[float]  # seconds per call
    number: int  # calls per sample


def timer_stats(n: int = 200_000) -> dict[str, float]:
    """perf_counter's advertised resolution, its smallest observed tick and the cost of one call."""
    clock = time.get_clock_info("perf_counter")
    t = time.perf_counter
    ticks = []
    start = t()
    for _ in range(n):
        ticks.append(t())
    overhead = (ticks[-1] - start) / n
    deltas = np.diff(np.asarray(ticks))
    positive = deltas[deltas > 0]
    return {
        "resolution_s": clock.resolution,
        "min_tick_s": float(positive.min()) if positive.size else float("nan"),
        "overhead_s": overhead,
    }


def _kernels(cases: Sequence[Case]) -> dict[Case, Callable[[], Any]]:
    return {c: backends.get(c.framework).build(c, *make_inputs(c)).call for c in cases}


def measure_set(
    kernels: dict[Case, Callable[[], Any]],
    numbers: dict[Case, int],
    n_samples: int,
    slow: Callable[[Case], float] = lambda c: 0.0,
) -> list[Measured]:
    """Every kernel once, in order, like one run of the runner; `slow(case)` injects a slowdown."""
    return [
        Measured(case, sample_kernel(case, call, n_samples, numbers[case], slow(case)), numbers[case])
        for case, call in kernels.items()
    ]


def sample_kernel(case: Case, call: Callable[[], Any], n_samples: int, number: int, slowdown: float) -> list[float]:
    """`n_samples` samples of `number` calls of `case`'s kernel `call`, in seconds per call.

    Each call is followed by a busy-wait of `slowdown` of its own duration. The timing needs
    only `call`; `case` tells a stand-in (the tests' synthetic samples) what it is sampling.
    """
    fn = slowed(call, 1 + slowdown) if slowdown else call  # the worker's self-test slowdown, as a fraction
    return list(timing.measure_fixed(fn, n_samples, number, warmup=1).samples_s)


def document(
    measured: Sequence[Measured], created: datetime | None = None, machine: dict[str, Any] | None = None
) -> RunDocument:
    """An `rnnbench-run` document (schema api_version 1) holding `measured`."""
    machine = machine or fingerprint()
    records = []
    for m in measured:
        timing = Measurement(tuple(m.samples_s), m.number, compile_s=0.0, warmup_calls=1)
        record = make_record(m.case, "ok", threads=machine["threads"], m=timing)
        records.append(replace(record, timestamp=created.isoformat()) if created is not None else record)
    doc = new_document(machine, command=["rnnbench", "doctor"], preset="doctor", shard=None, created=created)
    return replace(doc, records=tuple(records), finished=now_iso())


def _governor() -> str | None:
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class DoctorOptions:
    """What `run_doctor` measures: rounds of A/A and A/B sets, their size, and the injected slowdown."""

    rounds: int = 5
    samples: int = 15
    sample_time: float = 0.002
    slowdown: float = 0.20
    threads: int = 1
    save: Path | None = None


def run_doctor(args: DoctorOptions) -> int:
    """Measure this machine's timer, noise and `compare`'s error rates; print them and advice."""
    if args.save is not None:  # fail before minutes of measuring, not after
        try:
            args.save.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot write to --save {args.save}: {exc.strerror or exc}") from None
    say = print
    t = timer_stats()
    say(
        f"timer: perf_counter resolution {format_time(t['resolution_s'])}, smallest observed tick "
        f"{format_time(t['min_tick_s'])}, {format_time(t['overhead_s'])} per call"
    )
    kernels = _kernels(KERNEL_SET)
    with threadpool_limits(args.threads):
        numbers = {c: timing.calibrate(k, args.sample_time) for c, k in kernels.items()}

    rel_iqr = _noise_by_threads(args, say)
    aa, slow_concat, slow_other, first = _verdicts(kernels, numbers, args)
    slowdown = args.slowdown
    fa = _rate(aa, Verdict.SLOWER)
    say(
        f"A/A ({len(aa)} comparisons of back-to-back sets of {len(KERNEL_SET)} numpy kernels, {args.threads} BLAS "
        f"thread(s), {args.samples} samples each, threshold {THRESHOLD:.0%}): "
        f"{fa:.1%} flagged slower, {_rate(aa, Verdict.FASTER):.1%} faster, {_rate(aa, Verdict.TOO_NOISY):.1%} too "
        f"noisy, {_rate(aa, Verdict.SAME):.1%} same"
    )
    if first:
        say(f"  median relative IQR of a case in those sets: {statistics.median(_rel_iqrs(first)):.1%}")
    det = _rate(slow_concat, Verdict.SLOWER)
    # flagged either way; summed from the two rates (1 minus the others could print -0.0%)
    other = _rate(slow_other, Verdict.SLOWER) + _rate(slow_other, Verdict.FASTER)
    say(
        f"injected {slowdown:.0%} slowdown into concat: {det:.1%} of {len(slow_concat)} concat comparisons flagged "
        f"slower; {other:.1%} of {len(slow_other)} other comparisons flagged (slower or faster)"
    )
    if args.save is not None and first:
        folder = args.save
        for name, ms in zip(("base", "same", "slow"), first):
            (folder / f"{name}.json").write_text(document_text(document(ms)))
        say(
            f"wrote {folder}/base.json, same.json and slow.json (round 1); try: rnnbench compare {folder}/base.json {folder}/slow.json"
        )

    noisy = fa > 0.01 or det < 0.95 or max(rel_iqr.values()) > 0.02 or _rate(aa, Verdict.TOO_NOISY) > 0.10
    quiet = f"this machine is quiet enough for {THRESHOLD:.0%} verdicts with {args.samples} samples per case."
    say("advice: " + "\n".join(_advice(args, rel_iqr) if noisy else [quiet]))
    return 0


def _noise_by_threads(args: DoctorOptions, say: Callable[[str], None]) -> dict[int, float]:
    """The noise case's IQR / median at the BLAS pool's default thread count and at --threads."""
    noise_call = _kernels([NOISE_CASE])[NOISE_CASE]
    default_threads = max((int(p.get("num_threads", 1)) for p in threadpool_info()), default=1)
    rel_iqr = {}
    for threads in sorted({default_threads, args.threads}):
        with threadpool_limits(threads):
            number = timing.calibrate(noise_call, args.sample_time)
            noise = np.asarray(timing.measure_fixed(noise_call, 4 * args.samples, number, warmup=0).samples_s)
        med = float(np.median(noise))
        q25, q75 = np.percentile(noise, [25, 75])
        rel_iqr[threads] = float((q75 - q25) / med)
        say(
            f"noise at {threads} BLAS thread(s): {NOISE_CASE.key}: median {format_time(med)} over {len(noise)} "
            f"samples, IQR {rel_iqr[threads]:.1%} of the median, range {float((noise.max() - noise.min()) / med):.1%}"
        )
    return rel_iqr


_Sets = tuple[list[Measured], list[Measured], list[Measured]]


def _verdicts(
    kernels: dict[Case, Callable[[], Any]], numbers: dict[Case, int], args: DoctorOptions
) -> tuple[list[Verdict], list[Verdict], list[Verdict], _Sets | None]:
    """Per round, three back-to-back sets (base, the same, concat slowed): the A/A verdicts, the A/B
    verdicts of the slowed cases and of the others, and the first round's sets."""
    aa: list[Verdict] = []
    slow_concat: list[Verdict] = []
    slow_other: list[Verdict] = []
    first: _Sets | None = None
    slowdown = args.slowdown
    with threadpool_limits(args.threads):  # restored on any exit, an error or Ctrl-C included
        for r in range(args.rounds):
            base = measure_set(kernels, numbers, args.samples)
            same = measure_set(kernels, numbers, args.samples)
            slow = measure_set(kernels, numbers, args.samples, lambda c: slowdown if c.formulation == "concat" else 0.0)
            first = first or (base, same, slow)
            for b, s, x in zip(base, same, slow):
                aa.append(compare_samples(b.samples_s, s.samples_s, THRESHOLD, seed=r).verdict)
                v = compare_samples(b.samples_s, x.samples_s, THRESHOLD, seed=r).verdict
                (slow_concat if b.case.formulation == "concat" else slow_other).append(v)
            print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)
    return aa, slow_concat, slow_other, first


def _rate(verdicts: list[Verdict], what: Verdict) -> float:
    return verdicts.count(what) / len(verdicts) if verdicts else float("nan")


def _advice(args: DoctorOptions, rel_iqr: dict[int, float]) -> list[str]:
    """How to quiet a machine too noisy for the threshold, from what `run_doctor` found and the machine's state."""
    advice = [f"this machine is too noisy for a reliable {THRESHOLD:.0%} verdict. To quiet it:"]
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = os.cpu_count() or 1
    if load1 == load1 and load1 > 0.5 * cores:
        advice.append(
            f"- load average {load1:.2f} on {cores} cores: other work is running; benchmark on an idle machine"
        )
    if len(rel_iqr) > 1:
        advice.append(
            "- threads: the noise case's IQR is "
            + " vs ".join(f"{v:.1%} at {k} thread(s)" for k, v in sorted(rel_iqr.items()))
            + "; fix the thread count (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS) to what you reserve"
        )
    else:
        advice.append(
            "- fix the thread count (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS) to the cores you reserve"
        )
    gov = _governor()
    if gov != "performance":
        advice.append(
            f"- CPU frequency governor is {gov or 'not readable here (VM or container)'}; use 'performance' "
            "(sudo cpupower frequency-set -g performance) and disable turbo boost for stable clocks"
        )
    advice.append("- pin the benchmark to fixed cores: taskset -c 2,3 rnnbench run ... (and keep other work off them)")
    advice.append(
        f"- take more samples (--samples {args.samples * 2}) or longer ones (--sample-time {args.sample_time * 2:g})"
    )
    return advice


def _rel_iqrs(sets: tuple[list[Measured], ...]) -> list[float]:
    out = []
    for ms in sets:
        for m in ms:
            s = np.asarray(m.samples_s)
            q25, q75 = np.percentile(s, [25, 75])
            out.append(float((q75 - q25) / np.median(s)))
    return out


# -- calibration on a preset: compare and ab, as real runs are -----------------------------------------


@dataclass(frozen=True)
class CalibrationOptions:
    """`doctor --preset`: the sweeps' settings and the slowdown injected through the self-test switch."""

    results_dir: Path
    threads: int
    slowdown: float = 0.20
    formulation: str = "concat"
    # the compare sweeps' sampling seconds per case (all rounds) and warm-up pass; `rnnbench doctor` passes
    # `run`'s, so they are calibrated as the user's runs are
    budget_s: float = 1.0
    warmup_budget_s: float = 0.5
    ab_budget_s: float = AB_BUDGET_S  # per case and side, all rounds, as `ab` takes it
    rounds: int = 3  # runner rounds of each compare sweep
    ab_rounds: int = AB_ROUNDS  # as `ab` runs by default
    threshold: float = THRESHOLD
    progress: bool = True
    preset: str | None = None


@dataclass(frozen=True)
class ErrorRates:
    """One tool's calibration: verdict counts on A/A, and how the slowed and the other cases fared on A/B."""

    tool: str
    aa: dict[str, int]  # verdict -> cases, A/A
    slowed: dict[str, int]  # verdict -> slowed cases, A/B
    others: dict[str, int]  # verdict -> other cases, A/B

    @property
    def false_alarm_rate(self) -> float:
        n = sum(self.aa.values())
        return self.aa.get(Verdict.SLOWER, 0) / n if n else float("nan")

    @property
    def caught(self) -> float:
        n = sum(self.slowed.values())
        return self.slowed.get(Verdict.SLOWER, 0) / n if n else float("nan")

    @property
    def others_flagged(self) -> float:
        n = sum(self.others.values())
        return (self.others.get(Verdict.SLOWER, 0) + self.others.get(Verdict.FASTER, 0)) / n if n else float("nan")


def _counts(cmp: Comparison, keep: Callable[[str], bool]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in cmp.cases:
        if keep(c.key):
            out[c.verdict] = out.get(c.verdict, 0) + 1
    return out


def slowdown_env(formulation: str, slowdown: float) -> dict[str, str]:
    """The environment under which workers run `formulation` `slowdown` longer (0.2: 20%): the self-test switch."""
    return {SELFTEST_SLOWDOWN: f"{formulation}:{1 + slowdown:g}"}


def calibrate(cases: Sequence[Case], opts: CalibrationOptions) -> list[ErrorRates]:
    """Run `cases` as A/A and A/B (the formulation slowed) for `compare` (three separate sweeps) and `ab`.

    The slowdown is the worker's self-test switch (`RNNBENCH_SELFTEST_SLOWDOWN`, see `rnnbench.sweep.worker`),
    set in the environment of the slowed sweep's (or side's) workers only.
    """
    slowed_form = opts.formulation
    keys = {c.key: c.formulation == slowed_form for c in cases}
    switch = slowdown_env(slowed_form, opts.slowdown)
    machine = fingerprint(opts.threads)

    def sweep(name: str, env: dict[str, str]) -> Path:
        timing = TimingConfig(
            budget_s=opts.budget_s / opts.rounds, min_samples=max(5, -(-15 // opts.rounds)),
            warmup_budget_s=opts.warmup_budget_s,
        )  # fmt: skip
        run_opts = RunOptions(
            results_dir=opts.results_dir, threads=opts.threads, timing=timing, rounds=opts.rounds,
            progress=opts.progress, command=["rnnbench", "doctor", name], preset=opts.preset,
        )  # fmt: skip
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # spawned workers inherit it; this process's kernels never read it
        try:
            print(f"rnnbench: doctor: compare calibration, sweep {name}", file=sys.stderr)
            return run_cases(cases, machine, run_opts).path
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    a1, a2, b = sweep("A", {}), sweep("A'", {}), sweep("B", switch)
    aa = compare_frames(load([a1]), load([a2]), opts.threshold)
    ab_ = compare_frames(load([a1]), load([b]), opts.threshold)
    rates = [
        ErrorRates(
            "compare (separate sweeps)",
            _counts(aa, lambda k: True),
            _counts(ab_, lambda k: keys.get(k, False)),
            _counts(ab_, lambda k: not keys.get(k, True)),
        )
    ]
    ab_timing = TimingConfig(budget_s=opts.ab_budget_s / opts.ab_rounds, min_samples=max(5, -(-15 // opts.ab_rounds)))

    def ab(name: str, new_env: dict[str, str]) -> Any:
        print(f"rnnbench: doctor: ab calibration, {name}", file=sys.stderr)
        ab_opts = ABOptions(
            base=sys.executable, new=sys.executable, results_dir=opts.results_dir, threads=opts.threads,
            timing=ab_timing, rounds=opts.ab_rounds, threshold=opts.threshold, progress=opts.progress,
            command=["rnnbench", "doctor", f"ab {name}"], preset=opts.preset, new_env=new_env,
        )  # fmt: skip
        return run_ab(cases, opts.threads, ab_opts).comparison

    ab_aa, ab_ab = ab("A/A", {}), ab("A/B", switch)
    rates.append(
        ErrorRates(
            "ab (interleaved, paired)",
            _counts(ab_aa, lambda k: True),
            _counts(ab_ab, lambda k: keys.get(k, False)),
            _counts(ab_ab, lambda k: not keys.get(k, True)),
        )
    )
    return rates


def format_calibration(rates: Sequence[ErrorRates], opts: CalibrationOptions, n_cases: int) -> str:
    """The false-alarm rate and the share of slowed cases caught, per tool, with the full verdict split."""

    def split(counts: dict[str, int]) -> str:
        return ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"

    lines = [
        f"calibration: {n_cases} cases{f' (preset {opts.preset})' if opts.preset else ''}, threshold "
        f"{opts.threshold:.0%}; A/B slows every {opts.formulation} case by {opts.slowdown:.0%} "
        f"(self-test switch RNNBENCH_SELFTEST_SLOWDOWN={opts.formulation}:{1 + opts.slowdown:g})"
    ]
    for r in rates:
        lines += [
            f"{r.tool}:",
            f"  A/A false-alarm rate: {r.false_alarm_rate:.1%} of {sum(r.aa.values())} cases flagged slower "
            f"({split(r.aa)})",
            f"  A/B slowed cases caught: {r.caught:.1%} of {sum(r.slowed.values())} flagged slower ({split(r.slowed)})",
            f"  A/B other cases flagged: {r.others_flagged:.1%} of {sum(r.others.values())} ({split(r.others)})",
        ]
    lines.append(f"run documents: {opts.results_dir}")
    return "\n".join(lines)
