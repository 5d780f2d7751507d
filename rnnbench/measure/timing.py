"""The one timing engine: compile time apart, warm-up until stable, blocked adaptive sampling.

`measure(call)` times a zero-argument callable that returns only once the
device has finished (every `Kernel.call` synchronises inside, so the clock
brackets device work too). The procedure, after torch.utils.benchmark's
`blocked_autorange` and pyperf:

1. The first call is timed on its own; compilation/tracing (torch.compile,
   tf.function, jax.jit) happens there. `compile_s` is that call minus one
   steady-state call, and it never enters the samples.
2. Warm-up: calls continue until the per-call time of consecutive windows
   agrees within `stable_within` (or the warm-up budget is spent).
3. Blocking: `number` (calls per sample) grows until one sample lasts at least
   1000x the timer's own overhead (overhead < 0.1% of a sample) and at least
   `min_sample_s`.
4. Sampling: samples are taken until IQR/median < `noise_threshold` (with at
   least `min_samples`) or the time budget runs out. Every sample is kept;
   a result whose IQR/median stays above the threshold is flagged `noisy`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Measurement", "TimingConfig", "measure", "timer_overhead"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class TimingConfig:
    budget_s: float = 1.0  # sampling time per case, after warm-up
    warmup_budget_s: float = 0.5
    min_sample_s: float = 1e-3
    min_samples: int = 15  # enough for a bootstrap interval narrow enough to call 5% changes
    max_samples: int = 200
    noise_threshold: float = 0.05  # IQR / median
    stable_within: float = 0.1  # warm-up: consecutive windows within 10%


@dataclass(frozen=True)
class Measurement:
    """Per-call seconds of each sample (a sample is `number` back-to-back calls)."""

    samples_s: tuple[float, ...]
    number: int
    compile_s: float
    warmup_calls: int
    noise_threshold: float = 0.05
    timer_overhead_s: float = 0.0
    timed_s: float = 0.0  # wall time spent inside clocked blocks (compile call, warm-up, samples)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.samples_s)

    @property
    def iqr_s(self) -> float:
        if len(self.samples_s) < 2:
            return 0.0
        q = statistics.quantiles(self.samples_s, n=4, method="inclusive")
        return q[2] - q[0]

    @property
    def noisy(self) -> bool:
        return self.iqr_s / self.median_s > self.noise_threshold if self.median_s > 0 else True


def timer_overhead(clock: Clock = time.perf_counter, repeats: int = 2000) -> float:
    """Median cost of one clock read, in seconds."""
    deltas = []
    for _ in range(repeats):
        t0 = clock()
        t1 = clock()
        deltas.append(t1 - t0)
    return max(statistics.median(deltas), 1e-9)


class _Clocked:
    """Runs blocks of calls and keeps the total time spent inside them."""

    def __init__(self, call: Callable[[], Any], clock: Clock) -> None:
        self.call, self.clock, self.total = call, clock, 0.0

    def __call__(self, number: int) -> float:
        call = self.call
        t0 = self.clock()
        for _ in range(number):
            call()
        elapsed = self.clock() - t0
        self.total += elapsed
        return elapsed


def measure(
    call: Callable[[], Any],
    config: TimingConfig | None = None,
    clock: Clock = time.perf_counter,
    first_call_s: float | None = None,
) -> Measurement:
    """Time `call`; see the module docstring for the procedure.

    `first_call_s`: the caller already made (and clocked) the first call, e.g.
    to verify its output; it then counts as the compiling call.
    """
    cfg = config or TimingConfig()
    overhead = timer_overhead(clock)
    block = _Clocked(call, clock)
    if first_call_s is None:
        first = block(1)
    else:
        first = first_call_s
        block.total += first_call_s
    steady = block(1)
    compile_s = max(0.0, first - steady)

    # warm-up: windows of calls until the per-call time settles
    warm_deadline = clock() + cfg.warmup_budget_s
    window = max(1, min(50, int(0.02 / max(steady, 1e-9))))
    previous = block(window) / window
    warmup_calls = 2 + window
    while clock() < warm_deadline:
        current = block(window) / window
        warmup_calls += window
        if abs(current - previous) <= cfg.stable_within * min(current, previous):
            break
        previous = current

    # blocking: grow calls per sample until timer overhead is negligible
    number = 1
    min_block = max(cfg.min_sample_s, 1000 * overhead)
    while True:
        elapsed = block(number)
        if elapsed >= min_block:
            break
        number = max(number + 1, int(number * min(10.0, 1.2 * min_block / max(elapsed, 1e-9))))

    samples: list[float] = [elapsed / number]
    deadline = clock() + cfg.budget_s
    while len(samples) < cfg.max_samples:
        samples.append(block(number) / number)
        out_of_time = clock() >= deadline
        if out_of_time and len(samples) >= 3:  # a very slow kernel still ends near its budget
            break
        if len(samples) >= cfg.min_samples:
            m = Measurement(tuple(samples), number, compile_s, warmup_calls, cfg.noise_threshold)
            if not m.noisy or out_of_time:
                break
    return Measurement(tuple(samples), number, compile_s, warmup_calls, cfg.noise_threshold, overhead, block.total)
