"""The one timing engine: one sampling loop, three modes (adaptive, fixed-count, interleaved), host or device clocks.

Every timing in rnnbench goes through `_Sampler`, which takes one *sample*:
`number` back-to-back calls between two clock marks, then one device
synchronisation. The runner and worker (`measure`, `measure_kernel`), the
doctor (`calibrate`, `measure_fixed`), the harness and the asv suite
(`measure_interleaved`) differ only in how many samples they take and of what.

Clocks (`SampleTimer`). On CPU the host clock (`time.perf_counter`) brackets
synchronous calls, as always. On CUDA, as triton's `do_bench`, nvbench and
torch.utils.benchmark do it, the kernel's unsynchronised form
(`Kernel.launch`) is called `number` times between two CUDA events and the
device is synchronised once per sample, not per call; the host time spent
issuing those calls is kept apart as `launch_s`. Frameworks without an event
API of their own (JAX, TensorFlow) use the host clock around the same
launch-then-one-sync sample. The statistics never know which clock ran: the
same code turns elapsed seconds into a `Measurement` (tested with a fake event
clock on CPU).

Adaptive procedure (`measure`), after torch.utils.benchmark's
`blocked_autorange` and pyperf:

1. The first call is timed on its own; compilation/tracing (torch.compile,
   tf.function, jax.jit) happens there. `compile_s` is that call minus one
   steady-state call, and it never enters the samples.
2. Warm-up: windows of calls continue until `stable_windows` consecutive
   windows agree within `stable_within` of each other (or the warm-up budget
   is spent).
3. Blocking: `number` (calls per sample) grows until one sample lasts at least
   1000x the timer's own overhead (overhead < 0.1% of a sample) and at least
   `min_sample_s`. With `flush_l2`, every sample is one call after a cache
   flush (the cold-cache time), so there is no blocking.
4. Sampling: samples are taken until IQR/median < `noise_threshold` (with at
   least `min_samples`) or the time budget runs out. Every sample is kept;
   a result whose IQR/median stays above the threshold is flagged `noisy`.

Stalls (`stall_count`): a sample above Q3 + `STALL_IQRS` x IQR *and* above
`STALL_RATIO` x the median is a stall: a descheduled thread or another
process, not the kernel's own spread. For any unimodal spread of real timings
the fence is never reached by chance (14 standard deviations for a normal
distribution), and the ratio keeps a tight IQR on a quiet machine from
calling a 5% blip a stall; an OpenMP barrier waiting on a descheduled peer
(0.5 ms calls turning into 500 ms) crosses both.

A few stalls are the machine's background (timer interrupts, the hypervisor):
on the idle 2-core VM about 1 sample in 250 of an `ab` run crossed the fence,
at every position of a turn alike, so "any stall" flagged every case with a
few hundred samples (23 of 96 in a torch A/A). `busy` flags a case only when
its stalls are more than that background explains (more than
`STALL_BASE_RATE` of its samples would give, at binomial tail probability
`STALL_ALPHA`), or when one stall is `STALL_SEVERE` times the median: the
stalls of another process are longer than the background's (docs/tuning.md
has the figures).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rnnbench.backends import Kernel

__all__ = [
    "STALL_ALPHA",
    "STALL_BASE_RATE",
    "STALL_IQRS",
    "STALL_RATIO",
    "STALL_SEVERE",
    "CacheFlush",
    "CudaEventTimer",
    "HostTimer",
    "Measurement",
    "SampleTimer",
    "Stepped",
    "TimingConfig",
    "busy",
    "cache_flush",
    "calibrate",
    "iqr",
    "is_noisy",
    "measure",
    "measure_fixed",
    "measure_interleaved",
    "measure_kernel",
    "quartiles",
    "stall_count",
    "stepped_kernel",
    "timer_overhead",
]

Clock = Callable[[], float]

STALL_IQRS = 10.0
STALL_RATIO = 1.5
# a quiet machine's share of stalled samples, rounded up from what an idle machine shows, so that a case
# is called busy only when its stalls are more than a quiet machine's background
STALL_BASE_RATE = 0.01
STALL_ALPHA = 1e-3  # how improbable the stall count must be on a quiet machine to call the machine busy
# One stall this long flags on its own: on an idle machine a case's worst sample stays within a few
# medians, while a competing busy loop makes it ten or more; 5x separates the two and flags almost no
# records taken on a quiet machine (the figures: docs/measurements/2026-12-07-ci-cpu-2core-ab-rounds.md)
STALL_SEVERE = 5.0


@dataclass(frozen=True)
class TimingConfig:
    budget_s: float = 1.0  # sampling time per case, after warm-up
    warmup_budget_s: float = 0.5
    min_sample_s: float = 1e-3
    min_samples: int = 15  # enough for a bootstrap interval narrow enough to call 5% changes
    max_samples: int = 200
    noise_threshold: float = 0.05  # IQR / median
    stable_within: float = 0.05  # warm-up: consecutive windows within 5% ...
    stable_windows: int = 2  # ... twice in a row (one agreement can be luck while caches still fill)
    flush_l2: bool = False  # write a buffer larger than the cache before every sample (one call per sample)

    def rewarmed(self) -> TimingConfig:
        """The config for a kernel this process has already compiled and warmed until stable (a later
        round): one window of calls brings its working set back into cache, and the stability rule is
        not run again. Every timed round of a prepared kernel gets the same, so no round is favoured,
        and a slow (100 ms) kernel no longer spends half its round budget re-proving stability."""
        return replace(self, stable_windows=0)


def quartiles(samples: Sequence[float]) -> tuple[float, float, float]:
    """(Q1, median, Q3) of `samples`: the inclusive (linear-interpolation) quartiles, numpy's default
    `percentile`; with one sample all three are that sample. Every IQR rnnbench reports is Q3 - Q1 of these."""
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q2, q3


def iqr(samples: Sequence[float]) -> float:
    """The interquartile range of `samples` (0 for a single sample)."""
    q1, _, q3 = quartiles(samples)
    return q3 - q1


def is_noisy(samples: Sequence[float], threshold: float) -> bool:
    """The timing engine's stopping rule failed: IQR / median of `samples` above `threshold` (a median
    that is not positive counts as noisy). The one definition `Measurement`, stored records and `ab` use."""
    median = statistics.median(samples)
    return iqr(samples) / median > threshold if median > 0 else True


def stall_count(samples: Sequence[float]) -> int:
    """Samples above both Q3 + STALL_IQRS * IQR and STALL_RATIO * median (see the module docstring)."""
    if len(samples) < 4:
        return 0
    q1, q2, q3 = quartiles(samples)
    fence = max(q3 + STALL_IQRS * (q3 - q1), STALL_RATIO * q2)
    return sum(s > fence for s in samples)


def busy(samples: Sequence[float]) -> bool:
    """Whether `samples` were taken on a busy machine: more stalls than a quiet machine gives (the
    binomial chance of at least that many at STALL_BASE_RATE is below STALL_ALPHA: one stall in 400
    samples is background, 4 in 20 or 12 in 400 is another process), or one stall of at least
    STALL_SEVERE x the median (a thread waiting on a descheduled peer)."""
    stalls, n = stall_count(samples), len(samples)
    if stalls == 0:
        return False
    if max(samples) >= STALL_SEVERE * statistics.median(samples):
        return True
    lp, lq = math.log(STALL_BASE_RATE), math.log1p(-STALL_BASE_RATE)
    # in logs: p**k * q**(n - k) underflows for long runs
    below = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq)
        for k in range(stalls)
    )
    return 1.0 - below < STALL_ALPHA


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
    clock: str = "host"  # which SampleTimer took the samples: host, cuda-event
    launch_s: float | None = None  # median host seconds per call spent issuing it (device kernels only)

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.samples_s)

    @property
    def iqr_s(self) -> float:
        return iqr(self.samples_s)

    @property
    def noisy(self) -> bool:
        return is_noisy(self.samples_s, self.noise_threshold)

    @property
    def stalls(self) -> int:
        return stall_count(self.samples_s)


# -- clocks -----------------------------------------------------------------------------------------


class SampleTimer(Protocol):
    """Brackets one sample: `start()` before the first call, `stop()` after the last call is issued
    (before the device is synchronised), `elapsed()` after synchronisation: seconds between the marks."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def elapsed(self) -> float: ...


