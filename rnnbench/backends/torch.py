"""PyTorch backend: the formulations in eager and torch.compile mode, plus torch.nn's own layers.

`compiled` compiles the per-step cell function with torch.compile and keeps
the time loop in Python: torch.compile unrolls Python loops, so compiling the
whole sequence would cost compile time proportional to seq_len (the TorchScript
fastrnns benchmarks compiled the cell the same way). `native` is
torch.nn.RNN/GRU/LSTM (cuDNN on CUDA, oneDNN/ATen on CPU); torch.nn.GRU
implements the reset-after GRU only, and the take-new update convention is
run on it with the z rows negated, which is exactly the same function.
torch is imported inside the methods, never at module import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from rnnbench.backends import Backend, Kernel, Outputs, stack_states
from rnnbench.case import Case
from rnnbench.formulations import Ops, Step, pack, run_layers, unpack_grads
from rnnbench.reference import Array, negate_update_gate, weight_names


@functools.cache
def _torch() -> Any:
    import torch

    # Many cases compile the same step code with different closures and shapes;
    # the default recompile limit (8) would silently fall back to eager.
    for knob in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, 4096)
    return torch


def _ops(torch: Any) -> Ops:
    def scan(step: Step, carry: tuple[Any, ...], xs: Any) -> tuple[tuple[Any, ...], Any]:
        ys = []
        for t in range(xs.shape[0]):
            carry, y = step(carry, xs[t])
            ys.append(y)
        return carry, torch.stack(ys)

    return Ops(
        concat=lambda ts: torch.cat(list(ts), dim=-1),
        sigmoid=torch.sigmoid,
        tanh=torch.tanh,
        relu=torch.relu,
        reshape=torch.reshape,
        scan=scan,
    )


def _numpy(t: Any) -> Array:
    return np.asarray(t.detach().float().cpu().numpy())


class TorchBackend(Backend):
    name = "torch"
    module = "torch"
    modes = ("eager", "compiled")
    dtypes = ("float32", "float16", "bfloat16")
    native = True

    def _unsupported(self, case: Case) -> str | None:
        if case.formulation == "native" and case.cell == "gru" and case.gru_reset == "before":
            return "torch.nn.GRU implements the reset-after GRU only"
        return None

    def devices(self) -> list[str]:
        torch = _torch()
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]

    def gemm(self, device: str, dtype: str, n: int) -> Callable[[], Any]:
        torch = _torch()
        a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype)) for _ in range(2))

        def call() -> Any:
            with torch.no_grad():
                out = a @ b
            if a.is_cuda:
                torch.cuda.synchronize()
            return out

        return call

    def _build(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        torch = _torch()
        device = torch.device(case.device)
        dtype = getattr(torch, case.dtype)

        def sync() -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        def tensor(a: Array, grad: bool = False) -> Any:
            return torch.tensor(a, device=device, dtype=dtype, requires_grad=grad)

        xs = tensor(x)
        st = [tensor(s) for s in state0]
        if case.formulation == "native":
            return self._build_native(case, weights, xs, st, sync)

        params = [
            {n: tensor(a, case.train) for n, a in p.items()}
            for p in pack(case.spec, case.formulation, weights, case.layers)
        ]
        flat = [t for p in params for t in p.values()]
        ops = _ops(torch)
        shape = (case.seq_len, case.batch, case.input_size, case.hidden)
        wrapper = (lambda step: torch.compile(step, dynamic=False)) if case.mode == "compiled" else None

        def forward() -> Any:
            return run_layers(ops, case.spec, case.formulation, params, xs, st, shape, wrapper)

        if case.train:

            def launch() -> Any:
                ys, finals = forward()
                return ys, finals, torch.autograd.grad(ys.sum(), flat)

        else:

            def launch() -> Any:
                with torch.no_grad():
                    return forward()

        def call() -> Any:
            out = launch()
            sync()
            return out

        def fetch(result: Any) -> Outputs:
            ys, finals = result[0], result[1]
            grads = None
            if case.train:
                it = iter(result[2])
                packed = [{n: _numpy(next(it)) for n in p} for p in params]
                grads = unpack_grads(case.spec, case.formulation, packed)
            return Outputs(_numpy(ys), stack_states(finals, _numpy), grads)

        return Kernel(case, call, fetch, launch=launch, sync=lambda _: sync())

    def _build_native(self, case: Case, weights: dict[str, Array], xs: Any, st: list[Any], sync: Any) -> Kernel:
        torch = _torch()
        take_new = case.cell == "gru" and case.gru_update == "take_new"
        if take_new:
            weights = negate_update_gate(case.spec, weights)
        cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[case.cell]
        extra = {"nonlinearity": case.nonlinearity} if case.cell == "rnn" else {}
        module = cls(case.input_size, case.hidden, case.layers, **extra)
        module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        module = module.to(device=xs.device, dtype=xs.dtype)
        module.requires_grad_(case.train)
        run = torch.compile(module, dynamic=False) if case.mode == "compiled" else module
        hx = tuple(st) if case.cell == "lstm" else st[0]
        names = weight_names(case.layers)
        params = [dict(module.named_parameters())[n] for n in names]

        if case.train:

            def launch() -> Any:
                ys, state = run(xs, hx)
                return ys, state, torch.autograd.grad(ys.sum(), params)

        else:

            def launch() -> Any:
                with torch.no_grad():
                    ys, state = run(xs, hx)
                return ys, state, None

        def call() -> Any:
            out = launch()
            sync()
            return out

        def fetch(result: Any) -> Outputs:
            ys, state, grads = result
            states = tuple(_numpy(s) for s in (state if case.cell == "lstm" else (state,)))
            canon = None
            if grads is not None:
                canon = {n: _numpy(g).astype(np.float64) for n, g in zip(names, grads)}
                if take_new:  # chain rule through the z-row negation
                    canon = negate_update_gate(case.spec, canon)
            return Outputs(_numpy(ys), states, canon)

        return Kernel(case, call, fetch, keep=(module, run), launch=launch, sync=lambda _: sync())


BACKEND = TorchBackend()
