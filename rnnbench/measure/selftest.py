"""The self-test switch: a known slowdown injected into chosen formulations, to measure verdicts' power.

`RNNBENCH_SELFTEST_SLOWDOWN=FORMULATION:FRACTION[,FORMULATION:FRACTION...]`
(e.g. `concat:0.2`) makes every worker that sees it follow each call of a
matching case's kernel with a busy-wait of FRACTION of that call's own
duration: a real, proportional slowdown of the timed work, with nothing else
changed. `rnnbench doctor --preset P` sets it for the slowed sweeps of its
calibration (and for the NEW side of its `ab` calibration); nothing else
does, and a person sets it only to test the tools. The worker applies it in
one line (`sweep/worker.py`, right after building the kernel).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnbench.backends import Kernel
    from rnnbench.case import Case

__all__ = ["ENV", "apply", "parse", "spec"]

ENV = "RNNBENCH_SELFTEST_SLOWDOWN"


def parse(text: str) -> dict[str, float]:
    """'concat:0.2,native:0.1' -> {'concat': 0.2, 'native': 0.1}; ValueError on anything else."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, frac = part.partition(":")
        value = float(frac)
        if not name or not 0 < value < 10:
            raise ValueError(f"{ENV}: expected FORMULATION:FRACTION, got {part!r}")
        out[name] = value
    return out


def spec(formulation: str, fraction: float) -> dict[str, str]:
    """The environment that slows `formulation` by `fraction` in workers started with it."""
    return {ENV: f"{formulation}:{fraction:g}"}


def apply(case: Case, kernel: Kernel) -> Kernel:
    """`kernel`, slowed as the switch asks for `case`'s formulation (unchanged when the switch is unset)."""
    fraction = parse(os.environ.get(ENV, "")).get(case.formulation, 0.0)
    if not fraction:
        return kernel
    call, clock = kernel.call, time.perf_counter

    def slowed() -> Any:
        t0 = clock()
        result = call()
        end = clock() + (clock() - t0) * fraction
        while clock() < end:
            pass
        return result

    return replace(kernel, call=slowed)
