"""Proof before timing: run a case's kernel once and compare it with the numpy reference.

This module owns the per-dtype tolerances, the error metric and the inputs a
case is built from (seeded canonical weights, input and initial state), so
that the CLI's `verify`, the runner (which verifies every case before timing
it) and asv's `setup` all check the same thing the same way.

Error metric: `max_abs_error` = max |out - ref| over every output (y, the
final states and, for train, every gradient), and `max_rel_error` = each
output's max abs error divided by its largest reference magnitude (at least
1), maxed over outputs. A case passes when every output's relative error is
within its own tolerance, which follows the dtype, the fp32 mode and the
length of the sums behind that output (`tolerance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnbench.backends import Kernel, Outputs
from rnnbench.case import Case
from rnnbench.reference import (
    Array,
    head_forward,
    init_head,
    init_inputs,
    init_weights,
    reference_forward,
    reference_gradients,
)

__all__ = [
    "Check",
    "ReferenceCache",
    "compare",
    "make_inputs",
    "reduction_length",
    "reference",
    "tolerance",
    "verify_kernel",
]

# Normalised error allowed per (dtype, fp32 mode) for a short computation. float32
# `strict` is full FP32 (GPU reductions reorder sums, hence looser on CUDA); `tf32`
# rounds matmul inputs to a 10-bit mantissa. float16/bfloat16 allow for their
# 11/8-bit mantissas; the same base serves `pure` and `mixed` precision, and
# `_growth` widens it with the length of the sums behind an output.
_TOLERANCE = {
    ("float32", "strict", "cpu"): 2e-4,
    ("float32", "strict", "cuda"): 1e-3,
    ("float32", "tf32", "cpu"): 2e-4,  # no TF32 on CPUs
    ("float32", "tf32", "cuda"): 2e-2,
    ("float16", "strict", "cpu"): 3e-2,
    ("float16", "strict", "cuda"): 3e-2,
    ("bfloat16", "strict", "cpu"): 1e-1,
    ("bfloat16", "strict", "cuda"): 1e-1,
}
# Reduction length up to which the base tolerances hold (they were set on sums this short
# or shorter); beyond it, rounding error of a sum of n terms grows like sqrt(n).
_BASE_REDUCTION = 4096


def reduction_length(case: Case, output: str) -> int:
    """Terms summed into one element of `output`: seq_len x batch for a gradient, seq_len otherwise."""
    return case.seq_len * case.batch if output.startswith("d") else case.seq_len


def _growth(n: int) -> float:
    return max(1.0, (n / _BASE_REDUCTION) ** 0.5)


def tolerance(case: Case, output: str = "y") -> float:
    """Normalised error allowed for `output` ('y', 'state[i]' or 'd<weight name>') of `case`."""
    fp32 = case.fp32 if case.dtype == "float32" else "strict"
    return _TOLERANCE[(case.dtype, fp32, case.device)] * _growth(reduction_length(case, output))


@dataclass(frozen=True)
class Check:
    """Outcome of comparing one case with the reference.

    `worst` is the output furthest beyond (or closest to) its own tolerance,
    `tolerance` that output's tolerance and `worst_rel_error` its error;
    `max_rel_error` is the largest error over all outputs.
    """

    case: Case
    max_abs_error: float
    max_rel_error: float
    tolerance: float
    worst: str
    worst_rel_error: float | None = None

    @property
    def ok(self) -> bool:
        worst = self.max_rel_error if self.worst_rel_error is None else self.worst_rel_error
        return bool(worst <= self.tolerance)


def make_inputs(case: Case, seed: int = 0) -> tuple[dict[str, Array], Array, tuple[Array, ...]]:
    """Seeded canonical weights, input `x (T,B,I)` and initial state for `case`."""
    weights = init_weights(case.spec, case.input_size, case.hidden, case.layers, seed=seed)
    if case.head == "linear":
        weights |= init_head(case.hidden, case.vocab, seed=seed + 3)
    x, state0 = init_inputs(case.spec, case.seq_len, case.batch, case.input_size, case.hidden, case.layers, seed + 1)
    return weights, x, state0


def _round(a: Array, dtype: str) -> Array:
    """What the framework actually sees once inputs are cast to `dtype`."""
    if dtype == "float32":
        return a
    import ml_dtypes  # ships with JAX and TensorFlow; numpy has no bfloat16

    low = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    return a.astype(low).astype(np.float32)


def reference(case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Outputs:
    """float64 reference outputs for `case` (gradients only for a train case)."""
    weights = {k: _round(v, case.param_dtype) for k, v in weights.items()}  # float32 master weights when mixed
    x = _round(x, case.dtype)
    state0 = tuple(_round(s, case.dtype) for s in state0)
    y, state = reference_forward(case.spec, x, weights, *state0)
    targets = case.targets() if case.head == "linear" else None
    if targets is not None:
        y = head_forward(y, weights)
    c0 = state0[1] if len(state0) > 1 else None
    grads = reference_gradients(case.spec, x, weights, state0[0], c0, targets) if case.train else None
    return Outputs(y, state, grads)


class ReferenceCache:
    """float64 references of the seeded inputs, shared by every case with the same math.

    A reference depends only on (cell spec, shape, layers, pass, dtype): the
    framework, formulation and mode of a case do not change it (dtype does,
    through the rounding of the inputs). A sweep has many cases per
    reference (every formulation and mode of a shape), so a worker keeps the
    most recently used ones, bounded by `max_bytes` (large nightly shapes hold
    hundreds of MB each).
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.entries: dict[tuple[object, ...], tuple[Outputs, int]] = {}
        self.hits = self.misses = 0

    @staticmethod
    def key(case: Case, seed: int = 0) -> tuple[object, ...]:
        # param_dtype: mixed and pure round the weights differently; the head changes y and the loss
        return (case.spec, case.batch, case.input_size, case.hidden, case.seq_len, case.layers, case.train,
                case.dtype, case.param_dtype, case.head, case.vocab, seed)  # fmt: skip

    def get(self, case: Case, seed: int = 0) -> tuple[Outputs, tuple[dict[str, Array], Array, tuple[Array, ...]]]:
        """(reference outputs, the inputs they were computed from) for `case`."""
        inputs = make_inputs(case, seed)
        k = self.key(case, seed)
        if k in self.entries:
            self.hits += 1
            ref, size = self.entries.pop(k)
            self.entries[k] = (ref, size)  # most recently used last
            return ref, inputs
        self.misses += 1
        ref = reference(case, *inputs)
        arrays = [ref.y, *ref.state, *(ref.grads or {}).values()]
        size = sum(int(np.asarray(a).nbytes) for a in arrays)
        while self.entries and sum(s for _, s in self.entries.values()) + size > self.max_bytes:
            self.entries.pop(next(iter(self.entries)))
        if size <= self.max_bytes:
            self.entries[k] = (ref, size)
        return ref, inputs


