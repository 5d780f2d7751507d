"""The backend interface and registry: one small class per framework, chosen by name.

Every backend module (`numpy.py`, `torch.py`, `tensorflow.py`, `jax.py`)
defines a `Backend` subclass with the same four methods and exports it as
`BACKEND`. Importing a backend module never imports its framework (the
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnbench.case import FRAMEWORKS, Case
from rnnbench.errors import Unsupported, UsageError
from rnnbench.reference import Array

__all__ = ["Backend", "Kernel", "Outputs", "available", "get"]


@dataclass(frozen=True)
class Outputs:
    """numpy results of one pass: `y (T,B,H)`, `state` = (h_n,) or (h_n, c_n), canonical `grads` for train."""

    y: Array
    state: tuple[Array, ...]
    grads: dict[str, Array] | None = None


@dataclass(frozen=True)
class Kernel:
    case: Case
    call: Callable[[], Any]
    fetch: Callable[[Any], Outputs]
    # framework objects to keep alive with the kernel (modules, compiled functions)
    keep: tuple[Any, ...] = field(default=(), repr=False)
    # `call` without its device synchronisation, and the synchronisation (given launch()'s result)
    launch: Callable[[], Any] | None = field(default=None, repr=False)
    sync: Callable[[Any], Any] | None = field(default=None, repr=False)


class Backend(ABC):
    """One framework. Subclasses set `name`, `module`, `modes`, `dtypes` and `native`."""

    name: str = ""
    module: str = ""  # the import name whose presence means "installed"
    modes: tuple[str, ...] = ("eager",)
    dtypes: tuple[str, ...] = ("float32",)
    native: bool = False  # has a framework RNN layer of its own

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def unsupported(self, case: Case) -> str | None:
        """Why this backend cannot build `case`, or None; never imports the framework."""
        if case.mode not in self.modes:
            return f"{self.name} has no {case.mode} mode (modes: {', '.join(self.modes)})"
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
    def gemm(self, device: str, dtype: str, n: int) -> Callable[[], Any]:
        """A synchronised zero-argument call computing one (n x n) @ (n x n) matmul: the peak probe."""

    @abstractmethod
    def _build(self, case: Case, weights: dict[str, Array], x: Array, state0: tuple[Array, ...]) -> Kernel: ...

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


def stack_states(finals: list[tuple[Any, ...]], to_numpy: Callable[[Any], Array]) -> tuple[Array, ...]:
    """Per-layer final carries -> (h_n,) or (h_n, c_n), each (L, B, H) numpy."""
    return tuple(np.stack([to_numpy(carry[j]) for carry in finals]) for j in range(len(finals[0])))
