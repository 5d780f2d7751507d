"""asv: stacked LSTM layers, time and peak memory of the train pass as depth grows, per formulation.

Layer k > 0 reads layer k-1's output sequence; every formulation of the
stack is verified against the numpy reference in `setup`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rnnbench import asvsuite
from rnnbench.backends import Kernel


class StackedLayers:
    params: ClassVar[list[list[Any]]] = [
        asvsuite.frameworks(), asvsuite.formulations(), asvsuite.layer_counts(), asvsuite.devices(),
        asvsuite.shapes(),
    ]  # fmt: skip
    param_names: ClassVar[list[str]] = ["framework", "formulation", "layers", "device", "shape"]
    rounds = 1
    timeout = 300
    train: Kernel

    def setup(self, framework: str, formulation: str, layers: int, device: str, shape: str) -> None:
        # numpy has no train pass: NotImplementedError here, so asv skips it
        case = asvsuite.make_case(framework, formulation, device, shape, cell="lstm", pass_="train", layers=layers)
        self.train = asvsuite.verified_kernel(case)

    def time_train(self, *params: object) -> None:
        self.train.call()

    def peakmem_train(self, *params: object) -> None:
        # asv reports the process's peak resident memory after this call:
        # framework, weights, activations kept for backward and gradients
        self.train.call()
