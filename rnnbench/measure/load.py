"""Is the machine busy? The load average and CPU steal around each case, and the run-start warning.

A timing taken while another process holds the cores is not the kernel's
time: with one OpenMP thread per core, a single descheduled thread makes every
barrier wait for it (0.5 ms calls turn into 500 ms). The engine flags such
samples (`timing.stall_count`); this module records the cause beside them:
the 1-minute load average before and after a case, and the share of CPU time
the hypervisor stole during it (`/proc/stat`'s `steal` column, Linux only;
None where unreadable). `busy_warning` compares free cores with `--threads`
before a run starts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadSample", "busy_warning", "load_fields", "sample"]

_PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class LoadSample:
    """One reading: 1-minute load average and the aggregate CPU jiffies (total, steal) where readable."""

    load1: float | None
    total: int | None
    steal: int | None


def _load1() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _cpu_times(path: Path = _PROC_STAT) -> tuple[int | None, int | None]:
    """(total, steal) jiffies of the aggregate `cpu` line, (None, None) where there is no /proc/stat."""
    try:
        first = path.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None, None
    if not first or first[0] != "cpu":
        return None, None
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user
    values = [int(v) for v in first[1:9]]
    steal = values[7] if len(values) > 7 else 0
    return sum(values), steal


def sample(path: Path = _PROC_STAT) -> LoadSample:
    total, steal = _cpu_times(path)
    return LoadSample(_load1(), total, steal)


def load_fields(before: LoadSample, after: LoadSample) -> dict[str, float | None]:
    """The optional record fields for one case: `load_avg` (max of before/after) and `cpu_steal` (share stolen)."""
    loads = [v for v in (before.load1, after.load1) if v is not None]
    steal = None
    if None not in (before.total, after.total, before.steal, after.steal):
        dt = after.total - before.total  # type: ignore[operator]
        steal = (after.steal - before.steal) / dt if dt > 0 else 0.0  # type: ignore[operator]
    return {"load_avg": max(loads) if loads else None, "cpu_steal": steal}


def busy_warning(threads: int, cores: int | None = None, load1: float | None = None) -> str | None:
    """A warning when the load leaves fewer free cores than `threads`, else None."""
    cores = cores or os.cpu_count() or 1
    load1 = _load1() if load1 is None else load1
    if load1 is None:
        return None
    # the load average counts runnable threads, time-averaged: a core is busy once it is half used
    free = cores - math.floor(load1 + 0.5)
    if free >= threads:
        return None
    return (
        f"load average {load1:.2f} on {cores} cores leaves {max(free, 0)} free for {threads} compute thread(s): "
        "other work will stall the threads and distort timings (cases with stalled samples are flagged); "
        "benchmark on an idle machine or lower --threads"
    )