class HostTimer:
    """The host clock: the sample ends when the synchronisation has returned."""

    name = "host"

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self.clock, self.t0 = clock, 0.0

    def start(self) -> None:
        self.t0 = self.clock()

    def stop(self) -> None:
        pass

    def elapsed(self) -> float:
        return self.clock() - self.t0


class CudaEventTimer:
    """Two CUDA events on torch's current stream: device time between the first and the last call of a sample."""

    name = "cuda-event"

    def __init__(self) -> None:
        import torch

        self.begin = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        self.begin.record()

    def stop(self) -> None:
        self.end.record()

    def elapsed(self) -> float:
        self.end.synchronize()
        return float(self.begin.elapsed_time(self.end)) / 1e3  # ms -> s


# Where the framework cannot tell the L2 size: more than twice the largest L2 of current GPUs (B200: 126 MB).
_GPU_FLUSH_BYTES = 256 << 20


class CacheFlush:
    """Writes a buffer at least twice the device's last-level cache (L2 on a GPU) and waits for the write.

    On CUDA the write goes through the case's own framework (torch, JAX or
    TensorFlow), so no second framework starts in a worker; it is
    synchronised, so the flush never overlaps the sample that follows.
    """

    def __init__(self, device: str, framework: str = "torch") -> None:
        self.device, self.framework = device, framework
        self.buffer: Any = None
        self._write: Callable[[], None]
        if device != "cuda":
            import numpy as np

            self.nbytes = 2 * _cpu_cache_bytes()
            self.buffer = np.empty(self.nbytes // 8, dtype=np.float64)
            self._write = lambda: self.buffer.fill(1.0)
        elif framework == "torch":
            import torch

            l2 = int(getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 0))
            self.nbytes = max(2 * l2, 64 << 20)
            self.buffer = torch.empty(self.nbytes // 4, dtype=torch.int32, device="cuda")

            def write_torch() -> None:
                self.buffer.zero_()
                torch.cuda.synchronize()

            self._write = write_torch
        elif framework == "jax":
            import jax

            self.nbytes = _GPU_FLUSH_BYTES
            fill = jax.jit(lambda: jax.numpy.zeros(_GPU_FLUSH_BYTES // 4, dtype=jax.numpy.int32))

            def write_jax() -> None:
                fill().block_until_ready()

            self._write = write_jax
        else:
            import tensorflow as tf

            self.nbytes = _GPU_FLUSH_BYTES
            sync = getattr(tf.test.experimental, "sync_devices", None)

            def write() -> None:
                with tf.device("/GPU:0"):
                    tf.zeros([_GPU_FLUSH_BYTES // 4], dtype=tf.int32)
                if sync is not None:
                    sync()

            self._write = write

    def __call__(self) -> None:
        self._write()


def cache_flush(device: str, framework: str = "torch") -> CacheFlush:
    """The cache flush for `device` ('cuda' or a CPU), written through `framework` on CUDA."""
    return CacheFlush(device, framework)


def _cpu_cache_bytes() -> int:
    """Largest cache of cpu0 from sysfs (64 MiB when unreadable)."""
    from pathlib import Path

    best = 0
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = f.read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            best = max(best, int(digits) * scale)
    return best or 64 << 20


def timer_overhead(clock: Clock = time.perf_counter, repeats: int = 2000) -> float:
    """Median cost of one clock read, in seconds."""
    deltas = []
    for _ in range(repeats):
        t0 = clock()
        t1 = clock()
        deltas.append(t1 - t0)
    return max(statistics.median(deltas), 1e-9)


# -- the one sampling loop --------------------------------------------------------------------------


class _Sampler:
    """Takes samples of one call: `number` calls between the timer's marks, then one sync.

    Keeps the wall time spent inside samples (`total`) and, with a separate
    sync, the host time spent issuing calls per sample (`launched`).
    """

    def __init__(
        self,
        call: Callable[[], Any],
        *,
        sync: Callable[[Any], Any] | None = None,
        timer: SampleTimer | None = None,
        clock: Clock = time.perf_counter,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.call, self.sync, self.clock, self.flush = call, sync, clock, flush
        self.timer: SampleTimer = timer or HostTimer(clock)
        self.total = 0.0
        self.launched: list[float] = []  # host seconds per call spent issuing, one per sample

    def __call__(self, number: int) -> float:
        """Seconds for `number` calls."""
        if self.flush is not None:
            self.flush()
        call, timer = self.call, self.timer
        h0 = self.clock()
        timer.start()
        result = None
        for _ in range(number):
            result = call()
        timer.stop()
        if self.sync is not None:  # the host clock is read between issuing and syncing only when they differ
            self.launched.append((self.clock() - h0) / number)
            self.sync(result)
        elapsed = timer.elapsed()
        self.total += self.clock() - h0
        return elapsed

    def launch_s(self, last: int) -> float | None:
        """Median issue time per call over the last `last` samples, when calls are issued apart from the sync."""
        if self.sync is None or last < 1 or not self.launched:
            return None
        return statistics.median(self.launched[-last:])

    def measurement(
        self, samples: list[float], number: int, compile_s: float, warmup_calls: int, cfg: TimingConfig, overhead: float
    ) -> Measurement:
        return Measurement(
            tuple(samples), number, compile_s, warmup_calls, cfg.noise_threshold, overhead, self.total,
            self.timer.name, self.launch_s(len(samples)),
        )  # fmt: skip


def _warm_up(block: _Sampler, steady: float, cfg: TimingConfig, clock: Clock) -> int:
    """Windows of calls until `stable_windows` consecutive pairs agree; returns the calls made."""
    window = max(1, min(50, int(0.02 / max(steady, 1e-9))))
    if cfg.stable_windows == 0 and window == 1:
        return 0  # re-warming a slow kernel: the steady-state call (20 ms or more) just made was the window
    deadline = clock() + cfg.warmup_budget_s
    previous = block(window) / window
    calls, agreed = window, 0
    while clock() < deadline and agreed < cfg.stable_windows:
        current = block(window) / window
        calls += window
        agreed = agreed + 1 if abs(current - previous) <= cfg.stable_within * min(current, previous) else 0
        previous = current
    return calls


def _block_size(block: _Sampler, cfg: TimingConfig, *, overhead: float) -> tuple[int, float]:
    """Calls per sample so that one sample lasts min_sample_s and 1000x the timer overhead; and that sample."""
    if cfg.flush_l2:  # every call is a cold-cache call
        return 1, block(1)
    number = 1
    min_block = max(cfg.min_sample_s, 1000 * overhead)
    while True:
        elapsed = block(number)
        if elapsed >= min_block:
            return number, elapsed
        number = max(number + 1, int(number * min(10.0, 1.2 * min_block / max(elapsed, 1e-9))))


def measure(
    call: Callable[[], Any],
    config: TimingConfig | None = None,
    clock: Clock = time.perf_counter,
    first_call_s: float | None = None,
    *,
    sync: Callable[[Any], Any] | None = None,
    timer: SampleTimer | None = None,
    flush: Callable[[], None] | None = None,
) -> Measurement:
    """Time `call` adaptively; see the module docstring for the procedure.

    `first_call_s`: the caller already made (and clocked) the first call, e.g.
    to verify its output; it then counts as the compiling call. With `sync`,
    `call` is an unsynchronised launch and `sync(result)` waits for the device
    once per sample; `timer` replaces the host clock for the samples (e.g.
    `CudaEventTimer`); `clock` is the host clock for budgets and deadlines.
    """
    cfg = config or TimingConfig()
    stepped = Stepped(call, cfg, clock, first_call_s, sync=sync, timer=timer, flush=flush)
    samples = stepped.samples  # the blocking pass's last sample is the first one kept
    deadline = clock() + cfg.budget_s
    while len(samples) < cfg.max_samples:
        stepped.sample()
        out_of_time = clock() >= deadline
        if out_of_time and len(samples) >= 3:  # a very slow kernel still ends near its budget
            break
        if len(samples) >= cfg.min_samples and (not stepped.measurement().noisy or out_of_time):
            break
    return stepped.measurement()


class Stepped:
    """The adaptive procedure's steps 1-3 (first call, warm-up, blocking) done at construction; the
    samples are then taken one `sample()` at a time by the caller.

    `measure` drives it with its own stopping rule; `rnnbench ab` drives two of
    them, one in each side's process, alternating in turns of a few samples so that
    BASE and NEW see the same moment of the machine. `samples` holds the
    blocking pass's last sample (a steady-state sample like any other) and
    then every sample taken; `fresh()` forgets them (a caller pairing samples
    keeps only those it took).
    """

    def __init__(
        self, call: Callable[[], Any], config: TimingConfig | None = None, clock: Clock = time.perf_counter,
        first_call_s: float | None = None, *, sync: Callable[[Any], Any] | None = None,
        timer: SampleTimer | None = None, flush: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        """`measure`'s arguments; the first call, the warm-up and the blocking happen here."""
        self.cfg = cfg = config or TimingConfig()
        self.overhead = timer_overhead(clock)
        self.block = block = _Sampler(call, sync=sync, timer=timer, clock=clock, flush=flush)
        if first_call_s is None:
            first = block(1)
        else:
            first = first_call_s
            block.total += first_call_s
        steady = block(1)
        self.compile_s = max(0.0, first - steady)
        self.warmup_calls = 2 + _warm_up(block, steady, cfg, clock)
        self.number, elapsed = _block_size(block, cfg, overhead=self.overhead)
        self.samples: list[float] = [elapsed / self.number]

    def fresh(self) -> None:
        """Forget the samples taken so far (the blocking pass's included)."""
        self.samples.clear()

    def sample(self, number: int | None = None, keep: bool = True) -> float:
        """Take one sample of `number` calls (default: the blocking pass's); its per-call seconds.
        `keep=False`: a re-warming sample, not kept in `samples`."""
        if number is not None and self.cfg.flush_l2:
            number = 1  # a cold-cache sample is one call after a flush
        n = max(1, number or self.number)
        self.number = n
        per_call = self.block(n) / n
        if keep:
            self.samples.append(per_call)
        return per_call

    def measurement(self) -> Measurement:
        return self.block.measurement(
            self.samples, self.number, self.compile_s, self.warmup_calls, self.cfg, self.overhead
        )


def measure_kernel(
    kernel: Kernel, config: TimingConfig | None = None, first_call_s: float | None = None
) -> Measurement:
    """`measure` with the clock the kernel's device calls for.

    CPU: `kernel.call` (synchronous) under the host clock, as always. CUDA:
    `kernel.launch` with one `kernel.sync` per sample, under CUDA events for
    torch (whose current stream the events are recorded on) and the host
    clock for frameworks without an event API; `launch_s` is the host time
    per call spent issuing work.
    """
    cfg = config or TimingConfig()
    return measure(**_kernel_clock(kernel, cfg), config=cfg, first_call_s=first_call_s)


def stepped_kernel(kernel: Kernel, config: TimingConfig | None = None, first_call_s: float | None = None) -> Stepped:
    """`Stepped` with the clock the kernel's device calls for (as `measure_kernel`)."""
    cfg = config or TimingConfig()
    return Stepped(**_kernel_clock(kernel, cfg), config=cfg, first_call_s=first_call_s)


def _kernel_clock(kernel: Kernel, cfg: TimingConfig) -> dict[str, Any]:
    """What to call and how to clock it: `measure`'s call, sync, timer and flush for `kernel`."""
    device = kernel.case.device
    flush = cache_flush(device, kernel.case.framework) if cfg.flush_l2 else None
    if device == "cpu" or kernel.launch is None or kernel.sync is None:
        return {"call": kernel.call, "flush": flush}
    timer: SampleTimer | None = CudaEventTimer() if kernel.case.framework == "torch" else None
    return {"call": kernel.launch, "sync": kernel.sync, "timer": timer, "flush": flush}


# -- fixed-count and interleaved modes (doctor, asv, A/B in one process) -----------------------------


def calibrate(
    call: Callable[[], Any],
    sample_s: float,
    *,
    clock: Clock = time.perf_counter,
    sync: Callable[[Any], Any] | None = None,
) -> int:
    """Calls per sample so that one sample lasts about `sample_s` (after one warm-up call)."""
    block = _Sampler(call, sync=sync, clock=clock)
    block(1)  # first-touch allocations and BLAS thread start-up are not the steady state
    once = max(block(1), 1e-7)
    return max(1, round(sample_s / once))


def measure_fixed(
    call: Callable[[], Any],
    samples: int,
    number: int,
    *,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
    sync: Callable[[Any], Any] | None = None,
    timer: SampleTimer | None = None,
    flush: Callable[[], None] | None = None,
    noise_threshold: float = 0.05,
) -> Measurement:
    """Exactly `samples` samples of `number` calls each, after `warmup` unclocked calls: equal-size sets for A/A."""
    return measure_interleaved(
        [call], samples, [number], warmup=warmup, clock=clock, syncs=[sync], timers=[timer], flush=flush,
        noise_threshold=noise_threshold,
    )[0]  # fmt: skip


def measure_interleaved(
    calls: Sequence[Callable[[], Any]],
    samples: int,
    numbers: Sequence[int] | None = None,
    *,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
    syncs: Sequence[Callable[[Any], Any] | None] | None = None,
    timers: Sequence[SampleTimer | None] | None = None,
    flush: Callable[[], None] | None = None,
    noise_threshold: float = 0.05,
) -> list[Measurement]:
    """`samples` samples of every call, alternating call by call, so drift hits them all alike.

    `numbers[k]`: calls per sample of `calls[k]` (default 1). Every call is
    made `warmup` times first (in the same alternation, unclocked). For A/B
    within one process: their ratio is immune to a level shift that lasts
    longer than one pass over the calls.
    """
    k = len(calls)
    numbers = list(numbers) if numbers is not None else [1] * k
    syncs = list(syncs) if syncs is not None else [None] * k
    timers = list(timers) if timers is not None else [None] * k
    blocks = [_Sampler(c, sync=s, timer=t, clock=clock, flush=flush) for c, s, t in zip(calls, syncs, timers)]
    for _ in range(warmup):
        for b in blocks:
            b(1)
    for b in blocks:
        b.total, b.launched = 0.0, []
    taken: list[list[float]] = [[] for _ in calls]
    for _ in range(samples):
        for b, n, out in zip(blocks, numbers, taken):
            out.append(b(n) / n)
    cfg = TimingConfig(noise_threshold=noise_threshold)
    return [b.measurement(s, n, 0.0, warmup, cfg, 0.0) for b, s, n in zip(blocks, taken, numbers)]
