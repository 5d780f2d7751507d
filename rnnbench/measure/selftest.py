"""The self-test switch: a known slowdown injected into chosen formulations, to measure verdicts' power.

`RNNBENCH_SELFTEST_SLOWDOWN=FORMULATION:FACTOR[,FORMULATION:FACTOR...]` (or
`all:FACTOR`; e.g. `concat:1.2`) makes every worker that sees it follow each
call of a matching case's kernel with a busy-wait, so the call takes FACTOR
times as long: a real, proportional slowdown of the timed work, with nothing
else changed (a sleep would free the core and time less reliably). The
format is the one the pipeline's planted-regression tests use.
`rnnbench doctor --preset P` sets it for the slowed sweep of its calibration
(and for the NEW side of its `ab` calibration); a person sets it only to test
the tools, never for real measurements. The worker applies it in one line
(`sweep/worker.py`, right after building the kernel).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnbench.backends import Kernel
    from rnnbench.case import Case

__all__ = ["ENV", "apply", "factor", "parse", "spec"]

ENV = "RNNBENCH_SELFTEST_SLOWDOWN"


def parse(text: str) -> dict[str, float]:
    """'concat:1.2,native:1.1' -> {'concat': 1.2, 'native': 1.1}; ValueError on anything else."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition(":")
        try:
            f = float(value)
        except ValueError:
            f = 0.0
        if not name or not 1 <= f < 100:
            raise ValueError(f"{ENV}: expected FORMULATION:FACTOR with FACTOR >= 1, got {part!r}")
        out[name] = f
    return out


def factor(formulation: str, text: str | None = None) -> float:
    """How many times slower the switch makes `formulation` (1.0: not at all)."""
    table = parse(os.environ.get(ENV, "") if text is None else text)
    return table.get(formulation, table.get("all", 1.0))


def spec(formulation: str, slowdown: float) -> dict[str, str]:
    """The environment that slows `formulation` by `slowdown` (0.2: 20% longer) in workers started with it."""
    return {ENV: f"{formulation}:{1 + slowdown:g}"}


def apply(case: Case, kernel: Kernel) -> Kernel:
    """`kernel`, slowed as the switch asks for `case`'s formulation (unchanged when the switch is unset)."""
    f = factor(case.formulation)
    if f == 1.0:
        return kernel
    call, clock = kernel.call, time.perf_counter

    def slowed() -> Any:
        start = clock()
        result = call()
        until = start + (clock() - start) * f
        while clock() < until:
            pass
        return result

    return replace(kernel, call=slowed)
