"""What the asv suite in `benchmarks/` needs from rnnbench: its parameter grids, verified kernels and in-process rates.

The benchmark files stay thin (numpy's `bench_linalg.py` style); this module
owns everything they would otherwise repeat:

- the parameter lists of every benchmark class, small by default so the asv
  dashboard stays readable and a run over several commits stays short, larger
  with `RNNBENCH_ASV_FULL=1` (scipy's `SCIPY_XSLOW` idea), and narrowed by
  `RNNBENCH_ASV_FRAMEWORKS`, `RNNBENCH_ASV_FORMULATIONS` and
  `RNNBENCH_ASV_DEVICES` (comma lists); `RNNBENCH_ASV_THREADS` sets every
  framework's compute threads (as `rnnbench run --threads`);
- turning one asv parameter tuple into a `Case` (a framework value may carry a
  mode, `torch:compiled`; without one it runs in the framework's usual mode);
- building a kernel and proving it against the numpy reference before asv
  times it, turning "framework not installed", "no such device" and "backend
  cannot build this" into `NotImplementedError`, which asv records as skipped;
- the median-of-a-few-calls timing that the `track_*` benchmarks (GFLOP/s,
  the concat/separate time ratio) report, and the peak-GEMM callable.

Frameworks are imported only by `verified_kernel`/`gemm_call`, i.e. from a
benchmark's `setup`, never when asv imports the suite to discover it.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from rnnbench import backends
from rnnbench.backends import Kernel
from rnnbench.case import DEVICES, FORMULATIONS, FRAMEWORKS, MODES, PASSES, Case, check_choice
from rnnbench.errors import UsageError
from rnnbench.measure.timing import measure_interleaved
from rnnbench.measure.verify import make_inputs, verify_kernel
from rnnbench.sweep.grid import CELL_VARIANTS, PRIMARY_MODE

__all__ = [
    "ENV_DEVICES",
    "ENV_FORMULATIONS",
    "ENV_FRAMEWORKS",
    "ENV_FULL",
    "ENV_THREADS",
    "cell_variants",
    "devices",
    "formulations",
    "frameworks",
    "full",
    "gemm_call",
    "gemm_sizes",
    "layer_counts",
    "make_case",
    "median_seconds",
    "parse_shape",
    "rate_cells",
    "rate_passes",
    "ratio_cells",
    "shapes",
    "unsupported",
    "unsupported_params",
    "verified_kernel",
]

ENV_FULL = "RNNBENCH_ASV_FULL"
ENV_FRAMEWORKS = "RNNBENCH_ASV_FRAMEWORKS"
ENV_FORMULATIONS = "RNNBENCH_ASV_FORMULATIONS"
ENV_DEVICES = "RNNBENCH_ASV_DEVICES"
# compute threads for every framework (rnnbench.threads); unset: the frameworks' defaults
ENV_THREADS = "RNNBENCH_ASV_THREADS"

# Samples a track_* benchmark takes: enough for a stable median of a
# millisecond kernel, few enough that a track costs well under a second.
TRACK_CALLS = 9


def full() -> bool:
    """True when RNNBENCH_ASV_FULL asks for the large grid."""
    return os.environ.get(ENV_FULL, "").strip().lower() not in ("", "0", "false", "no")


def _env_list(name: str) -> list[str] | None:
    text = os.environ.get(name, "").strip()
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


def _narrow(values: list[str], env: str, allowed: tuple[str, ...], key: Callable[[str], str] = str) -> list[str]:
    """`values` kept only where `key(value)` is named in the comma list in `env` (all when unset)."""
    wanted = _env_list(env)
    if wanted is None:
        return values
    for w in wanted:
        check_choice(env, w, allowed)
    return [v for v in values if key(v) in wanted]


def frameworks(modes: bool = True) -> list[str]:
    """Framework parameter values: each in its usual mode; the full grid adds `torch:compiled`, `tensorflow:eager`.

    `modes=False` leaves the extra modes out (a GEMM has no mode).
    """
    values = list(FRAMEWORKS)
    if full() and modes:
        values += ["torch:compiled", "tensorflow:eager"]
    return _narrow(values, ENV_FRAMEWORKS, FRAMEWORKS, key=lambda v: v.split(":")[0])


def formulations() -> list[str]:
    return _narrow(list(FORMULATIONS), ENV_FORMULATIONS, FORMULATIONS)


def devices() -> list[str]:
    """`cpu`; the full grid adds `cuda` (skipped in setup where there is no GPU)."""
    wanted = _env_list(ENV_DEVICES)
    if wanted is not None:
        for w in wanted:
            check_choice(ENV_DEVICES, w, DEVICES)
        return wanted
    return ["cpu", "cuda"] if full() else ["cpu"]


def shapes() -> list[str]:
    """Shape labels `B.. I.. H.. T..` (batch, input size, hidden, sequence length)."""
    if full():
        return [f"B{b} I{h} H{h} T{t}" for b in (1, 16, 64) for h in (64, 256, 512) for t in (32, 128)]
    return ["B16 I64 H64 T32"]


def cell_variants(cell: str) -> list[str]:
    """Labels from `grid.CELL_VARIANTS` for one cell: the plain cell, or every variant in the full grid."""
    return [label for label in CELL_VARIANTS if label.split("[")[0] == cell] if full() else [cell]


def rate_cells() -> list[str]:
    """Cells the GFLOP/s sweep covers: the LSTM (most work per step) by default, every variant in the full grid."""
    return list(CELL_VARIANTS) if full() else ["lstm"]


def rate_passes() -> list[str]:
    """Passes the GFLOP/s sweep covers: forward by default (the time_train sweeps cover train), both in the full grid."""
    return list(PASSES) if full() else ["forward"]


def ratio_cells() -> list[str]:
    """Cells the concat/separate ratio covers: one of each by default, every variant in the full grid."""
    return list(CELL_VARIANTS) if full() else ["rnn", "gru", "lstm"]


def layer_counts() -> list[int]:
    return [1, 2, 4] if full() else [2]


def gemm_sizes() -> list[int]:
    return [256, 1024, 4096] if full() else [1024]


_SHAPE = re.compile(r"B(\d+) I(\d+) H(\d+) T(\d+)")


def parse_shape(label: str) -> tuple[int, int, int, int]:
    """'B16 I64 H64 T32' -> (16, 64, 64, 32)."""
    m = _SHAPE.fullmatch(label)
    if m is None:
        raise UsageError(f"shape must look like 'B16 I64 H64 T32', got {label!r}")
    b, i, h, t = (int(g) for g in m.groups())
    return b, i, h, t


def make_case(
    framework: str, formulation: str, device: str, shape: str, *, cell: str, pass_: str, layers: int = 1
) -> Case:
    """The `Case` one asv parameter tuple stands for; `cell` is a `CELL_VARIANTS` label."""
    name, _, mode = framework.partition(":")
    check_choice("framework", name, FRAMEWORKS)
    mode = mode or PRIMARY_MODE[name]
    check_choice("mode", mode, MODES)
    check_choice("cell", cell, tuple(CELL_VARIANTS))
    spec = CELL_VARIANTS[cell]
    b, i, h, t = parse_shape(shape)
    return Case(
        framework=name, device=device, cell=spec.cell, formulation=formulation, mode=mode, pass_=pass_,
        batch=b, input_size=i, hidden=h, seq_len=t, layers=layers,
        nonlinearity=spec.nonlinearity, gru_update=spec.gru_update, gru_reset=spec.gru_reset,
    )  # fmt: skip


def unsupported(case: Case) -> str | None:
    """Why the backend cannot build `case` at all (installed or not), without importing its framework."""
    return _backend_class(case.framework).unsupported(case)


def unsupported_params(params: Iterable[tuple[Any, ...]], to_case: Callable[..., Case]) -> list[tuple[Any, ...]]:
    """The parameter tuples whose case the backend cannot build, for asv's `skip_for_params`.

    A class whose `setup` serves both passes cannot skip one of them by
    raising NotImplementedError there; asv skips these tuples for the one
    method without even starting a process for them.
    """
    return [tuple(p) for p in params if unsupported(to_case(*p))]


def _backend_class(framework: str) -> backends.Backend:
    """The backend object, installed or not (`backends.get` insists on installed; `unsupported` does not need it)."""
    backend: backends.Backend = importlib.import_module(f"rnnbench.backends.{framework}").BACKEND
    return backend


@functools.cache
def _threads() -> None:
    """Apply RNNBENCH_ASV_THREADS once per benchmark process, before a framework starts."""
    text = os.environ.get(ENV_THREADS, "").strip()
    if not text:
        return
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{ENV_THREADS} must be a positive integer, got {text!r}")
    from rnnbench.measure.threads import apply_threads

    apply_threads(int(text))


def _backend(framework: str) -> backends.Backend:
    _threads()
    try:
        return backends.get(framework)
    except UsageError as e:  # not installed here: a skip, so the suite runs everywhere
        raise NotImplementedError(str(e)) from None


# asv_runner >= 0.3 re-runs `setup` before every timed sample (asv#966), and
# each parameter tuple runs in a fresh process; caching per process keeps a
# sample from paying for a rebuild (a JAX/XLA or tf.function compile) while
# still building and verifying each case once per process. Kernels hold no
# state between calls (each call starts from the same inputs), so reuse is safe.
@functools.cache
def verified_kernel(case: Case) -> Kernel:
    """`case` built and proven against the numpy reference; NotImplementedError where it cannot run here."""
    backend = _backend(case.framework)
    reason = backend.unsupported(case)
    if reason:
        raise NotImplementedError(reason)
    weights, x, state0 = make_inputs(case)
    try:
        kernel = backend.build(case, weights, x, state0)
    except UsageError as e:  # the device is not on this machine
        raise NotImplementedError(str(e)) from None
    check = verify_kernel(kernel, weights, x, state0)
    if not check.ok:
        # A wrong kernel must fail loudly, never be timed or skipped.
        raise AssertionError(
            f"{case.key} does not match the reference: max rel error {check.max_rel_error:.3g} "
            f"in {check.worst} > tolerance {check.tolerance:.3g}"
        )
    return kernel


def median_seconds(*calls: Callable[[], Any], repeats: int = TRACK_CALLS) -> list[float]:
    """Median wall time of each call over `repeats` rounds, after one warm-up round.

    With several calls the rounds interleave them, so drift on a shared
    machine (another job starting, clock changes) hits every call alike and
    cancels out of their ratio. Each call must synchronise its device itself,
    as `Kernel.call` does. This is the timing engine's interleaved mode with
    one call per sample.
    """
    return [m.median_s for m in measure_interleaved(calls, repeats, warmup=1)]


def gemm_call(framework: str, device: str, dtype: str, n: int) -> Callable[[], Any]:
    """A synchronised zero-argument n x n @ n x n matmul from the backend; NotImplementedError where it cannot run."""
    backend = _backend(framework.partition(":")[0])
    if device != "cpu" and device not in backend.devices():
        raise NotImplementedError(f"device {device!r} is not available to {backend.name} here")
    try:
        call: Callable[[], Any] = backend.gemm(device, dtype, n)
    except UsageError as e:
        raise NotImplementedError(str(e)) from None
    return call
