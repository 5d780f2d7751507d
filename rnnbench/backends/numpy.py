"""numpy backend: the formulations on plain numpy (BLAS GEMMs), forward pass only.

numpy has no autograd and no RNN layer, so it times `separate`, `concat` and
`hoisted` forward in eager float32; train cases are reported as unsupported
(the reference gradients in `rnnbench.reference` are hand-written BPTT, an oracle,
not something worth timing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rnnbench import formulations as fm
from rnnbench.backends import Backend, Kernel, Outputs
from rnnbench.case import Case
from rnnbench.formulations import Ops, pack, python_scan, run_layers
from rnnbench.reference import Array

OPS = Ops(
    concat=lambda arrays: np.concatenate(arrays, axis=-1),
    # the tanh form of the logistic function cannot overflow in exp()
    sigmoid=lambda a: 0.5 * (1.0 + np.tanh(0.5 * a)),
    tanh=np.tanh,
    relu=lambda a: np.maximum(a, 0),
    reshape=np.reshape,
    log_softmax=lambda a: (
        a - a.max(-1, keepdims=True) - np.log(np.exp(a - a.max(-1, keepdims=True)).sum(-1, keepdims=True))
    ),
    sum=np.sum,
    scan=python_scan(np.stack),
)


class NumpyBackend(Backend):
    name = "numpy"
    module = "numpy"
    dtypes = ("float32",)

    def _unsupported(self, case: Case) -> str | None:
        if case.train:
            return "numpy has no autograd; the train pass is not timed for numpy"
        return None

    def devices(self) -> list[str]:
        return ["cpu"]

    def gemm(self, device: str, dtype: str, n: int, fp32: str = "strict") -> Callable[[], Any]:
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        return lambda: a @ b

    def _to_numpy(self, t: Any) -> Array:
        return np.asarray(t)

    def _device_of(self, t: Any) -> str:
        return "cpu"

    def _build_formulation(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        params = pack(case.spec, case.formulation, weights, case.layers)
        shape = (case.seq_len, case.batch, case.input_size, case.hidden)
        xs = np.ascontiguousarray(x, dtype=np.float32)
        st = tuple(np.ascontiguousarray(s, dtype=np.float32) for s in state0)
        hp, _ = self._head_parts(case, weights, lambda a, trainable: a)

        def call() -> Any:
            ys, finals = run_layers(OPS, case.spec, case.formulation, params, xs, st, shape)
            return (fm.head_logits(OPS, ys, hp) if hp else ys), finals

        def fetch(result: Any) -> Outputs:
            ys, finals = result
            return self._outputs(ys, self._stack_states(finals), None)

        return Kernel(case, call, fetch)


BACKEND = NumpyBackend()
