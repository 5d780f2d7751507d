"""PyTorch backend: the formulations in eager and torch.compile mode, plus torch.nn's own layers.

`compiled` (compiler `inductor`) compiles the per-step cell function with
torch.compile once, at build, and keeps the time loop in Python: torch.compile unrolls Python loops, so compiling the
whole sequence would cost compile time proportional to seq_len (the TorchScript
fastrnns benchmarks compiled the cell the same way). Compiler
`inductor+cudagraphs` (GPU only) compiles the whole pass with
mode="reduce-overhead", so one CUDA graph replays every step. `native` is
torch.nn.RNN/GRU/LSTM (cuDNN on CUDA, oneDNN/ATen on CPU); torch.nn.GRU
implements the reset-after GRU only, and the take-new update convention is
run on it with the z rows negated, which is exactly the same function.
torch is imported inside the methods, never at module import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rnnbench import formulations as fm
from rnnbench.backends import Backend, Kernel, Outputs
from rnnbench.case import Case
from rnnbench.formulations import Ops, make_step, pack, python_scan, run_layers
from rnnbench.reference import HEAD_NAMES, Array, weight_names


@functools.cache
def _torch() -> Any:
    import torch

    # Many cases compile the same step code with different closures and shapes;
    # the default recompile limit (8) would silently fall back to eager.
    for knob in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, 4096)
    return torch


def _autocast(torch: Any, device_type: str, dtype: str) -> Any:
    """torch's mixed-precision region for one pass: GEMMs in `dtype` from float32 master weights.

    The weight-cast cache is off. With it on (autocast's default) a float32
    weight read at every time step is cast to `dtype` once per region and the
    low-precision copy is reused by every step, so autograd sums the T per-step
    weight gradients into that copy in `dtype` and only the total reaches the
    float32 weight; a bf16 running sum (8 significant bits) over a few hundred
    steps stalls. Off, every read casts afresh, each step's gradient is cast
    back to float32 and the sum over steps is float32: what JAX and TensorFlow
    do (`CastOnRead`), and what torch.compile'd steps already did (the cache
    does not exist in a graph). docs/formulations.md, "Precision".
    """
    return torch.autocast(device_type=device_type, dtype=getattr(torch, dtype), cache_enabled=False)


def _ops(torch: Any) -> Ops:
    return Ops(
        concat=lambda ts: torch.cat(list(ts), dim=-1),
        sigmoid=torch.sigmoid,
        tanh=torch.tanh,
        relu=torch.relu,
        reshape=torch.reshape,
        log_softmax=lambda a: torch.log_softmax(a, dim=-1),
        sum=torch.sum,
        scan=python_scan(torch.stack),
    )


class TorchBackend(Backend):
    name = "torch"
    module = "torch"
    dtypes = ("float32", "float16", "bfloat16")
    compilers = ("none", "inductor", "inductor+cudagraphs")

    def _unsupported(self, case: Case) -> str | None:
        if case.formulation == "native" and case.cell == "gru" and case.gru_reset == "before":
            return "torch.nn.GRU implements the reset-after GRU only"
        if case.formulation == "native" and case.cell == "lstm" and case.precision == "mixed" and case.device == "cpu":
            # torch 2.13: autocast sends nn.LSTM to oneDNN, which cannot create its fp16 primitive on the CI CPU (its
            # bf16 one builds there, a CPU with AVX512-BF16; untried on CPUs without): not offered for either
            return "torch.nn.LSTM fails under CPU autocast (oneDNN has no primitive for it)"
        return None

    def devices(self) -> list[str]:
        torch = _torch()
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]

    def gemm(self, device: str, dtype: str, n: int, fp32: str = "strict") -> Callable[[], Any]:
        torch = _torch()
        a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
        mode = Case(framework="torch", device=device, dtype=dtype, fp32=fp32)

        def call() -> Any:
            self._set_fp32(mode)  # process-wide: a case in the same worker may have changed it
            with torch.no_grad():
                out = a @ b
            if a.is_cuda:
                torch.cuda.synchronize()
            return out

        return call

    def _to_numpy(self, t: Any) -> Array:
        return np.asarray(t.detach().float().cpu().numpy())

    def _device_of(self, t: Any) -> str:
        return "cuda" if t.is_cuda else str(t.device.type)

    def _tensor(self, case: Case, a: Array, grad: bool = False) -> Any:
        """`a` on the case's device in `param_dtype` (float32 under autocast, which casts per op)."""
        torch = _torch()
        dtype = getattr(torch, case.param_dtype)
        return torch.tensor(a, device=torch.device(case.device), dtype=dtype, requires_grad=grad)

    def _set_fp32(self, case: Case) -> None:
        """Process-wide float32 matmul precision for `case` (cheap when already set)."""
        torch = _torch()
        tf32 = case.fp32 == "tf32"
        if torch.backends.cuda.matmul.allow_tf32 != tf32 or torch.backends.cudnn.allow_tf32 != tf32:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32  # cuDNN RNNs and convolutions
            torch.set_float32_matmul_precision("high" if tf32 else "highest")

    def _pass_fn(
        self, case: Case, forward: Callable[[], Any], params: Sequence[Any], loss: Callable[[Any], Any]
    ) -> tuple[Callable[[], Any], Callable[[], Any], Callable[[Any], Any]]:
        """(call, launch, sync): one synchronised call of `forward()` without autograd, or forward plus
        d loss(y) / d params; `launch` is the same without the device synchronisation, `sync` waits for it.

        Mixed precision runs the forward under autocast and the backward outside it, as torch's AMP recipe does,
        with autocast's weight-cast cache off (see `_autocast`).
        """
        torch = _torch()
        device = torch.device(case.device)
        self._set_fp32(case)
        run = forward
        if case.precision == "mixed":

            def run() -> Any:
                with _autocast(torch, device.type, case.dtype):
                    return forward()

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        if case.train:

            def launch() -> Any:
                self._set_fp32(case)  # another kernel in this process may have changed it
                ys, state = run()
                return ys, state, torch.autograd.grad(loss(ys), params)

        else:

            def launch() -> Any:
                self._set_fp32(case)
                with torch.no_grad():
                    ys, state = run()
                return ys, state, None

        def call() -> Any:
            out = launch()
            sync()
            return out

        return call, launch, lambda _: sync()

    def _build_formulation(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        torch = _torch()
        xs = self._tensor(case, x)
        st = [self._tensor(case, s) for s in state0]
        params = [
            {n: self._tensor(case, a, case.train) for n, a in p.items()}
            for p in pack(case.spec, case.formulation, weights, case.layers)
        ]
        ops = _ops(torch)
        hp, onehot = self._head_parts(case, weights, lambda a, grad: self._tensor(case, a, grad and case.train))
        shape = (case.seq_len, case.batch, case.input_size, case.hidden)
        steps = [make_step(ops, case.spec, case.formulation, p, case.hidden) for p in params]
        if case.compiler == "inductor":  # once, here: a new torch.compile wrapper per call costs far more than a step
            steps = [torch.compile(step, dynamic=False) for step in steps]

        def forward() -> Any:
            ys, finals = run_layers(ops, case.spec, case.formulation, params, xs, st, shape, steps)
            return (fm.head_logits(ops, ys, hp) if hp else ys), finals

        if case.compiler == "inductor+cudagraphs":
            # One CUDA graph must cover the whole pass: replaying a per-step graph would overwrite
            # the previous step's outputs. Compile time then grows with seq_len (the loop is unrolled).
            forward = torch.compile(forward, dynamic=False, mode="reduce-overhead")

        def fetch(result: Any) -> Outputs:
            ys, finals, grads = result
            canon = None
            if grads is not None:
                canon = self._unpack_flat_grads(case, params, hp, grads)
            return self._outputs(ys, self._stack_states(finals), canon)

        flat = [t for p in params for t in p.values()] + list(hp.values())
        call, launch, sync = self._pass_fn(case, forward, flat, fm.make_loss(ops, onehot))
        return Kernel(case, call, fetch, launch=launch, sync=sync)

    def _build_native(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        torch = _torch()
        cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[case.cell]
        extra = {"nonlinearity": case.nonlinearity} if case.cell == "rnn" else {}
        module = cls(case.input_size, case.hidden, case.layers, **extra)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items() if k not in HEAD_NAMES})
        module = module.to(device=torch.device(case.device), dtype=getattr(torch, case.param_dtype))
        module.requires_grad_(case.train)
        run = module
        if case.compiler != "none":
            mode = "reduce-overhead" if case.compiler == "inductor+cudagraphs" else None
            run = torch.compile(module, dynamic=False, mode=mode)
        xs = self._tensor(case, x)
        st = [self._tensor(case, s) for s in state0]
        hx = tuple(st) if case.cell == "lstm" else st[0]
        names = weight_names(case.layers)
        params = [dict(module.named_parameters())[n] for n in names]
        ops = _ops(torch)
        hp, onehot = self._head_parts(case, weights, lambda a, grad: self._tensor(case, a, grad and case.train))

        def forward() -> Any:
            ys, state = run(xs, hx)
            return (fm.head_logits(ops, ys, hp) if hp else ys), state

        def fetch(result: Any) -> Outputs:
            ys, state, grads = result
            states = tuple(self._to_numpy(s) for s in (state if case.cell == "lstm" else (state,)))
            canon = None
            if grads is not None:
                canon = {n: self._to_numpy(g).astype(np.float64) for n, g in zip(names, grads)}
                if hp:
                    canon |= fm.unpack_head_grads({n: self._to_numpy(g) for n, g in zip(hp, grads[len(names) :])})
            return self._outputs(ys, states, canon)

        # torch.nn's RNNs run cuDNN on CUDA whenever cuDNN is enabled; on CPU, ATen's kernels (oneDNN for some)
        cudnn = case.device == "cuda" and torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
        impl = "cudnn" if cudnn else "aten"
        call, launch, sync = self._pass_fn(case, forward, params + list(hp.values()), fm.make_loss(ops, onehot))
        return Kernel(case, call, fetch, keep=(module, run), impl=impl, launch=launch, sync=sync)


BACKEND = TorchBackend()
