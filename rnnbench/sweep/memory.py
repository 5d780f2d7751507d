"""How much memory a case needs at the least, and how much this machine has free.

`run` and `verify` refuse a grid whose largest case cannot fit before they
start any worker, with the case's size in the message, instead of letting a
worker die of an out-of-memory kill minutes later. The estimate is a lower
bound (the float32 inputs and weights, the float64 reference's copy of them,
its outputs and, for a train case, the per-step activations it keeps for the
backward pass), so a case it refuses cannot run here; a case it accepts may
still be too large for a framework's own buffers, which the worker reports as
that case's failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from rnnbench.case import Case
from rnnbench.errors import UsageError

__all__ = ["available_bytes", "case_bytes", "check_fits", "format_bytes"]


def case_bytes(case: Case) -> int:
    """A lower bound of the host memory that verifying `case` takes (bytes)."""
    g, h, i, t, b, n = case.spec.gates, case.hidden, case.input_size, case.seq_len, case.batch, case.layers
    weights = g * h * (i + h + 2) + (n - 1) * g * h * (2 * h + 2)
    inputs = t * b * i + 2 * n * b * h
    outputs = t * b * h * n  # every layer's sequence of hidden states
    activations = t * b * g * h * n if case.train else 0  # gate values kept for the backward pass
    # float32 copies for the framework, float64 copies for the reference
    return (4 + 8) * (weights + inputs) + 8 * (outputs + activations)


def available_bytes() -> int | None:
    """Memory available to a new process (Linux `MemAvailable`), or None where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # unreachable; keeps mypy sure of the return


def check_fits(cases: Iterable[Case], available: int | None = None) -> None:
    """UsageError naming the largest case and its size if it cannot fit in `available` bytes."""
    available = available_bytes() if available is None else available
    if available is None:
        return
    largest = max(cases, key=case_bytes, default=None)
    if largest is None:
        return
    need = case_bytes(largest)
    if need > available:
        raise UsageError(
            f"case {largest.key} needs at least {format_bytes(need)} of memory, "
            f"{format_bytes(available)} is available here; use smaller --batch/--hidden/--seq-len/--layers"
        )
