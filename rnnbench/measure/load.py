"""Is the machine busy? The load average and CPU steal around each case, and the run-start warning.

A timing taken while another process holds the cores is not the kernel's
time: with one OpenMP thread per core, a single descheduled thread makes every
barrier wait for it (0.5 ms calls turn into 500 ms). The engine flags such
samples (`timing.stall_count`); this module records the cause beside them:
the 1-minute load average before and after a case, and the share of CPU time
the hypervisor stole during it (`/proc/stat`'s `steal` column, Linux only;
None where unreadable). `busy_warning` compares free cores with `--threads`
before a run starts, from the cores busy right then (`busy_cores`, /proc/stat
over 0.3 s), not the lagging load average.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadSample", "busy_cores", "busy_warning", "load_fields", "sample"]

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


def busy_cores(window_s: float = 0.3, path: Path = _PROC_STAT) -> float | None:
    """Cores kept busy by everything on the machine over the next `window_s` (None without /proc/stat).

    What the run-start warning reads: the load average lags by a minute, so right after another run
    ends it still reads 1.7 on an idle 2-core machine and would warn about nothing.
    """
    import time

    def busy_total() -> tuple[int, int] | None:
        try:
            first = path.read_text().splitlines()[0].split()
        except (OSError, IndexError):
            return None
        if not first or first[0] != "cpu":
            return None
        values = [int(v) for v in first[1:9]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    before = busy_total()
    time.sleep(window_s)
    after = busy_total()
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def busy_warning(threads: int, cores: int | None = None, load1: float | None = None) -> str | None:
    """A warning when other work leaves fewer free cores than `threads`, else None.

    It measures the cores busy right now (`busy_cores`); given `load1`, or without /proc/stat, it
    reads the 1-minute load average instead.
    """
    cores = cores or os.cpu_count() or 1
    busy = busy_cores() if load1 is None else None
    if busy is not None:
        what = f"other processes kept {busy:.1f} of {cores} cores busy just now"
    else:
        load1 = _load1() if load1 is None else load1
        if load1 is None:
            return None
        busy, what = load1, f"load average {load1:.2f} on {cores} cores"
    # a core counts as taken once it is half used: its thread would be descheduled half the time
    free = cores - math.floor(busy + 0.5)
    if free >= threads:
        return None
    return (
        f"busy machine: {what} leaves {max(free, 0)} free for {threads} compute thread(s): "
        "other work will stall the threads and distort timings (cases with stalled samples are flagged); "
        "benchmark on an idle machine or lower --threads"
    )
