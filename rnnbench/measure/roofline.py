"""The two ceilings of the roofline: the peak GEMM rate and the memory bandwidth, and a case's traffic.

`gemm_peak` times an (n x n) @ (n x n) matmul over a fixed ladder of sizes up
to the device's working range and keeps the best rate (no early stop: on a
shared CPU a noisy mid-size sample used to end the ladder early, leaving
torch's "peak" at 168 GFLOP/s while TensorFlow reached 436 on the same
cores). The ladder ends where one call of the next size would take longer
than `MAX_CALL_S` at the best rate so far (so a slow dtype on a CPU stays
cheap, and one stalled size does not end it). `stream_bandwidth` is
STREAM's copy (`a = b`) and triad (`a = b + s*c`) on arrays several times the
last-level cache, bytes counted STREAM's way (2 and 3 arrays per element).
`apply_machine_peaks` runs when a sweep ends: every record gets the
machine's best GEMM rate over all frameworks (`machine_peak_gflops`) and the
best triad bandwidth (`bandwidth_gbps`), and `peak_fraction` is taken against
the machine's best, while `peak_gflops` stays the framework's own.
`case_bytes` is the memory traffic model that puts a case on the roofline's
x axis (arithmetic intensity = useful FLOPs / bytes).
Frameworks are imported inside the functions, never at module import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnnbench.measure.timing import TimingConfig, measure

__all__ = [
    "GEMM_LADDER",
    "MAX_CALL_S",
    "apply_machine_peaks",
    "case_bytes",
    "gemm_peak",
    "stream_array_bytes",
    "stream_bandwidth",
    "stream_kernels",
]

# GEMM sizes tried on each device, up to the device's working range (every size is tried unless too slow)
GEMM_LADDER = {
    "cpu": (256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096),
    "cuda": (1024, 2048, 4096, 6144, 8192, 12288, 16384),
}
# a ladder size whose one call would take longer than this is not tried (its cost grows as n^3)
MAX_CALL_S = 0.15
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def gemm_peak(gemm: Callable[[int], Callable[[], Any]], device: str, config: TimingConfig) -> dict[str, Any]:
    """Best GEMM rate over `GEMM_LADDER[device]`; `gemm(n)` builds a synchronised n x n matmul call.

    Returns {n, median_s, gflops} of the best size plus `ladder`: [n, gflops] of every size tried.
    """
    ladder: list[list[float]] = []
    best: dict[str, Any] = {}
    sizes = GEMM_LADDER[device]
    for i, n in enumerate(sizes):
        m = measure(gemm(n), config)
        gflops = 2 * n**3 / m.median_s / 1e9
        ladder.append([n, gflops])
        if not best or gflops > best["gflops"]:
            best = {"n": n, "median_s": m.median_s, "gflops": gflops}
        # predicted from the best rate so far, so one slow (stalled) size does not end the ladder early
        if i + 1 < len(sizes) and 2 * sizes[i + 1] ** 3 / (best["gflops"] * 1e9) > MAX_CALL_S:
            break
    return best | {"ladder": ladder}


def _last_level_cache_bytes() -> int | None:
    """The largest CPU cache (Linux sysfs), or None where it cannot be read."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            text = f.read_text().strip().upper()
        except OSError:
            continue
        mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * mult)
    return max(sizes) if sizes else None


def stream_array_bytes(device: str) -> int:
    """Bytes per STREAM array: at least 4x the last-level cache (STREAM's rule), so caches do not flatter it.

    CUDA: 1 GiB (H100's L2 is 50 MB, H200's 60 MB). CPU: 4x the LLC, between 32 MiB and 512 MiB.
    """
    if device == "cuda":
        return 2**30
    llc = _last_level_cache_bytes() or 32 * 2**20
    return min(max(4 * llc, 32 * 2**20), 512 * 2**20)


def stream_kernels(framework: str, device: str, dtype: str, n: int) -> dict[str, Callable[[], Any]]:
    """Synchronised zero-argument `copy` and `triad` calls over arrays of `n` elements in `framework`.

    Each call returns the array it wrote (a = b = 1, c = 2, s = 3: copy gives 1s, triad 7s).

    Each moves STREAM's bytes in one pass where the framework allows: in-place
    ops in numpy/torch; one fused XLA kernel in JAX and TensorFlow (jit), with
    the scalar passed as an argument so nothing is constant-folded.
    """
    build = _STREAM_BUILDERS.get(framework)
    if build is None:
        raise ValueError(f"no STREAM kernels for framework {framework!r}")
    return build(device, dtype, n)


_TRIAD_SCALE = 3.0  # STREAM's s


def _numpy_stream(device: str, dtype: str, n: int) -> dict[str, Callable[[], Any]]:
    import numpy as np

    s = _TRIAD_SCALE
    a, b, c = (np.full(n, v, dtype=dtype) for v in (0.0, 1.0, 2.0))
    block = 1 << 15  # triad in cache-sized blocks: the temporary s*c never leaves the cache
    tmp = np.empty(block, dtype=dtype)

    def np_triad() -> Any:
        for i in range(0, n, block):
            t = tmp[: min(block, n - i)]
            np.multiply(c[i : i + block], s, out=t)
            np.add(b[i : i + block], t, out=a[i : i + block])
        return a

    def np_copy() -> Any:
        np.copyto(a, b)
        return a

    return {"copy": np_copy, "triad": np_triad}


def _torch_stream(device: str, dtype: str, n: int) -> dict[str, Callable[[], Any]]:
    import torch

    ta, tb, tc = (torch.full((n,), v, dtype=getattr(torch, dtype), device=device) for v in (0.0, 1.0, 2.0))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def t_copy() -> Any:
        ta.copy_(tb)
        sync()
        return ta

    def t_triad() -> Any:
        torch.add(tb, tc, alpha=_TRIAD_SCALE, out=ta)
        sync()
        return ta

    return {"copy": t_copy, "triad": t_triad}


