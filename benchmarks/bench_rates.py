"""asv: rates rather than times, GFLOP/s per case and the concat/separate time ratio.

`track_*` benchmarks time a few synchronised calls themselves (median of
`asvsuite.TRACK_CALLS` samples from the timing engine's interleaved mode,
`asvsuite.median_seconds`) inside one process, after the kernels were built
and verified in `setup`.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from asv_runner.benchmarks.mark import skip_for_params

from rnnbench import asvsuite
from rnnbench.backends import Kernel
from rnnbench.case import PASSES, Case


class GFlops:
    """Useful GFLOP/s (`Case.flops`, the same FLOPs for every formulation) of each case."""

    params: ClassVar[list[list[Any]]] = [
        asvsuite.frameworks(),
        asvsuite.formulations(),
        asvsuite.rate_cells(),
        asvsuite.rate_passes(),
        asvsuite.devices(),
        asvsuite.shapes(),
    ]
    param_names: ClassVar[list[str]] = ["framework", "formulation", "cell", "pass", "device", "shape"]
    rounds = 1
    timeout = 300
    kernel: Kernel

    def setup(self, framework: str, formulation: str, cell: str, pass_: str, device: str, shape: str) -> None:
        self.kernel = asvsuite.verified_kernel(
            asvsuite.make_case(framework, formulation, device, shape, cell=cell, pass_=pass_)
        )

    def track_gflops(self, *params: str) -> float:
        (seconds,) = asvsuite.median_seconds(self.kernel.call)
        return self.kernel.case.flops / seconds / 1e9

    track_gflops.unit = "GFLOP/s"  # type: ignore[attr-defined]


def _ratio_case(framework: str, cell: str, pass_: str, device: str, shape: str, formulation: str = "concat") -> Case:
    return asvsuite.make_case(framework, formulation, device, shape, cell=cell, pass_=pass_)


class ConcatVsSeparate:
    """Median time of `concat` over median time of `separate`, same case otherwise: below 1, concat is faster."""

    params: ClassVar[list[list[Any]]] = [
        asvsuite.frameworks(), asvsuite.ratio_cells(), list(PASSES), asvsuite.devices(), asvsuite.shapes(),
    ]  # fmt: skip
    param_names: ClassVar[list[str]] = ["framework", "cell", "pass", "device", "shape"]
    rounds = 1
    timeout = 300
    concat: Kernel
    separate: Kernel

    def setup(self, framework: str, cell: str, pass_: str, device: str, shape: str) -> None:
        case = _ratio_case(framework, cell, pass_, device, shape)
        self.concat = asvsuite.verified_kernel(case)
        self.separate = asvsuite.verified_kernel(case.replace(formulation="separate"))

    # numpy's train pass: skipped without starting a setup
    @skip_for_params(asvsuite.unsupported_params(itertools.product(*params), _ratio_case))
    def track_concat_over_separate(self, *params: str) -> float:
        concat, separate = asvsuite.median_seconds(self.concat.call, self.separate.call)
        return concat / separate

    track_concat_over_separate.unit = "time ratio concat/separate"  # type: ignore[attr-defined]
