"""JAX backend: the formulations as jax.jit over lax.scan, forward and jax.grad.

JAX has one execution mode here, `compiled` (jit + lax.scan): op-by-op eager
JAX dispatch is not how anyone runs an RNN in JAX. JAX's `native` is what JAX
users reach for: flax's recurrent cells (`flax.nnx` `OptimizedLSTMCell`,
`SimpleCell`) scanned by `nnx.RNN`, jitted like the rest (see
`_build_native` for where flax's equations differ from the reference). Each call
ends in `block_until_ready`, the synchronisation JAX's asynchronous dispatch
needs. jax is imported inside the methods, never at module import.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from rnnbench import formulations as fm
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
        log_softmax=jax.nn.log_softmax,
        sum=jnp.sum,
        scan=jax.lax.scan,
    )


class JaxBackend(Backend):
    name = "jax"
    module = "jax"
    dtypes = ("float32", "float16", "bfloat16")
    compilers = ("xla",)

    def _unsupported(self, case: Case) -> str | None:
        if case.formulation == "native" and importlib.util.find_spec("flax") is None:
            return "JAX's native rows are flax's recurrent cells, and flax is not installed (pip install flax)"
        if case.formulation == "native" and case.cell == "gru":
            # flax: n = tanh(W_in x + b_in + r * (U_hn h)); the reference (torch, cuDNN) adds b_hn inside r*(...)
            return (
                "flax's GRUCell has no recurrent bias (n = tanh(W_in x + b_in + r*(U_hn h)), no b_hn inside r*(...)) "
                "and only the keep-old, reset-after form: not the reference's GRU"
            )
        return None

    def devices(self) -> list[str]:
        jax = _jax()
        try:
            has_gpu = bool(jax.devices("gpu"))
        except RuntimeError:  # no GPU backend in this jaxlib
            has_gpu = False
        return ["cpu", "cuda"] if has_gpu else ["cpu"]

    def gemm(self, device: str, dtype: str, n: int, fp32: str = "strict") -> Callable[[], Any]:
        jax = _jax()
        precision = "tensorfloat32" if fp32 == "tf32" else "highest"
        dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        keys = jax.random.split(jax.random.PRNGKey(0))
        a, b = (jax.device_put(jax.random.normal(k, (n, n), dtype=getattr(jax.numpy, dtype)), dev) for k in keys)
        matmul = jax.jit(jax.numpy.matmul)

        def call() -> Any:
            with jax.default_matmul_precision(precision):  # part of jit's cache key: traced once per mode
                return jax.block_until_ready(matmul(a, b))

        return call

    def _to_numpy(self, t: Any) -> Array:
        return np.asarray(t, dtype=np.float32)

    def _device_of(self, t: Any) -> str:
        platforms = {d.platform for d in t.devices()}
        return "cuda" if platforms == {"gpu"} or platforms == {"cuda"} else ",".join(sorted(platforms))

    def _pass_fn(
        self, case: Case, forward: Callable[..., Any], loss: Callable[[Any], Any], *args: Any
    ) -> tuple[Callable[[], Any], Callable[[], Any]]:
        """(call, launch): one synchronised call of jit(forward)(*args), or jit(grad) of loss(y) w.r.t.
        args[0]; `launch` is the same call without `block_until_ready`.

        The float32 matmul precision is part of what jit traces; it is set around every call
        (JAX's default lets the GPU use TF32).
        """
        jax = _jax()
        precision = jax.default_matmul_precision("tensorfloat32" if case.fp32 == "tf32" else "highest")
        if case.train:

            def objective(*args: Any) -> Any:
                ys, finals = forward(*args)
                return loss(ys), (ys, finals)

            grad_fn = jax.jit(jax.grad(objective, has_aux=True))

            def launch() -> Any:
                with precision:
                    grads, (ys, finals) = grad_fn(*args)
                return ys, finals, grads

        else:
            fwd = jax.jit(forward)

            def launch() -> Any:
                with precision:
                    ys, finals = fwd(*args)
                return ys, finals, None

        def call() -> Any:
            return jax.block_until_ready(launch())

        return call, launch

    def _head(self, case: Case, weights: dict[str, Array], put: Callable[..., Any]) -> tuple[Any, Any, Any]:
        """Head parameters (param_dtype), `output(head_params, ys)` and the loss of the output."""
        jnp = _jax().numpy
        dtype, ops = getattr(jnp, case.dtype), _ops(_jax())
        hp, onehot = self._head_parts(
            case, weights, lambda a, trainable: put(a, case.param_dtype if trainable else dtype)
        )

        def output(hp: Any, ys: Any) -> Any:
            if not hp:
                return ys
            # mixed: float32 head parameters cast to the compute dtype where they are read
            return fm.head_logits(
                ops, ys, fm.CastOnRead(hp, lambda a: a.astype(dtype)) if case.precision == "mixed" else hp
            )

        return hp, output, fm.make_loss(ops, onehot)

    def _build_formulation(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        jax = _jax()
        jnp = jax.numpy
        device = jax.devices("gpu" if case.device == "cuda" else "cpu")[0]
        dtype = getattr(jnp, case.dtype)

        def put(a: Array, dtype: Any = dtype) -> Any:
            return jax.device_put(jnp.asarray(a, dtype=dtype), device)

        hp, output, loss = self._head(case, weights, put)

        packed = pack(case.spec, case.formulation, weights, case.layers)
        params = [{n: put(a, getattr(jnp, case.param_dtype)) for n, a in p.items()} for p in packed]
        xs, st = put(x), [put(s) for s in state0]
        ops = _ops(jax)
        shape = (case.seq_len, case.batch, case.input_size, case.hidden)
        # mixed: float32 parameters cast to the compute dtype inside the scan body, once per step
        cast = (lambda a: a.astype(dtype)) if case.precision == "mixed" else None

        def forward(model: Any, xs: Any, st: Any) -> Any:
            params, hp = model
            ys, finals = run_layers(ops, case.spec, case.formulation, params, xs, st, shape, cast=cast)
            return output(hp, ys), finals

        def fetch(result: Any) -> Outputs:
            ys, finals, grads = result
            canon = None
            if grads is not None:
                numpy_grads = [{n: self._to_numpy(a) for n, a in g.items()} for g in grads[0]]
                canon = unpack_grads(case.spec, case.formulation, numpy_grads)
                if grads[1]:
                    canon |= fm.unpack_head_grads({n: self._to_numpy(a) for n, a in grads[1].items()})
            return self._outputs(ys, self._stack_states([tuple(c) for c in finals]), canon)

        call, launch = self._pass_fn(case, forward, loss, (params, hp), xs, st)
        return Kernel(case, call, fetch, launch=launch, sync=jax.block_until_ready)

    @staticmethod
    def _native_layer(case: Case, weights: dict[str, Array], k: int, dtype: Any, param_dtype: Any) -> Any:
        """Layer `k` as an `nnx.RNN` over a flax cell holding the canonical weights (see `_build_native`)."""
        jax = _jax()
        jnp = jax.numpy
        from flax import nnx

        in_k = case.input_size if k == 0 else case.hidden
        # weights are loaded below: skip flax's initialisers (its orthogonal one has no half-precision QR)
        zeros = nnx.initializers.zeros_init()
        opts: dict[str, Any] = {"dtype": dtype, "param_dtype": param_dtype, "rngs": nnx.Rngs(k),
                                "kernel_init": zeros, "recurrent_kernel_init": zeros}  # fmt: skip
        w, u = weights[f"weight_ih_l{k}"], weights[f"weight_hh_l{k}"]
        bias = weights[f"bias_ih_l{k}"] + weights[f"bias_hh_l{k}"]
        if case.cell == "lstm":
            cell: Any = nnx.OptimizedLSTMCell(in_k, case.hidden, **opts)
            cell.dense_h.bias.value = jnp.asarray(bias, dtype=param_dtype)
        else:
            act = jax.nn.relu if case.nonlinearity == "relu" else jnp.tanh
            cell = nnx.SimpleCell(in_k, case.hidden, activation_fn=act, **opts)
            cell.dense_i.bias.value = jnp.asarray(bias, dtype=param_dtype)
        cell.dense_i.kernel.value = jnp.asarray(w.T, dtype=param_dtype)
        cell.dense_h.kernel.value = jnp.asarray(u.T, dtype=param_dtype)
        return nnx.RNN(cell, time_major=True, return_carry=True)

    def _build_native(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        """flax.nnx cells scanned by `nnx.RNN`, one per layer, under jit (and jax.grad for train).

        Where flax's equations match the reference: `OptimizedLSTMCell` (gates
        i, f, g, o from one fused GEMM per input, like cuDNN; flax's
        `LSTMCell` is the same function with eight separate GEMMs) and
        `SimpleCell` (tanh or relu). Both carry one bias (on the recurrent
        GEMM for the LSTM, the input GEMM for the simple cell) where the
        reference has two, so it is loaded with `b_ih + b_hh` and its gradient
        is both biases' gradient. flax's `GRUCell` computes another function
        (no `b_hn`), so GRU has no native row (see `_unsupported`).
        """
        jax = _jax()
        jnp = jax.numpy
        from flax import nnx

        device = jax.devices("gpu" if case.device == "cuda" else "cpu")[0]
        dtype = getattr(jnp, case.dtype)
        # flax computes in `dtype` from parameters kept in `param_dtype` (its Linear casts on use):
        # the mixed-precision policy's float32 master weights
        param_dtype = getattr(jnp, case.param_dtype)
        xs, st = (jax.device_put(jnp.asarray(x, dtype=dtype), device),
                  [jax.device_put(jnp.asarray(s, dtype=dtype), device) for s in state0])  # fmt: skip
        cells = [self._native_layer(case, weights, k, dtype, param_dtype) for k in range(case.layers)]
        # differentiate the weights only: the cells also hold RNG state (integer keys)
        graphdef, params, rest = nnx.split(nnx.List(cells), nnx.Param, ...)  # type: ignore[misc]
        params = jax.device_put(params, device)
        hp, output, loss = self._head(
            case, weights, lambda a, dtype=dtype: jax.device_put(jnp.asarray(a, dtype=dtype), device)
        )

        def forward(model: Any, xs: Any, st: Any) -> Any:
            params, hp = model
            layers = nnx.merge(graphdef, params, rest)
            finals = []
            for k, rnn in enumerate(layers):
                # flax's LSTM carry is (c, h); the reference's state is (h, c)
                carry = (st[1][k], st[0][k]) if case.cell == "lstm" else st[0][k]
                carry, xs = rnn(xs, initial_carry=carry)
                finals.append((carry[1], carry[0]) if case.cell == "lstm" else (carry,))
            return output(hp, xs), finals

        def fetch(result: Any) -> Outputs:
            ys, finals, grads = result
            canon: dict[str, Array] | None = None
            if grads is not None:
                canon = {}
                for k, g in enumerate(nnx.merge(graphdef, grads[0], rest)):
                    c = g.cell
                    bias = c.dense_h.bias if case.cell == "lstm" else c.dense_i.bias
                    db = self._to_numpy(bias.value).astype(np.float64)
                    canon |= {
                        f"weight_ih_l{k}": self._to_numpy(c.dense_i.kernel.value).T.astype(np.float64),
                        f"weight_hh_l{k}": self._to_numpy(c.dense_h.kernel.value).T.astype(np.float64),
                        f"bias_ih_l{k}": db,
                        f"bias_hh_l{k}": db,
                    }
                if grads[1]:
                    canon |= fm.unpack_head_grads({n: self._to_numpy(a) for n, a in grads[1].items()})
            return self._outputs(ys, self._stack_states([tuple(c) for c in finals]), canon)

        call, launch = self._pass_fn(case, forward, loss, (params, hp), xs, st)
        return Kernel(
            case,
            call,
            fetch,
            keep=(graphdef, params, rest),
            impl="flax nnx.RNN",
            launch=launch,
            sync=jax.block_until_ready,
        )


BACKEND = JaxBackend()
