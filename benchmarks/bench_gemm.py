"""asv: the peak GEMM each framework reaches here, the ceiling the RNN GFLOP/s are read against.

One n x n @ n x n matmul per call, from `Backend.gemm(device, dtype, n)`
(skipped where the device or dtype is not available to that backend).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rnnbench import asvsuite


class PeakGEMM:
    params: ClassVar[list[list[Any]]] = [
        asvsuite.frameworks(modes=False),
        asvsuite.devices(),
        ["float32"],
        asvsuite.gemm_sizes(),
    ]
    param_names: ClassVar[list[str]] = ["framework", "device", "dtype", "n"]
    rounds = 1
    timeout = 300
    call: Callable[[], Any]

    def setup(self, framework: str, device: str, dtype: str, n: int) -> None:
        self.call = asvsuite.gemm_call(framework, device, dtype, n)
        self.n = n

    def time_matmul(self, *params: object) -> None:
        self.call()

    def track_gflops(self, *params: object) -> float:
        (seconds,) = asvsuite.median_seconds(self.call)
        return 2 * self.n**3 / seconds / 1e9

    track_gflops.unit = "GFLOP/s"  # type: ignore[attr-defined]
