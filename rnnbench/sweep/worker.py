"""The worker process: builds, verifies and times cases for one (framework, device) group.

The runner starts one worker per group in a fresh `spawn`ed process, so TF
and JAX never share a process (or a GPU context), thread settings apply
before any framework starts, and a crash, out-of-memory or hang takes down
only the worker: the runner records that case as failed and starts a new one.
Messages are plain dicts over a `multiprocessing` pipe, replies typed
`records.Record`s (pickled by the pipe):
`{"op": "prepare", "case": {...}}` builds, verifies and warms a case's kernel
and keeps it (the runner's warm-up pass; the reply is a record whose samples
are discarded); `{"op": "case", "case": {...}}` -> a result `Record` (timing
the kept kernel when there is one); `{"op": "peak", ...}` -> a peak record;
`{"op": "runtime", "framework": ...}` -> the CUDA runtime and cuDNN the
framework was built with (only the worker imports frameworks);
`{"op": "exit"}` ends the loop. Every case reply carries the load average and
CPU steal around it (`rnnbench.measure.load`).

A worker never outlives the run: it ignores SIGINT (a Ctrl-C in the terminal
reaches the whole process group; the runner decides and kills it), asks Linux
to SIGKILL it when its parent dies (`prctl(PR_SET_PDEATHSIG)`), and a watcher
thread polls the parent's pid as a fallback elsewhere. A CUDA error other
than out-of-memory (an illegal address or a device-side assert) leaves the
CUDA context unusable: the runner reads that from a failed record's error
(`is_poisoning`) and replaces the worker.

Self-test switch: `RNNBENCH_SELFTEST_SLOWDOWN=FORMULATION:FACTOR[,...]` (or
`all:FACTOR`) makes every timed call of those formulations take FACTOR times
as long (the worker busy-waits after the call for the extra time), and the
record says so in `selftest_slowdown`. It exists so the pipeline's own tests
(and a user checking their alerting) can plant a known regression; never set
it for real measurements.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from rnnbench.backends import Kernel
from rnnbench.case import Case
from rnnbench.measure.timing import Measurement, TimingConfig, measure_kernel
from rnnbench.sweep.records import Record, RecordError, Samples
from rnnbench.sweep.store import now_iso

__all__ = [
    "SELFTEST_SLOWDOWN",
    "SteppedCase",
    "die_with_parent",
    "is_poisoning",
    "make_record",
    "measure_case",
    "measure_peak",
    "open_case",
    "selftest_factor",
    "slowed",
    "timing_fields",
    "worker_main",
]

# CUDA errors after which the process's CUDA context is unusable (every later call fails);
# out-of-memory is not one of them: the allocator recovers and the next, smaller case runs.
_POISON = re.compile(
    r"illegal (memory )?address|device-side assert|unspecified launch failure|cudaErrorIllegal|"
    r"CUDA_ERROR_ILLEGAL|misaligned address|illegal instruction|CUBLAS_STATUS_EXECUTION_FAILED|"
    r"CUDA error: (an )?(illegal|unspecified|misaligned|invalid program counter)",
    re.IGNORECASE,
)


def is_poisoning(error: str) -> bool:
    """True for an error text that leaves the CUDA context unusable (not an out-of-memory)."""
    return bool(_POISON.search(error)) and "out of memory" not in error.lower()


SELFTEST_SLOWDOWN = "RNNBENCH_SELFTEST_SLOWDOWN"


def selftest_factor(formulation: str) -> float:
    """The slowdown `RNNBENCH_SELFTEST_SLOWDOWN` asks for on `formulation` (1.0: none; malformed entries ignored)."""
    factor = 1.0
    for item in os.environ.get(SELFTEST_SLOWDOWN, "").split(","):
        name, _, value = item.strip().partition(":")
        if name in (formulation, "all"):
            try:
                factor = max(1.0, float(value))
            except ValueError:
                continue
    return factor


def slowed(call: Callable[[], Any], factor: float) -> Callable[[], Any]:
    """`call`, made `factor` times slower by spinning after it (a sleep would free the core and time less reliably)."""
    if factor == 1.0:
        return call

    def slow() -> Any:
        start = time.perf_counter()
        result = call()
        until = start + (time.perf_counter() - start) * factor
        while time.perf_counter() < until:
            pass
        return result

    return slow


def _slowed_kernel(kernel: Kernel, factor: float) -> Kernel:
    """`kernel` with its call slowed; a slowed kernel is timed synchronously, so the factor applies to device work."""
    if factor == 1.0:
        return kernel
    return replace(kernel, call=slowed(kernel.call, factor), launch=None, sync=None)


def make_record(
    case: Case,
    status: str,
    *,
    threads: int,
    m: Measurement | None = None,
    max_abs_error: float | None = None,
    max_rel_error: float | None = None,
    peak_gflops: float | None = None,
    error: str | None = None,
) -> Record:
    """One result record; timing fields None unless measured.

    The statistics are `records.Samples`', computed from `m`'s samples.
    """
    samples = None
    if m is not None:
        try:
            samples = Samples.of(m.samples_s)
        except RecordError as exc:  # a zero or non-finite sample: never store it as a measurement
            status, error = "failed", f"the timing engine returned unusable samples ({exc})"
    record = Record.measured(
        case, status, threads=threads, samples=samples, number=m.number if m else None,
        compile_s=m.compile_s if m else None, timed_s=m.timed_s if m else None,
        noise_threshold=m.noise_threshold if m else None, max_abs_error=max_abs_error,
        max_rel_error=max_rel_error, peak_gflops=peak_gflops, error=error, timestamp=now_iso(),
    )  # fmt: skip
    return record


def timing_fields(m: Measurement) -> dict[str, Any]:
    """Optional record fields from the engine: the clock, host launch time per call, stalled samples."""
    return {"clock": m.clock, "launch_s": m.launch_s, "stalls": m.stalls}


def measure_peak(framework: str, device: str, dtype: str, config: TimingConfig) -> dict[str, Any]:
    """The roofline's ceilings for (framework, device, dtype): best GEMM over a size ladder, STREAM bandwidth.

    A failing bandwidth probe does not lose the GEMM peak: its error is kept as `bandwidth_error`.
    """
    from rnnbench import backends
    from rnnbench.measure.roofline import gemm_peak, stream_bandwidth

    backend = backends.get(framework)
    # the peak is a strict-fp32 ceiling, set explicitly and recorded: TF32 cases get no peak_fraction against it
    peak = gemm_peak(lambda n: backend.gemm(device, dtype, n, fp32="strict"), device, config)
    try:
        peak |= stream_bandwidth(framework, device, dtype, config)
    except Exception as exc:
        peak["bandwidth_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return {"framework": framework, "device": device, "dtype": dtype, "fp32": "strict", **peak}


# Kernels kept for later rounds of the same case; bounded so a long GPU sweep
# cannot hold every model in memory (an evicted kernel is rebuilt and re-verified).
CACHE_SIZE = 256


def measure_case(
    case: Case,
    config: TimingConfig,
    threads: int,
    peak_gflops: float | None,
    cache: dict[str, Any] | None = None,
    references: Any = None,
) -> Record:
    """Verify `case` against the reference, then time it; never raises for a case-level problem.

    With a `cache` holding this case's kernel (a later round), the kernel is
    timed again without rebuilding; `compile_s` is then None (it belongs to
    the round that built it). `references`: a `verify.ReferenceCache` shared
    by the cases of this worker.
    """
    slowdown = selftest_factor(case.formulation)
    record = _measure_case(case, config, threads, peak_gflops, cache, slowdown, references)
    return record.annotated({"selftest_slowdown": slowdown}) if slowdown != 1.0 else record


def _measure_case(
    case: Case, config: TimingConfig, threads: int, peak_gflops: float | None, cache: dict[str, Any] | None,
    slowdown: float, references: Any,
) -> Record:  # fmt: skip
    got = _kernel(case, threads, cache, references)
    if isinstance(got, Record):
        return got  # skipped, inaccurate or failed before timing
    kernel, check, first_call_s = got
    try:
        cfg = config if first_call_s is not None else config.rewarmed()
        m = measure_kernel(_slowed_kernel(kernel, slowdown), cfg, first_call_s=first_call_s)
    except Exception as exc:  # a framework error fails this case only
        return _failed(case, threads, _error_text(exc))
    if cache is not None and first_call_s is not None:
        while len(cache) >= CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[case.key] = (kernel, check)
    return _timed_record(case, threads, m, check, kernel, peak_gflops, first_call_s is not None)


def _kernel(
    case: Case, threads: int, cache: dict[str, Any] | None, references: Any
) -> tuple[Kernel, Any, float | None] | Record:
    """`case`'s kernel, its verification and its clocked first call (None: taken from `cache`, already
    warm); or the record of a case that cannot be timed (skipped, inaccurate, failed)."""
    from rnnbench import backends
    from rnnbench.errors import Unsupported
    from rnnbench.measure.verify import ReferenceCache, compare

    if cache is not None and case.key in cache:
        kernel, check = cache[case.key]
        return kernel, check, None
    try:
        backend = backends.get(case.framework)
        ref, (weights, x, state0) = (references or ReferenceCache()).get(case)
        kernel = backend.build(case, weights, x, state0)
        # the first call compiles (torch.compile, tf.function, jit): clock it, and verify its output
        t0 = time.perf_counter()
        result = kernel.call()
        first_call_s = time.perf_counter() - t0
        check = compare(case, kernel.fetch(result), ref)
        del result
    except Unsupported as exc:
        return make_record(case, "skipped", threads=threads, error=str(exc))
    except Exception as exc:  # a framework error fails this case only
        return _failed(case, threads, _error_text(exc))
    if not check.ok:  # it ran, but beyond its tolerance: numerically inaccurate, not a crash
        return make_record(
            case, "inaccurate", threads=threads, max_abs_error=check.max_abs_error,
            max_rel_error=check.max_rel_error,
            error=f"does not match the reference: {check.worst} rel error {check.max_rel_error:.3g} > {check.tolerance}",
        )  # fmt: skip
    return kernel, check, first_call_s


def _error_text(exc: BaseException) -> str:
    """`exc` in one line, with the file and line it came from."""
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}"[:500] + where


def _timed_record(
    case: Case, threads: int, m: Measurement, check: Any, kernel: Kernel, peak_gflops: float | None, built: bool
) -> Record:
    record = make_record(
        case, "ok", threads=threads, m=m, max_abs_error=check.max_abs_error,
        max_rel_error=check.max_rel_error, peak_gflops=peak_gflops,
    )  # fmt: skip
    if not built:
        record = replace(record, compile_s=None)  # it belongs to the round that built the kernel
    # which implementation a native layer ran (cudnn or the generic one)
    return record.annotated({"impl": kernel.impl} | timing_fields(m))


class SteppedCase:
    """One case held open for sample-by-sample timing: `rnnbench ab` alternates the samples of two
    processes (BASE and NEW) so both see the same moment of the machine.

    `open_case` builds, verifies, compiles and warms the kernel (or re-warms a
    cached one) and fixes its calls per sample; `sample(number)` takes one;
    `record()` is the case's record over the samples taken, as `measure_case`
    would have written it.
    """

    def __init__(
        self, case: Case, threads: int, kernel: Kernel, check: Any, stepped: Any, slowdown: float, built: bool
    ) -> None:
        self.case, self.threads, self.kernel, self.check = case, threads, kernel, check
        self.stepped, self.slowdown, self.built = stepped, slowdown, built
        stepped.fresh()  # only samples the caller asked for (and so could pair) are kept

    @property
    def number(self) -> int:
        return int(self.stepped.number)

    def sample(self, number: int | None = None, keep: bool = True) -> float:
        return float(self.stepped.sample(number, keep))

    def record(self) -> Record:
        record = _timed_record(
            self.case, self.threads, self.stepped.measurement(), self.check, self.kernel, None, self.built
        )
        return record.annotated({"selftest_slowdown": self.slowdown}) if self.slowdown != 1.0 else record


def open_case(
    case: Case, config: TimingConfig, threads: int, cache: dict[str, Any], references: Any = None
) -> SteppedCase | Record:
    """`case` prepared for `SteppedCase.sample`; or the record of a case that cannot be timed.

    The kernel is kept in `cache` for later rounds, which re-warm it with one
    window (`TimingConfig.rewarmed`), as the runner's rounds do.
    """
    from rnnbench.measure.timing import stepped_kernel

    slowdown = selftest_factor(case.formulation)
    got = _kernel(case, threads, cache, references)
    if isinstance(got, Record):
        return got
    kernel, check, first_call_s = got
    try:
        cfg = config if first_call_s is not None else config.rewarmed()
        stepped = stepped_kernel(_slowed_kernel(kernel, slowdown), cfg, first_call_s=first_call_s)
    except Exception as exc:
        return _failed(case, threads, _error_text(exc))
    if first_call_s is not None:
        while len(cache) >= CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[case.key] = (kernel, check)
    return SteppedCase(case, threads, kernel, check, stepped, slowdown, first_call_s is not None)


# The warm-up pass times each case briefly: enough to compile, warm and verify, not a sample set.
PREPARE_TIMING = TimingConfig(budget_s=0.0, min_samples=1, max_samples=1)


def _failed(case: Case, threads: int, error: str) -> Record:
    """A case failed by a framework error (`is_poisoning(error)` tells the runner to replace the worker)."""
    return make_record(case, "failed", threads=threads, error=error)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """End this process when `parent_pid` goes away: a kernel parent-death signal on Linux,
    and on every platform a daemon thread that polls the parent's pid (the fallback, and the
    cover for a parent that died before the prctl call)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the polling thread still covers it

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)  # the parent is gone: nobody will read what this worker measures
            time.sleep(poll_s)

    if os.getppid() != parent_pid:
        os._exit(0)
    threading.Thread(target=watch, name="rnnbench-parent-watch", daemon=True).start()