def _jax_stream(device: str, dtype: str, n: int) -> dict[str, Callable[[], Any]]:
    from rnnbench.backends.jax import _jax

    jax = _jax()
    jnp = jax.numpy
    dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    jb, jc = (jax.device_put(jnp.full((n,), v, dtype=getattr(jnp, dtype)), dev) for v in (1.0, 2.0))
    one, scale = (jax.device_put(jnp.asarray(v, dtype=getattr(jnp, dtype)), dev) for v in (1.0, _TRIAD_SCALE))
    copy_fn = jax.jit(lambda b, k: b * k)
    triad_fn = jax.jit(lambda b, c, k: b + k * c)
    return {
        "copy": lambda: jax.block_until_ready(copy_fn(jb, one)),
        "triad": lambda: jax.block_until_ready(triad_fn(jb, jc, scale)),
    }


def _tensorflow_stream(device: str, dtype: str, n: int) -> dict[str, Callable[[], Any]]:
    import tensorflow as tf

    name = "/GPU:0" if device == "cuda" else "/CPU:0"
    with tf.device(name):
        fb, fc = (tf.fill((n,), tf.constant(v, dtype=getattr(tf, dtype))) for v in (1.0, 2.0))
        fone, fscale = (tf.constant(v, dtype=getattr(tf, dtype)) for v in (1.0, _TRIAD_SCALE))
    copy_tf = tf.function(lambda b, k: b * k, jit_compile=True)
    triad_tf = tf.function(lambda b, c, k: b + k * c, jit_compile=True)

    def tf_run(fn: Any, *args: Any) -> Any:
        with tf.device(name):
            out = fn(*args)
        if device == "cuda":
            out[:1].numpy()  # a one-element fetch waits for the kernel
        return out

    # TensorFlow places soft by default: a CPU-only build would run "/GPU:0" on the CPU without a word
    placed = tf_run(triad_tf, fb, fc, fscale).device
    if device == "cuda" and "GPU" not in placed.upper():
        raise RuntimeError(f"TensorFlow ran the STREAM triad on {placed}, not on the GPU")
    return {"copy": lambda: tf_run(copy_tf, fb, fone), "triad": lambda: tf_run(triad_tf, fb, fc, fscale)}


_STREAM_BUILDERS: dict[str, Callable[[str, str, int], dict[str, Callable[[], Any]]]] = {
    "numpy": _numpy_stream,
    "torch": _torch_stream,
    "jax": _jax_stream,
    "tensorflow": _tensorflow_stream,
}


def stream_bandwidth(framework: str, device: str, dtype: str, config: TimingConfig) -> dict[str, Any]:
    """{copy_gbps, triad_gbps, stream_bytes} of `framework` on `device` (bytes per array in `stream_bytes`)."""
    size = stream_array_bytes(device)
    n = size // ITEMSIZE[dtype]
    kernels = stream_kernels(framework, device, dtype, n)
    out: dict[str, Any] = {"stream_bytes": n * ITEMSIZE[dtype]}
    for name, arrays in (("copy", 2), ("triad", 3)):
        m = measure(kernels[name], config)
        out[f"{name}_gbps"] = arrays * n * ITEMSIZE[dtype] / m.median_s / 1e9
    return out


def case_bytes(
    cell: str, batch: int, input_size: int, hidden: int, seq_len: int, layers: int, dtype: str, train: bool
) -> int:
    """Memory traffic of a case in the roofline's model: every step re-reads its layer's weights.

    A step of layer k is one GEMM [B, I_k + H] @ [I_k + H, gH]: it reads the
    weights and biases, reads the input and state, and writes the gate
    pre-activations. A sequential RNN cannot keep weights in registers across
    steps in general (cuDNN's persistent kernels can, for small H), so this
    is the traffic of the per-step GEMMs; the backward pass does twice the
    forward's GEMM work (input and weight gradients), so train counts 3x.
    """
    g = GATES[cell]
    total = 0
    for k in range(layers):
        fan_in = (input_size if k == 0 else hidden) + hidden
        per_step = g * hidden * (fan_in + 2) + batch * fan_in + batch * g * hidden
        total += seq_len * per_step
    return total * ITEMSIZE.get(dtype, 4) * (3 if train else 1)


def apply_machine_peaks(doc: dict[str, Any]) -> None:
    """Give every record the machine's best GEMM rate and bandwidth; `peak_fraction` against the machine's.

    The best is over the frameworks this run measured on the same device and
    dtype and fp32 mode (`fp32`: strict or tf32; absent means strict, on peaks
    and records alike); `peak_gflops` keeps the framework's own probe.
    """
    best: dict[tuple[Any, ...], float] = {}
    bandwidth: dict[str, float] = {}
    for p in doc.get("peaks", []):
        key = (p.get("device"), p.get("dtype"), p.get("fp32") or "strict")
        if p.get("gflops"):
            best[key] = max(best.get(key, 0.0), float(p["gflops"]))
        if p.get("triad_gbps"):
            bandwidth[p["device"]] = max(bandwidth.get(p["device"], 0.0), float(p["triad_gbps"]))
    for r in doc.get("records", []):
        machine_peak = best.get((r.get("device"), r.get("dtype"), r.get("fp32") or "strict"))
        r["machine_peak_gflops"] = machine_peak
        r["bandwidth_gbps"] = bandwidth.get(r.get("device", ""))
        # no peak of this device, dtype and fp32 mode: no ceiling to compare with (a TF32 case against a
        # strict-fp32 GEMM would read above 1)
        r["peak_fraction"] = r["gflops"] / machine_peak if machine_peak and r.get("gflops") else None
