"""The timing engine: known durations recovered, compilation kept out, one sampling loop for every clock and mode."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from rnnbench.display import format_time
from rnnbench.measure.timing import (
    Stepped,
    TimingConfig,
    busy,
    cache_flush,
    calibrate,
    measure,
    measure_fixed,
    measure_interleaved,
    measure_kernel,
    stall_count,
    timer_overhead,
)


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


def test_sleep_kernel_through_the_real_clock():
    # the real clock end to end; only what sleep guarantees is asserted (it never returns early), since how
    # far it overshoots is the scheduler's mood: on a loaded machine a 3 ms sleep can take 5 ms or 50
    target = 0.003
    m = measure(lambda: time.sleep(target), TimingConfig(budget_s=0.3, warmup_budget_s=0.05, min_samples=5))
    assert min(m.samples_s) >= target  # (compile_s, the first call's excess, is held exactly by the fake clocks)
    assert len(m.samples_s) >= 3  # the engine's floor, whatever the budget allows
    assert m.clock == "host" and m.timed_s >= target * len(m.samples_s)


class TickingClock(FakeClock):
    """A fake clock that also costs `tick` seconds per read (the timer overhead a real clock has)."""

    def __init__(self, tick: float) -> None:
        super().__init__()
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_blocking_grows_number_for_fast_calls():
    # a fake clock, so the block size follows from the rule alone: on the real clock one preempted call
    # in the calibration (1 ms or more) would end the blocking at number = 1
    clock = TickingClock(2e-8)

    def kernel() -> None:
        clock.now += 1e-7

    m = measure(kernel, TimingConfig(budget_s=0.05, warmup_budget_s=0.01), clock=clock)
    assert m.timer_overhead_s == pytest.approx(2e-8)
    # a sample lasts min_sample_s (1 ms: 10,000 calls of 100 ns), which is more than 1000x the overhead
    assert m.number >= 10_000 and m.number * 1e-7 >= 1e-3 >= 1000 * m.timer_overhead_s
    assert m.median_s == pytest.approx(1e-7, rel=0.01)  # the clock reads inside a sample: 2 per 10,000 calls


def test_timer_overhead_is_small_and_positive():
    # the median of 2000 back-to-back reads of perf_counter (tens of ns): more than half of the pairs would
    # have to be preempted for it to reach 100 us
    assert 0 < timer_overhead() < 1e-4
    assert timer_overhead(TickingClock(3e-8)) == pytest.approx(3e-8)


def test_budget_bounds_a_slow_kernel():
    # a fake clock: how long the 50 ms calls take is then exact, and so is where the budget stops them
    clock = FakeClock()

    def kernel() -> None:
        clock.now += 0.05

    m = measure(kernel, TimingConfig(budget_s=0.1, warmup_budget_s=0.05, min_samples=7), clock=clock)
    assert 3 <= len(m.samples_s) < 7  # the budget ends sampling before min_samples, not before 3
    assert clock.now < 0.5  # first call, warm-up, blocking pass and samples: not min_samples' 7 x 50 ms on top


def test_first_call_made_by_the_caller_counts_as_compile():
    clock = FakeClock()

    def kernel() -> None:
        clock.now += 0.002

    m = measure(kernel, TimingConfig(budget_s=0.05, warmup_budget_s=0.01), clock=clock, first_call_s=0.8)
    assert m.compile_s == pytest.approx(0.798)
    assert m.median_s == pytest.approx(0.002)
    assert m.timed_s >= 0.8


# -- one sampling loop, whatever the clock ----------------------------------------------------------


class FakeEventTimer:
    """A device clock stand-in: marks the fake clock at start/stop, reads them after sync (as CUDA events do)."""

    name = "fake-event"

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.begin, self.end = clock, 0.0, 0.0

    def start(self) -> None:
        self.begin = self.clock()

    def stop(self) -> None:
        self.end = self.clock()

    def elapsed(self) -> float:
        return self.end - self.begin


def _drifting_kernel(clock: FakeClock) -> Callable[[], None]:
    """Durations that vary (compile call, a warm-up ramp, then a repeating pattern), so the statistics have work."""
    durations = iter([0.3, 0.004, 0.003, 0.0025, *([0.002, 0.0021, 0.0019, 0.0023] * 10_000)])

    def kernel() -> None:
        clock.now += next(durations)

    return kernel


def test_event_clock_gives_the_same_measurement_as_the_host_clock():
    cfg = TimingConfig(budget_s=0.2, warmup_budget_s=0.05)
    host_clock, event_clock = FakeClock(), FakeClock()
    host = measure(_drifting_kernel(host_clock), cfg, clock=host_clock)
    event = measure(_drifting_kernel(event_clock), cfg, clock=event_clock, timer=FakeEventTimer(event_clock))
    assert event.clock == "fake-event" and host.clock == "host"
    assert replace(event, clock="host") == host
    assert len(host.samples_s) >= cfg.min_samples and host.compile_s == pytest.approx(0.296)


def test_device_work_is_synchronised_once_per_sample_and_launch_time_kept_apart():
    """A fake asynchronous device: launch costs host time, the device finishes only at sync."""
    clock = FakeClock()
    pending: list[float] = []
    syncs = []

    def launch() -> int:
        clock.now += 1e-5  # host time to issue the call
        pending.append(1e-4)  # device time it queues
        return len(pending)

    def sync(result: int) -> None:
        syncs.append(result)
        clock.now += sum(pending) - 1e-5 * len(pending)  # the device overlaps the host's issuing
        pending.clear()

    m = measure(launch, TimingConfig(budget_s=0.1, warmup_budget_s=0.01), clock=clock, sync=sync)
    assert m.median_s == pytest.approx(1e-4)
    assert m.launch_s == pytest.approx(1e-5)
    assert m.number > 1
    # one sync per sample: every sample's calls were queued, then synchronised at once
    assert max(syncs) >= m.number
    assert len(syncs) < sum(syncs) / 2


def test_host_calls_have_no_launch_time():
    clock = FakeClock()

    def kernel() -> None:
        clock.now += 1e-3

    assert measure(kernel, TimingConfig(budget_s=0.02, warmup_budget_s=0.01), clock=clock).launch_s is None


def test_warm_up_waits_for_consecutive_stable_windows():
    clock = FakeClock()
    # per-call time falls 20% per window for a while, then settles: warm-up must outlast the ramp
    ramp = [0.01 * 0.8**k for k in range(8)]
    calls = []

    def kernel() -> None:
        k = len(calls) // 2  # windows are 2 calls long at 10 ms (0.02 s / 0.01 s)
        clock.now += ramp[k] if k < len(ramp) else ramp[-1] * 0.99
        calls.append(1)

    m = measure(kernel, TimingConfig(budget_s=0.05, warmup_budget_s=10.0), clock=clock)
    assert m.warmup_calls >= 2 + 2 * len(ramp)
    assert m.median_s == pytest.approx(ramp[-1] * 0.99)


def test_fixed_count_gives_exactly_the_asked_samples():
    clock = FakeClock()
    calls = []

    def kernel() -> None:
        clock.now += 0.001
        calls.append(1)

    m = measure_fixed(kernel, 7, 3, warmup=2, clock=clock)
    assert len(m.samples_s) == 7 and m.number == 3 and len(calls) == 2 + 21
    assert m.median_s == pytest.approx(0.001)
    assert calibrate(kernel, 0.01, clock=clock) == 10


def test_stepped_prepares_like_measure_then_takes_exactly_the_samples_asked():
    clock = FakeClock()
    calls = []

    def kernel() -> None:
        clock.now += 0.5 if not calls else 0.0002  # the first call "compiles"
        calls.append(1)

    stepped = Stepped(kernel, TimingConfig(min_sample_s=1e-3, warmup_budget_s=0.01), clock)
    assert stepped.compile_s == pytest.approx(0.4998)
    assert stepped.number * 0.0002 >= 1e-3 - 1e-12  # blocked as measure blocks
    assert len(stepped.samples) == 1  # the blocking pass's sample
    stepped.fresh()
    before = len(calls)
    assert stepped.sample(7) == pytest.approx(0.0002)
    assert len(calls) - before == 7 and stepped.number == 7
    for _ in range(3):
        stepped.sample()
    stepped.sample(keep=False)  # a re-warming sample: taken, not kept
    m = stepped.measurement()
    assert len(m.samples_s) == 4 and m.number == 7 and m.median_s == pytest.approx(0.0002)
    assert m.compile_s == pytest.approx(0.4998)


def test_interleaved_alternates_sample_by_sample_so_drift_cancels_in_the_ratio():
    clock = FakeClock()
    order = []

    def make(name: str, cost: float) -> Callable[[], None]:
        def call() -> None:
            # a machine that slows down steadily: every call costs 1% more than the one before
            clock.now += cost * 1.01 ** len(order)
            order.append(name)

        return call

    a, b = measure_interleaved([make("a", 0.001), make("b", 0.002)], samples=20, warmup=1, clock=clock)
    assert order[:6] == ["a", "b", "a", "b", "a", "b"]
    assert len(a.samples_s) == len(b.samples_s) == 20
    # the drift over the run is ~50%; alternating keeps the ratio within the one-step drift
    assert b.median_s / a.median_s == pytest.approx(2.0, rel=0.02)


def test_asv_median_seconds_is_the_interleaved_mode():
    from rnnbench import asvsuite

    seen = []
    asvsuite.median_seconds(lambda: seen.append("a"), lambda: seen.append("b"), repeats=3)
    assert seen == ["a", "b"] * 4  # one warm-up round, then three interleaved


# -- stalls -----------------------------------------------------------------------------------------


def test_stall_rule_flags_a_descheduled_thread_not_ordinary_noise():
    import numpy as np

    rng = np.random.default_rng(0)
    quiet = list(5e-4 * rng.lognormal(0.0, 0.05, 60))
    assert stall_count(quiet) == 0
    assert stall_count([*quiet[:-1], 0.508]) == 1  # 0.5 ms calls, one waiting 508 ms on a descheduled peer
    tight = [1e-3] * 30 + [1.05e-3]  # zero IQR: a 5% blip is not a stall
    assert stall_count(tight) == 0
    assert stall_count([1e-3] * 30 + [2e-3]) == 1
    m = measure_fixed(lambda: None, 5, 1)
    assert m.stalls == stall_count(m.samples_s)


def test_busy_weighs_stalls_against_a_quiet_machines_background():
    import numpy as np

    rng = np.random.default_rng(1)
    quiet = list(1e-3 * rng.lognormal(0.0, 0.03, 400))
    assert not busy(quiet)
    # one or two preemptions in 400 samples are the background (about 1 in 250 on the idle 2-core VM)
    assert not busy([*quiet[:-2], 2e-3, 3e-3]) and stall_count([*quiet[:-2], 2e-3, 3e-3]) == 2
    # one 6x stall is not: a competing process's stalls are longer (10.9x in the median busy case)
    assert busy([*quiet[:-1], 6e-3])
    # twelve in 400 are another process
    assert busy([*quiet[:-12], *[3e-3] * 12])
    # few samples: 1 of 20 is background, 4 of 20 is not
    assert not busy([*quiet[:19], 3e-3]) and busy([*quiet[:16], *[3e-3] * 4])
    # one thread waiting on a descheduled peer (0.5 ms calls, one of 508 ms)
    assert busy([*[5e-4 * v for v in rng.lognormal(0.0, 0.05, 59)], 0.508])
    assert not busy([])


# -- the one time formatter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, text",
    [(2.5, "2.5 s"), (0.0123, "12.3 ms"), (4.56e-5, "45.6 µs"), (7e-9, "7 ns"), (float("nan"), "-"), (None, "-")],
)
def test_format_time(seconds, text):
    assert format_time(seconds) == text


# -- kernels: the clock follows the device ----------------------------------------------------------


def _kernel(framework: str, device: str, **kw):
    from rnnbench import backends
    from rnnbench.case import Case
    from rnnbench.measure.verify import make_inputs

    case = Case(framework=framework, device=device, batch=8, input_size=32, hidden=32, seq_len=8, **kw)
    return backends.get(framework).build(case, *make_inputs(case))


def test_cpu_kernels_keep_the_host_clock_and_flush_forces_single_cold_calls():
    kernel = _kernel("numpy", "cpu")
    # samples of at least 50 ms: blocking stops at one call only if that call (tens of us) took 50 ms,
    # which no preemption on a loaded machine comes near (at 1 ms, one preempted call once could)
    cfg = TimingConfig(budget_s=0.02, warmup_budget_s=0.01, min_samples=3, min_sample_s=0.05)
    m = measure_kernel(kernel, cfg)
    assert m.clock == "host" and m.launch_s is None and m.number > 1
    flushed = measure_kernel(kernel, TimingConfig(budget_s=0.02, warmup_budget_s=0.01, min_samples=3, flush_l2=True))
    assert flushed.number == 1


def test_cpu_cache_flush_writes_a_buffer_larger_than_the_cache():
    from rnnbench.measure.timing import _cpu_cache_bytes

    flush = cache_flush("cpu")
    assert flush.buffer.nbytes == flush.nbytes >= 2 * _cpu_cache_bytes() >= 2 * 32 << 10
    flush()
    assert float(flush.buffer[-1]) == 1.0


@pytest.mark.cuda
@pytest.mark.parametrize("framework", ["torch", "jax", "tensorflow"])
def test_cuda_kernels_launch_then_sync_once_per_sample(framework):
    kernel = _kernel(framework, "cuda", mode="compiled" if framework == "jax" else "eager")
    assert kernel.launch is not None and kernel.sync is not None
    m = measure_kernel(kernel, TimingConfig(budget_s=0.2, warmup_budget_s=0.1))
    assert m.clock == ("cuda-event" if framework == "torch" else "host")
    assert m.launch_s is not None and 0 < m.launch_s
    # the synchronised call under the host clock measures the same work (plus one sync per call)
    host = measure(kernel.call, TimingConfig(budget_s=0.2, warmup_budget_s=0.1))
    assert 0.3 < m.median_s / host.median_s < 1.5
    # the L2 flush goes through the case's own framework; every sample is then one cold call
    cold = measure_kernel(kernel, TimingConfig(budget_s=0.2, warmup_budget_s=0.1, flush_l2=True))
    assert cold.number == 1 and cold.median_s > 0


@pytest.mark.cuda
def test_cuda_event_timer_and_l2_flush():
    import torch

    from rnnbench.measure.timing import CudaEventTimer

    a = torch.randn(2048, 2048, device="cuda")
    flush = cache_flush("cuda")
    timer = CudaEventTimer()
    m = measure_fixed(lambda: a @ a, 5, 10, sync=lambda _: torch.cuda.synchronize(), timer=timer, flush=flush)
    assert m.clock == "cuda-event" and len(m.samples_s) == 5
    # 2 * 2048^3 FLOP in well under 100 ms and above 1 µs on any CUDA GPU
    assert 1e-6 < m.median_s < 0.1


@pytest.mark.slow
@pytest.mark.parametrize(
    "framework, mode, formulation",
    [
        ("torch", "eager", "separate"),
        ("torch", "eager", "native"),
        ("tensorflow", "compiled", "separate"),
        ("tensorflow", "compiled", "native"),
        ("jax", "compiled", "separate"),
        ("jax", "compiled", "native"),
    ],
)
@pytest.mark.parametrize("pass_", ["forward", "train"])
def test_launch_then_sync_computes_what_call_does(framework, mode, formulation, pass_):
    import numpy as np

    kernel = _kernel(framework, "cpu", mode=mode, pass_=pass_, cell="lstm", formulation=formulation)
    assert kernel.launch is not None and kernel.sync is not None
    result = kernel.launch()
    kernel.sync(result)
    got, want = kernel.fetch(result), kernel.fetch(kernel.call())
    np.testing.assert_allclose(got.y, want.y, rtol=1e-6, atol=1e-6)
    if pass_ == "train":
        assert got.grads is not None and want.grads is not None
        for name, g in want.grads.items():
            np.testing.assert_allclose(got.grads[name], g, rtol=1e-5, atol=1e-6)
