"""The timing engine recovers known durations and keeps compilation out of the samples."""

from __future__ import annotations

import time

import pytest

from rnnbench.measure.timing import TimingConfig, measure, timer_overhead


class FakeClock:
    """A clock that only moves when the fake kernel runs (no noise at all)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_fake_kernel_exact_duration_and_compile_excluded():
    clock = FakeClock()
    calls = []

    def kernel() -> None:
        clock.now += 0.5 if not calls else 0.001  # the first call "compiles" for half a second
        calls.append(1)

    m = measure(kernel, TimingConfig(budget_s=0.05, warmup_budget_s=0.01), clock=clock)
    assert m.median_s == pytest.approx(0.001)
    assert max(m.samples_s) == pytest.approx(0.001)  # the compile call is in no sample
    assert m.compile_s == pytest.approx(0.499)
    assert m.number >= 1 and m.number * 0.001 >= 1e-3
    assert not m.noisy and m.iqr_s == pytest.approx(0.0, abs=1e-12)


def test_sleep_kernel_recovered_within_tolerance():
    target = 0.003
    m = measure(lambda: time.sleep(target), TimingConfig(budget_s=0.3, warmup_budget_s=0.05, min_samples=5))
    # sleep overshoots by scheduler latency, never undershoots
    assert target <= m.median_s < target * 1.5
    assert len(m.samples_s) >= 3
    assert m.compile_s < 0.05


def test_blocking_grows_number_for_fast_calls():
    m = measure(lambda: None, TimingConfig(budget_s=0.05, warmup_budget_s=0.01))
    assert m.number > 100  # one no-op is far below 1000x the timer overhead
    assert m.timer_overhead_s * 1000 <= m.median_s * m.number * 1.5


def test_timer_overhead_is_small_and_positive():
    assert 0 < timer_overhead() < 1e-4


def test_budget_bounds_a_slow_kernel():
    t0 = time.perf_counter()
    m = measure(lambda: time.sleep(0.05), TimingConfig(budget_s=0.1, warmup_budget_s=0.05, min_samples=7))
    assert time.perf_counter() - t0 < 1.5
    assert 3 <= len(m.samples_s) < 7


def test_first_call_made_by_the_caller_counts_as_compile():
    clock = FakeClock()

    def kernel() -> None:
        clock.now += 0.002

    m = measure(kernel, TimingConfig(budget_s=0.05, warmup_budget_s=0.01), clock=clock, first_call_s=0.8)
    assert m.compile_s == pytest.approx(0.798)
    assert m.median_s == pytest.approx(0.002)
    assert m.timed_s >= 0.8
