"""The backend interface and registry: one small class per framework, chosen by name.

Every backend module (`numpy.py`, `torch.py`, `tensorflow.py`, `jax.py`)
defines a `Backend` subclass and exports it as `BACKEND`. The private names
are the same in every backend, so one reads like the next:
`_build_formulation` (the shared formulations of `rnnbench.formulations`),
`_build_native` (the framework's own layer), `_pass_fn` (the zero-argument
forward or forward+gradients call around a `forward()` closure) and
`_to_numpy` (a framework tensor -> float32 numpy) and `_device_of` (where a
tensor lives, checked against the case after the verification call). `_build` (here, shared)
picks one of the two builders and owns the one place where the take-new GRU
is mapped onto a framework's keep-old layer. Importing a backend module never imports its framework (the
framework is imported inside `build`/`devices`), and `installed` asks
`importlib.util.find_spec`, so listing what is available costs nothing.

A `Kernel` is the runnable result of `build`: `call()` runs one synchronised
pass (the device has finished when it returns) and returns an opaque result;
`fetch(result)` turns that result into numpy `Outputs` (outside any timed
region). Timing engines, asv and pytest-benchmark all call `call()`.
Where a device runs asynchronously (CUDA), `launch()` is the same pass
without the synchronisation and `sync(result)` waits for it, so the timing
engine can issue `number` calls and synchronise once per sample; both are
None for backends whose `call()` is synchronous by nature (numpy).
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rnnbench.case import FRAMEWORKS, Case
from rnnbench.errors import Unsupported, UsageError
from rnnbench.formulations import pack_head, unpack_grads, unpack_head_grads
from rnnbench.reference import Array, negate_update_gate

__all__ = ["Backend", "Kernel", "Outputs", "available", "get"]


@dataclass(frozen=True)
class Outputs:
    """numpy results of one pass: `y (T,B,H)`, `state` = (h_n,) or (h_n, c_n), canonical `grads` for train."""

    y: Array
    state: tuple[Array, ...]
    grads: dict[str, Array] | None = None
    # where the framework's `y` lived ('cpu' or 'cuda'), checked against the case; None: not a framework's
    device: str | None = None


@dataclass(frozen=True)
class Kernel:
    case: Case
    call: Callable[[], Any]
    fetch: Callable[[Any], Outputs]
    # framework objects to keep alive with the kernel (modules, compiled functions)
    keep: tuple[Any, ...] = field(default=(), repr=False)
    # which implementation runs a native layer: "cudnn" or the framework's generic loop/kernel
    impl: str | None = None
    # `call` without its device synchronisation, and the synchronisation (given launch()'s result)
    launch: Callable[[], Any] | None = field(default=None, repr=False)
    sync: Callable[[Any], Any] | None = field(default=None, repr=False)


class Backend(ABC):
    """One framework. Subclasses set `name`, `module`, `compilers` and `dtypes`, and override the builders."""

    name: str = ""
    module: str = ""  # the import name whose presence means "installed"
    dtypes: tuple[str, ...] = ("float32",)
    compilers: tuple[str, ...] = ("none",)  # "none" is eager; the rest are what `compiled` can mean

    @property
    def modes(self) -> tuple[str, ...]:
        """Execution modes, from `compilers`: eager where "none" is one, compiled where another is."""
        eager = ("eager",) if "none" in self.compilers else ()
        return eager + (("compiled",) if set(self.compilers) - {"none"} else ())

    @property
    def native(self) -> bool:
        """Whether the framework has an RNN layer of its own here (the backend overrides `_build_native`)."""
        return type(self)._build_native is not Backend._build_native

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def unsupported(self, case: Case) -> str | None:
        """Why this backend cannot build `case`, or None; never imports the framework."""
        if case.mode not in self.modes:
            return f"{self.name} has no {case.mode} mode (modes: {', '.join(self.modes)})"
        if case.compiler not in self.compilers:
            return f"{self.name} has no compiler {case.compiler!r} (compilers: {', '.join(self.compilers)})"
        if case.compiler.endswith("cudagraphs") and case.device != "cuda":
            return "CUDA graphs need a CUDA device"
        if case.dtype not in self.dtypes:
            return f"{self.name} backend runs {', '.join(self.dtypes)} only"
        if case.formulation == "native" and not self.native:
            return f"{self.name} has no RNN layer of its own"
        return self._unsupported(case)

    def _unsupported(self, case: Case) -> str | None:
        return None

    @abstractmethod
    def devices(self) -> list[str]:
        """Devices usable here, e.g. ['cpu', 'cuda'] (imports the framework)."""

    @abstractmethod
    def gemm(self, device: str, dtype: str, n: int, fp32: str = "strict") -> Callable[[], Any]:
        """A synchronised zero-argument call computing one (n x n) @ (n x n) matmul: the peak probe.

        `fp32` (strict or tf32) is set explicitly, like a case's: TF and JAX default to TF32 on
        Ampere and later, which would make a float32 "peak" a TF32 one.
        """

    def _build(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        if case.formulation != "native":
            return self._build_formulation(case, weights, x, state0)
        if not (case.cell == "gru" and case.gru_update == "take_new"):
            return self._build_native(case, weights, x, state0)
        # Framework GRU layers implement keep-old only; take-new is the same function with the
        # z rows negated, and the chain rule through that negation negates their gradients back.
        kernel = self._build_native(case, negate_update_gate(case.spec, weights), x, state0)
        fetch = kernel.fetch

        def fetch_take_new(result: Any) -> Outputs:
            out = fetch(result)
            grads = negate_update_gate(case.spec, out.grads) if out.grads is not None else None
            return replace(out, grads=grads)

        return replace(kernel, fetch=fetch_take_new)

    @abstractmethod
    def _build_formulation(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        """The kernel of a `separate`/`concat`/`hoisted` case."""

    def _build_native(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        """The kernel of a `native` case (keep-old GRU weights; `_build` maps take-new)."""
        raise Unsupported(f"{self.name} has no RNN layer of its own")

    @abstractmethod
    def _to_numpy(self, t: Any) -> Array:
        """A framework tensor -> float32 numpy (outside any timed region)."""

    @abstractmethod
    def _device_of(self, t: Any) -> str:
        """Where a framework tensor lives: 'cpu' or 'cuda' (the device truth `verify` checks)."""

    def _outputs(
        self, ys: Any, state: tuple[Array, ...], grads: dict[str, Array] | None, time_major: bool = True
    ) -> Outputs:
        """numpy `Outputs` from the framework's `ys` (batch-major ones transposed), recording where `ys` lived."""
        y = self._to_numpy(ys)
        return Outputs(y if time_major else y.transpose(1, 0, 2), state, grads, self._device_of(ys))

    def _head_parts(
        self, case: Case, weights: dict[str, Array], tensor: Callable[[Array, bool], Any], batch_major: bool = False
    ) -> tuple[dict[str, Any], Any | None]:
        """The output head's parameters and one-hot targets as framework tensors; ({}, None) without a head.

        `tensor(array, trainable)` makes a framework tensor; `batch_major` lays targets out (B, T, V).
        """
        if case.head == "none":
            return {}, None
        targets = case.targets().T if batch_major else case.targets()
        onehot = np.eye(case.vocab, dtype=np.float32)[targets]
        return {n: tensor(a, True) for n, a in pack_head(weights).items()}, tensor(onehot, False)

    def _unpack_flat_grads(
        self, case: Case, params: list[dict[str, Any]], head: dict[str, Any], grads: Iterable[Any]
    ) -> dict[str, Array]:
        """Gradients listed in the order of `[*params' values, *head's values]` -> canonical names, numpy."""
        it = iter(grads)
        packed = [{n: self._to_numpy(next(it)) for n in p} for p in params]
        canon = unpack_grads(case.spec, case.formulation, packed)
        if head:
            canon |= unpack_head_grads({n: self._to_numpy(next(it)) for n in head})
        return canon

    def _stack_states(self, finals: list[tuple[Any, ...]]) -> tuple[Array, ...]:
        """Per-layer final carries -> (h_n,) or (h_n, c_n), each (L, B, H) numpy."""
        return tuple(np.stack([self._to_numpy(carry[j]) for carry in finals]) for j in range(len(finals[0])))

    def build(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel:
        """A kernel computing `case` on `x` from canonical float32 `weights` and initial state."""
        reason = self.unsupported(case)
        if reason:
            raise Unsupported(reason)
        if case.device != "cpu" and case.device not in self.devices():
            raise UsageError(f"device {case.device!r} is not available to {self.name} here (no CUDA GPU visible)")
        return self._build(case, weights, x, state0)


_MODULES = {name: f"rnnbench.backends.{name}" for name in FRAMEWORKS}


def get(name: str) -> Backend:
    """The backend called `name`; UsageError if unknown or its framework is not installed."""
    if name not in _MODULES:
        raise UsageError(f"unknown framework {name!r}; choose from {', '.join(FRAMEWORKS)}")
    backend: Backend = importlib.import_module(_MODULES[name]).BACKEND
    if not backend.installed():
        raise UsageError(f"framework {name!r} is not installed (pip install -e '.[{name}]')")
    return backend


def available() -> list[str]:
    """Frameworks installed here, found without importing them."""
    return [name for name in FRAMEWORKS if importlib.import_module(_MODULES[name]).BACKEND.installed()]