def compare(case: Case, out: Outputs, ref: Outputs) -> Check:
    """`out` against `ref`; AssertionError when outputs have the wrong shape or live on the wrong device."""
    if out.device is not None and out.device != case.device:
        raise AssertionError(f"{case.key}: outputs live on {out.device!r}, not on the case's device {case.device!r}")
    pairs: list[tuple[str, Array, Array]] = [("y", out.y, ref.y)]
    pairs += [(f"state[{i}]", o, r) for i, (o, r) in enumerate(zip(out.state, ref.state))]
    if case.train:
        if out.grads is None or ref.grads is None or set(out.grads) != set(ref.grads):
            raise AssertionError(f"{case.key}: train pass returned no gradients or the wrong names")
        pairs += [(f"d{name}", out.grads[name], ref.grads[name]) for name in ref.grads]
    abs_err, rel_err, worst, worst_ratio, worst_rel = 0.0, 0.0, "y", -1.0, 0.0
    for name, o, r in pairs:
        if np.shape(o) != np.shape(r):
            raise AssertionError(f"{case.key}: {name} has shape {np.shape(o)}, reference {np.shape(r)}")
        err = float(np.max(np.abs(np.asarray(o, dtype=np.float64) - r))) if np.size(r) else 0.0
        if not np.isfinite(err):
            err = float("inf")
        rel = err / max(1.0, float(np.max(np.abs(r))) if np.size(r) else 1.0)
        abs_err, rel_err = max(abs_err, err), max(rel_err, rel)
        ratio = rel / tolerance(case, name)
        if ratio >= worst_ratio:
            worst, worst_ratio, worst_rel = name, ratio, rel
    return Check(case, abs_err, rel_err, tolerance(case, worst), worst, worst_rel)


def verify_kernel(kernel: Kernel, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Check:
    """Run `kernel` once and compare its outputs with the reference."""
    out = kernel.fetch(kernel.call())
    return compare(kernel.case, out, reference(kernel.case, weights, x, state0))
