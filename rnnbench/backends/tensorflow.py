"""TensorFlow backend: the formulations in eager and tf.function mode, plus Keras's own layers.

Eager runs the time loop in Python, op by op. `compiled` wraps the whole pass
in tf.function, where the loop becomes a tf.while_loop (graph size does not
grow with seq_len). `native` is keras.layers.SimpleRNN/GRU/LSTM (Keras 3 on
the TensorFlow backend; cuDNN on CUDA where Keras can use it), with
`reset_after` chosen from the case; Keras's GRU gate order is z, r, h and its
kernels are transposed, which `_keras_weights` maps. Keras layers are
batch-major, so inputs are transposed once at build time, outside the clock.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from rnnbench import formulations as fm
from rnnbench.backends import Backend, Kernel, Outputs
from rnnbench.case import Case
from rnnbench.formulations import Ops, Step, pack, python_scan, run_layers
from rnnbench.reference import Array, CellSpec


@functools.cache
def _tf() -> Any:
    # TF's C++ logging floods a sweep's output with grappler notes about graphs that run fine
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    # An op that cannot run on the requested device must fail, not silently move to the CPU.
    tf.config.set_soft_device_placement(False)

    # Grow GPU memory on demand so TF never starves another framework's process.
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised
            pass
    return tf


def _ops(tf: Any) -> Ops:
    def scan(step: Step, carry: tuple[Any, ...], xs: Any) -> tuple[tuple[Any, ...], Any]:
        if tf.executing_eagerly():
            return python_scan(tf.stack)(step, carry, xs)
        steps = int(xs.shape[0])
        out = tf.TensorArray(xs.dtype, size=steps)

        def body(t: Any, carry: tuple[Any, ...], out: Any) -> Any:
            carry, y = step(carry, xs[t])
            return t + 1, carry, out.write(t, y)

        # maximum_iterations: XLA (jit_compile=True) can only differentiate a bounded loop
        _, carry, out = tf.while_loop(
            lambda t, *_: t < steps, body, (tf.constant(0), carry, out), maximum_iterations=steps
        )
        return tuple(carry), out.stack()

    return Ops(
        concat=lambda ts: tf.concat(list(ts), axis=-1),
        sigmoid=tf.sigmoid,
        tanh=tf.tanh,
        relu=tf.nn.relu,
        reshape=tf.reshape,
        log_softmax=tf.nn.log_softmax,
        sum=tf.reduce_sum,
        scan=scan,
    )


def _keras_weights(spec: CellSpec, weights: dict[str, Array], k: int) -> list[Array]:
    """Canonical layer-k weights -> [kernel, recurrent_kernel, bias] as Keras stores them."""
    w, u = weights[f"weight_ih_l{k}"], weights[f"weight_hh_l{k}"]
    bi, bh = weights[f"bias_ih_l{k}"], weights[f"bias_hh_l{k}"]
    if spec.cell != "gru":  # same gate order (i, f, g/c, o); one bias
        return [w.T, u.T, bi + bh]
    hid = u.shape[1]
    zrh = np.r_[hid : 2 * hid, 0:hid, 2 * hid : 3 * hid]  # torch r,z,n -> keras z,r,h
    if spec.gru_reset == "after":
        bias = np.stack([bi[zrh], bh[zrh]])
    else:  # U_n multiplies r*h but b_hn is added outside, so the two biases merge
        bias = (bi + bh)[zrh]
    return [w[zrh].T, u[zrh].T, bias]


def _canonical_grads(spec: CellSpec, grads: list[list[Array]]) -> dict[str, Array]:
    """Inverse of `_keras_weights` for gradients (a merged bias feeds both canonical biases)."""
    out: dict[str, Array] = {}
    for k, (dkern, drec, dbias) in enumerate(grads):
        if spec.cell == "gru":
            hid = drec.shape[0]
            rzn = np.r_[hid : 2 * hid, 0:hid, 2 * hid : 3 * hid]  # the permutation is its own inverse
            dkern, drec = dkern[:, rzn], drec[:, rzn]
            dbias = dbias[..., rzn]
        dbi, dbh = (dbias[0], dbias[1]) if dbias.ndim == 2 else (dbias, dbias)
        out |= {f"weight_ih_l{k}": dkern.T, f"weight_hh_l{k}": drec.T, f"bias_ih_l{k}": dbi, f"bias_hh_l{k}": dbh}
    return out


class TensorflowBackend(Backend):
    name = "tensorflow"
    module = "tensorflow"
    dtypes = ("float32", "float16", "bfloat16")
    compilers = ("none", "tf.function", "tf.function+xla")

    def devices(self) -> list[str]:
        tf = _tf()
        return ["cpu", "cuda"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def gemm(self, device: str, dtype: str, n: int, fp32: str = "strict") -> Callable[[], Any]:
        tf = _tf()
        name = "/GPU:0" if device == "cuda" else "/CPU:0"
        mode = Case(framework="tensorflow", device=device, dtype=dtype, fp32=fp32)
        with tf.device(name):
            a, b = (tf.cast(tf.random.normal((n, n)), getattr(tf, dtype)) for _ in range(2))
        sync_devices = getattr(tf.test.experimental, "sync_devices", None)

        def call() -> Any:
            self._set_fp32(mode)  # process-wide: a case in the same worker may have changed it
            with tf.device(name):
                out = tf.matmul(a, b)
            if device == "cuda" and sync_devices is not None:
                sync_devices()
            return out

        return call

    def _to_numpy(self, t: Any) -> Array:
        # numpy cannot convert TF's bfloat16 directly with dtype=; go through astype
        return np.asarray(t.numpy().astype(np.float32))

    def _device_of(self, t: Any) -> str:
        # e.g. '/job:localhost/replica:0/task:0/device:GPU:0'
        kind = t.device.rsplit("device:", 1)[-1].split(":")[0]
        return {"GPU": "cuda", "CPU": "cpu"}.get(kind, kind.lower())

    def _device(self, case: Case) -> str:
        return "/GPU:0" if case.device == "cuda" else "/CPU:0"

    def _head(self, case: Case, weights: dict[str, Array], batch_major: bool) -> tuple[dict[str, Any], Any, Any]:
        """Head variables (param_dtype), the logits function and the loss, on the case's device."""
        tf = _tf()
        dtype, param_dtype = getattr(tf, case.dtype), getattr(tf, case.param_dtype)
        ops = _ops(tf)

        def tensor(a: Array, trainable: bool) -> Any:
            return tf.Variable(tf.cast(a, param_dtype)) if trainable else tf.cast(a, dtype)

        with tf.device(self._device(case)):
            hp, onehot = self._head_parts(case, weights, tensor, batch_major)
        read = fm.CastOnRead(hp, lambda v: tf.cast(v, dtype)) if case.precision == "mixed" else hp

        def output(ys: Any) -> Any:
            return fm.head_logits(ops, ys, read) if hp else ys

        return hp, output, fm.make_loss(ops, onehot)

    def _set_fp32(self, case: Case) -> None:
        """Process-wide float32 matmul precision for `case` (TF's default is TF32 on Ampere and later)."""
        tf = _tf()
        tf32 = case.fp32 == "tf32"
        if tf.config.experimental.tensor_float_32_execution_enabled() != tf32:
            tf.config.experimental.enable_tensor_float_32_execution(tf32)

    def _pass_fn(
        self, case: Case, forward: Callable[[], Any], variables: Sequence[Any], loss: Callable[[Any], Any]
    ) -> Callable[[], Any]:
        """`forward()` alone, or under a GradientTape with d loss(y) / d variables: what tf.function wraps."""
        tf = _tf()

        def body() -> Any:
            if not case.train:
                ys, finals = forward()
                return ys, finals, []
            with tf.GradientTape() as tape:
                ys, finals = forward()
                value = loss(ys)
            return ys, finals, tape.gradient(value, variables)

        return body

    def _kernel(
        self,
        case: Case,
        forward: Callable[[], Any],
        variables: Sequence[Any],
        loss: Callable[[Any], Any],
        fetch: Callable[[Any], Outputs],
        keep: tuple[Any, ...],
    ) -> Kernel:
        """A synchronised call on the case's device, through tf.function in `compiled` mode."""
        tf = _tf()
        device = self._device(case)
        body = self._pass_fn(case, forward, variables, loss)
        fn = body
        if case.compiler != "none":  # XLA only where asked: jit_compile=True
            fn = tf.function(body, jit_compile=case.compiler == "tf.function+xla")
        sync_devices = getattr(tf.test.experimental, "sync_devices", None)

        self._set_fp32(case)

        def launch() -> Any:
            self._set_fp32(case)  # another kernel in this process may have changed it
            with tf.device(device):
                return fn()

        def sync() -> None:
            if case.device == "cuda" and sync_devices is not None:
                sync_devices()

        def call() -> Any:
            out = launch()
            sync()
            return out

        return Kernel(case, call, fetch, keep=(fn, *keep), launch=launch, sync=lambda _: sync())

    def _build_formulation(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        tf = _tf()
        dtype, param_dtype = getattr(tf, case.dtype), getattr(tf, case.param_dtype)
        packed = pack(case.spec, case.formulation, weights, case.layers)
        with tf.device(self._device(case)):
            params = [{n: tf.Variable(tf.cast(a, param_dtype), name=n) for n, a in p.items()} for p in packed]
            xs = tf.cast(x, dtype)
            st = [tf.cast(s, dtype) for s in state0]
        ops = _ops(tf)
        shape = (case.seq_len, case.batch, case.input_size, case.hidden)
        # mixed: float32 variables cast to the compute dtype where they are read, as Keras's policy does
        cast = (lambda v: tf.cast(v, dtype)) if case.precision == "mixed" else None

        hp, output, loss = self._head(case, weights, batch_major=False)

        def forward() -> Any:
            ys, finals = run_layers(ops, case.spec, case.formulation, params, xs, st, shape, cast=cast)
            return output(ys), finals

        def fetch(result: Any) -> Outputs:
            ys, finals, grads = result
            canon = None
            if case.train:
                canon = self._unpack_flat_grads(case, params, hp, grads)
            return self._outputs(ys, self._stack_states(finals), canon)

        flat = [v for p in params for v in p.values()] + list(hp.values())
        return self._kernel(case, forward, flat, loss, fetch, keep=(params, hp))

    def _build_native(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        tf = _tf()
        import keras

        spec = case.spec
        dtype = getattr(tf, case.dtype)
        # Keras falls back from cuDNN silently; asking for it where it qualifies (GRU/LSTM with default
        # activations, reset-after GRU, on a GPU) makes a fallback an error, so `impl` is the truth.
        # SimpleRNN has no cuDNN path at all.
        cudnn = case.device == "cuda" and spec.cell != "rnn" and not (spec.cell == "gru" and spec.gru_reset == "before")
        layers = []
        with tf.device(self._device(case)):
            for k in range(case.layers):
                # a mixed policy keeps float32 variables and computes in the low dtype
                policy = f"mixed_{case.dtype}" if case.precision == "mixed" else case.dtype
                kw: dict[str, Any] = {"return_sequences": True, "return_state": True, "dtype": policy}
                # the weights are overwritten below; Keras's orthogonal init has no bfloat16 QR
                kw |= {"kernel_initializer": "zeros", "recurrent_initializer": "zeros"}
                if spec.cell == "rnn":
                    layer = keras.layers.SimpleRNN(case.hidden, activation=spec.nonlinearity, **kw)
                elif spec.cell == "gru":
                    layer = keras.layers.GRU(case.hidden, reset_after=spec.gru_reset == "after", use_cudnn=cudnn, **kw)
                else:
                    layer = keras.layers.LSTM(case.hidden, use_cudnn=cudnn, **kw)
                layer.build((case.batch, case.seq_len, case.input_size if k == 0 else case.hidden))
                layer.set_weights(_keras_weights(spec, weights, k))
                layers.append(layer)
            xb = tf.cast(np.ascontiguousarray(x.transpose(1, 0, 2)), dtype)  # batch-major, outside the clock
            st = [tf.cast(s, dtype) for s in state0]
        hp, output, loss = self._head(case, weights, batch_major=True)
        variables = [w for layer in layers for w in layer.trainable_weights] + list(hp.values())

        def forward() -> Any:
            seq, finals = xb, []
            for k, layer in enumerate(layers):
                seq, *state = layer(seq, initial_state=[s[k] for s in st])
                finals.append(tuple(state))
            return output(seq), finals

        def fetch(result: Any) -> Outputs:
            seq, finals, grads = result
            canon = None
            if case.train:
                g = [self._to_numpy(t).astype(np.float64) for t in grads]
                canon = _canonical_grads(spec, [g[3 * k : 3 * k + 3] for k in range(case.layers)])
                if hp:
                    canon |= fm.unpack_head_grads(dict(zip(hp, g[3 * case.layers :])))
            return self._outputs(seq, self._stack_states(finals), canon, time_major=False)

        kernel = self._kernel(case, forward, variables, loss, fetch, keep=(layers, hp))
        return replace(kernel, impl="cudnn" if cudnn else "generic loop")


BACKEND = TensorflowBackend()
