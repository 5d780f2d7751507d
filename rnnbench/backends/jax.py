"""JAX backend: the formulations as jax.jit over lax.scan, forward and jax.grad.

JAX has one execution mode here, `compiled` (jit + lax.scan): op-by-op eager
JAX dispatch is not how anyone runs an RNN in JAX. JAX has no RNN layer of
its own (Flax's are a separate library), so there is no `native`. Each call
ends in `block_until_ready`, the synchronisation JAX's asynchronous dispatch
needs. jax is imported inside the methods, never at module import.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from rnnbench.backends import Backend, Kernel, Outputs
from rnnbench.case import Case
from rnnbench.formulations import Ops, pack, run_layers, unpack_grads
from rnnbench.reference import Array


@functools.cache
def _jax() -> Any:
    # Allocate GPU memory on demand, not 75% of it up front, so TF/torch workers can share the GPU.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax

    return jax


def _ops(jax: Any) -> Ops:
    jnp = jax.numpy
    return Ops(
        concat=lambda ts: jnp.concatenate(list(ts), axis=-1),
        sigmoid=jax.nn.sigmoid,
        tanh=jnp.tanh,
        relu=jax.nn.relu,
        reshape=jnp.reshape,
        scan=jax.lax.scan,
    )


class JaxBackend(Backend):
    name = "jax"
    module = "jax"
    dtypes = ("float32", "float16", "bfloat16")
    compilers = ("xla",)

    def devices(self) -> list[str]:
        jax = _jax()
        try:
            has_gpu = bool(jax.devices("gpu"))
        except RuntimeError:  # no GPU backend in this jaxlib
            has_gpu = False
        return ["cpu", "cuda"] if has_gpu else ["cpu"]

    def gemm(self, device: str, dtype: str, n: int) -> Callable[[], Any]:
        jax = _jax()
        dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        keys = jax.random.split(jax.random.PRNGKey(0))
        a, b = (jax.device_put(jax.random.normal(k, (n, n), dtype=getattr(jax.numpy, dtype)), dev) for k in keys)
        matmul = jax.jit(jax.numpy.matmul)
        return lambda: jax.block_until_ready(matmul(a, b))

    def _to_numpy(self, t: Any) -> Array:
        return np.asarray(t, dtype=np.float32)

    def _device_of(self, t: Any) -> str:
        platforms = {d.platform for d in t.devices()}
        return "cuda" if platforms == {"gpu"} or platforms == {"cuda"} else ",".join(sorted(platforms))

    def _pass_fn(self, case: Case, forward: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        """One synchronised call: jit(forward)(*args), or jit(grad) of sum(y) w.r.t. args[0].

        The float32 matmul precision is part of what jit traces; it is set around every call
        (JAX's default lets the GPU use TF32).
        """
        jax = _jax()
        precision = jax.default_matmul_precision("tensorfloat32" if case.fp32 == "tf32" else "highest")
        if case.train:

            def loss(*args: Any) -> Any:
                ys, finals = forward(*args)
                return jax.numpy.sum(ys), (ys, finals)

            grad_fn = jax.jit(jax.grad(loss, has_aux=True))

            def call() -> Any:
                with precision:
                    grads, (ys, finals) = grad_fn(*args)
                return jax.block_until_ready((ys, finals, grads))

            return call
        fwd = jax.jit(forward)

        def call_forward() -> Any:
            with precision:
                ys, finals = fwd(*args)
            return jax.block_until_ready((ys, finals, None))

        return call_forward

    def _build_formulation(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        jax = _jax()
        jnp = jax.numpy
        device = jax.devices("gpu" if case.device == "cuda" else "cpu")[0]
        dtype = getattr(jnp, case.dtype)

        def put(a: Array, dtype: Any = dtype) -> Any:
            return jax.device_put(jnp.asarray(a, dtype=dtype), device)

        packed = pack(case.spec, case.formulation, weights, case.layers)
        params = [{n: put(a, getattr(jnp, case.param_dtype)) for n, a in p.items()} for p in packed]
        xs, st = put(x), [put(s) for s in state0]
        ops = _ops(jax)
        shape = (case.seq_len, case.batch, case.input_size, case.hidden)
        # mixed: float32 parameters cast to the compute dtype inside the scan body, once per step
        cast = (lambda a: a.astype(dtype)) if case.precision == "mixed" else None

        def forward(params: Any, xs: Any, st: Any) -> Any:
            return run_layers(ops, case.spec, case.formulation, params, xs, st, shape, cast=cast)

        def fetch(result: Any) -> Outputs:
            ys, finals, grads = result
            canon = None
            if grads is not None:
                numpy_grads = [{n: self._to_numpy(a) for n, a in g.items()} for g in grads]
                canon = unpack_grads(case.spec, case.formulation, numpy_grads)
            return self._outputs(ys, self._stack_states([tuple(c) for c in finals]), canon)

        return Kernel(case, self._pass_fn(case, forward, params, xs, st), fetch)


BACKEND = JaxBackend()
