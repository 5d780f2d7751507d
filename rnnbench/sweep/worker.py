"""The worker process: builds, verifies and times cases for one (framework, device) group.

The runner starts one worker per group in a fresh `spawn`ed process, so TF
and JAX never share a process (or a GPU context), thread settings apply
before any framework starts, and a crash, out-of-memory or hang takes down
only the worker: the runner records that case as failed and starts a new one.
Messages are plain dicts over a `multiprocessing` pipe:
`{"op": "case", "case": {...}}` -> a result record; `{"op": "peak", ...}` ->
a peak record; `{"op": "exit"}` ends the loop.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from rnnbench.case import Case
from rnnbench.measure.timing import Measurement, TimingConfig, measure
from rnnbench.sweep.store import now_iso

__all__ = ["make_record", "measure_case", "measure_peak", "worker_main"]

# Peak probe sizes: the GEMM grows until the rate stops improving by 5%.
PEAK_SIZES = {"cpu": (512, 1024, 2048), "cuda": (2048, 4096, 8192, 16384)}


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
) -> dict[str, Any]:
    """One result record with every field of `store.RECORD_FIELDS` (timing fields None unless ok)."""
    d = case.to_dict()
    gflops = case.flops / m.median_s / 1e9 if m is not None and m.median_s > 0 else None
    d |= {
        "key": case.key,
        "variant": case.spec.label,
        "status": status,
        "error": error,
        "median_s": m.median_s if m else None,
        "iqr_s": m.iqr_s if m else None,
        "mean_s": m.mean_s if m else None,
        "samples_s": list(m.samples_s) if m else [],
        "number": m.number if m else None,
        "compile_s": m.compile_s if m else None,
        "timed_s": m.timed_s if m else None,
        "flops": case.flops,
        "gflops": gflops,
        "peak_gflops": peak_gflops,
        "peak_fraction": gflops / peak_gflops if gflops and peak_gflops else None,
        "max_abs_error": max_abs_error,
        "max_rel_error": max_rel_error,
        "noisy": m.noisy if m else None,
        "noise_threshold": m.noise_threshold if m else None,
        "threads": threads,
        "timestamp": now_iso(),
    }
    return d


def measure_peak(framework: str, device: str, dtype: str, config: TimingConfig) -> dict[str, Any]:
    """Peak GEMM rate of (framework, device, dtype), calibrated over growing sizes."""
    from rnnbench import backends

    backend = backends.get(framework)
    best: dict[str, Any] = {}
    for n in PEAK_SIZES[device]:
        m = measure(backend.gemm(device, dtype, n), config)
        gflops = 2 * n**3 / m.median_s / 1e9
        if best and gflops < 1.05 * best["gflops"]:
            if gflops > best["gflops"]:
                best = {"n": n, "median_s": m.median_s, "gflops": gflops}
            break
        best = {"n": n, "median_s": m.median_s, "gflops": gflops}
    return {"framework": framework, "device": device, "dtype": dtype, **best}


# Kernels kept for later rounds of the same case; bounded so a long GPU sweep
# cannot hold every model in memory (an evicted kernel is rebuilt and re-verified).
CACHE_SIZE = 256


def measure_case(
    case: Case,
    config: TimingConfig,
    threads: int,
    peak_gflops: float | None,
    cache: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Verify `case` against the reference, then time it; never raises for a case-level problem.

    With a `cache` holding this case's kernel (a later round), the kernel is
    timed again without rebuilding; `compile_s` is then None (it belongs to
    the round that built it).
    """
    from rnnbench import backends
    from rnnbench.errors import Unsupported
    from rnnbench.measure.verify import compare, make_inputs, reference

    if cache is not None and case.key in cache:
        kernel, check = cache[case.key]
        try:
            m = measure(kernel.call, config)
        except Exception as exc:
            return make_record(case, "failed", threads=threads, error=f"{type(exc).__name__}: {exc}"[:500])
        record = make_record(
            case, "ok", threads=threads, m=m, max_abs_error=check.max_abs_error,
            max_rel_error=check.max_rel_error, peak_gflops=peak_gflops,
        )  # fmt: skip
        record["compile_s"] = None
        record["impl"] = kernel.impl
        return record
    try:
        backend = backends.get(case.framework)
        weights, x, state0 = make_inputs(case)
        kernel = backend.build(case, weights, x, state0)
        # the first call compiles (torch.compile, tf.function, jit): clock it, and verify its output
        t0 = time.perf_counter()
        result = kernel.call()
        first_call_s = time.perf_counter() - t0
        check = compare(case, kernel.fetch(result), reference(case, weights, x, state0))
        del result
        if not check.ok:  # it ran, but beyond its tolerance: numerically inaccurate, not a crash
            return make_record(
                case, "inaccurate", threads=threads, max_abs_error=check.max_abs_error,
                max_rel_error=check.max_rel_error,
                error=f"does not match the reference: {check.worst} rel error {check.max_rel_error:.3g} > {check.tolerance}",
            )  # fmt: skip
        m = measure(kernel.call, config, first_call_s=first_call_s)
        if cache is not None:
            while len(cache) >= CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[case.key] = (kernel, check)
    except Unsupported as exc:
        return make_record(case, "skipped", threads=threads, error=str(exc))
    except Exception as exc:  # a framework error fails this case only
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})" if last else ""
        return make_record(case, "failed", threads=threads, error=f"{type(exc).__name__}: {exc}"[:500] + where)
    record = make_record(
        case, "ok", threads=threads, m=m, max_abs_error=check.max_abs_error,
        max_rel_error=check.max_rel_error, peak_gflops=peak_gflops,
    )  # fmt: skip
    record["impl"] = kernel.impl  # which implementation a native layer ran (cudnn or the generic one)
    return record


def worker_main(conn: Any, threads: int, config: TimingConfig) -> None:
    """Loop of the worker process (entry point of `multiprocessing` spawn)."""
    from rnnbench.measure.threads import apply_threads

    apply_threads(threads)
    cache: dict[str, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        op = msg.get("op")
        if op == "exit":
            return
        if op == "case":
            reply = measure_case(Case.from_dict(msg["case"]), config, threads, msg.get("peak_gflops"), cache)
        elif op == "peak":
            try:
                reply = measure_peak(msg["framework"], msg["device"], msg["dtype"], msg["config"])
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        else:
            reply = {"error": f"unknown op {op!r}"}
        conn.send(reply)