def worker_main(conn: Any, threads: int, config: TimingConfig, parent_pid: int | None = None) -> None:
    """Loop of the worker process (entry point of `multiprocessing` spawn)."""
    from rnnbench.measure import load
    from rnnbench.measure.threads import apply_threads
    from rnnbench.measure.verify import ReferenceCache

    # the runner shuts its workers down; a terminal's Ctrl-C must not print their tracebacks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_pid is not None:
        die_with_parent(parent_pid)
    apply_threads(threads)
    cache: dict[str, Any] = {}
    references = ReferenceCache()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the runner closed the pipe or died
        op = msg.get("op")
        if op == "exit":
            return
        if op in ("case", "prepare"):
            case = Case.from_dict(msg["case"])
            cfg = config
            if op == "prepare":  # always a fresh build: its first call is the compile time the record keeps
                cfg = replace(PREPARE_TIMING, warmup_budget_s=config.warmup_budget_s, flush_l2=config.flush_l2)
                cache.pop(case.key, None)
            before = load.sample()
            record = measure_case(case, cfg, threads, msg.get("peak_gflops"), cache, references)
            reply: Any = record.annotated(load.load_fields(before, load.sample()))
        elif op == "peak":
            try:
                reply = measure_peak(msg["framework"], msg["device"], msg["dtype"], msg["config"])
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                reply["poisoned"] = is_poisoning(reply["error"])
        elif op == "runtime":
            from rnnbench.measure.machine import framework_runtime

            reply = framework_runtime(msg["framework"])
        else:
            reply = {"error": f"unknown op {op!r}"}
        try:
            conn.send(reply)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return  # the runner is gone: nothing to report to, and no traceback to print
