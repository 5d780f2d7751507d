"""asv: the cell sweeps, every formulation of the RNN, GRU and LSTM cell on every framework, forward and train.

One class per cell. `setup` builds the case through rnnbench and verifies it
against the numpy reference before anything is timed; a missing framework or
device, or a case the backend cannot build, is skipped there.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from asv_runner.benchmarks.mark import skip_for_params

from rnnbench import asvsuite
from rnnbench.backends import Kernel
from rnnbench.case import Case


def _params(cell: str) -> list[list[str]]:
    return [
        asvsuite.frameworks(),
        asvsuite.formulations(),
        asvsuite.cell_variants(cell),
        asvsuite.devices(),
        asvsuite.shapes(),
    ]


def _train_case(framework: str, formulation: str, cell: str, device: str, shape: str) -> Case:
    return asvsuite.make_case(framework, formulation, device, shape, cell=cell, pass_="train")


def _no_train(cell: str) -> list[tuple[object, ...]]:
    # numpy has no autograd: its train cases are skipped without a setup, while
    # the same parameter tuples still time the forward pass.
    return asvsuite.unsupported_params(itertools.product(*_params(cell)), _train_case)


class _CellSweep:
    param_names: ClassVar[list[str]] = ["framework", "formulation", "cell", "device", "shape"]
    rounds = 1  # one process per parameter tuple: keeps a run over several commits short
    timeout = 300
    forward: Kernel
    train: Kernel | None

    def setup(self, framework: str, formulation: str, cell: str, device: str, shape: str) -> None:
        forward = asvsuite.make_case(framework, formulation, device, shape, cell=cell, pass_="forward")
        self.forward = asvsuite.verified_kernel(forward)  # NotImplementedError: asv skips the tuple
        train = forward.replace(pass_="train")
        # where train cannot be built, time_train is skipped by skip_for_params and never reads this
        self.train = None if asvsuite.unsupported(train) else asvsuite.verified_kernel(train)

    def time_forward(self, *params: str) -> None:
        self.forward.call()

    def time_train(self, *params: str) -> None:
        assert self.train is not None
        self.train.call()


class RNNCell(_CellSweep):
    params: ClassVar[list[list[Any]]] = _params("rnn")
    time_train = skip_for_params(_no_train("rnn"))(_CellSweep.time_train)


class GRUCell(_CellSweep):
    params: ClassVar[list[list[Any]]] = _params("gru")
    time_train = skip_for_params(_no_train("gru"))(_CellSweep.time_train)


class LSTMCell(_CellSweep):
    params: ClassVar[list[list[Any]]] = _params("lstm")
    time_train = skip_for_params(_no_train("lstm"))(_CellSweep.time_train)
