"""rnnbench measuring its own sweeps (part of the `rnnbench harness` command), so its overheads are known numbers.

The quick preset's wall time and the share spent outside timed regions
(worker start-up, framework imports, verification, peak probes, writing), and
from the same run the first-round bias: per case, the median of its later
rounds' medians over its first round's median (`round_bias`; the target is a
median ratio within 1% of 1). The timing engine against torch's own timer is
`rnnbench.measure.harness`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnbench.sweep.grid import PRESETS, expand
from rnnbench.sweep.records import Record
from rnnbench.sweep.runner import RunOptions, run_cases

__all__ = ["quick_preset_overhead", "round_bias"]


def round_bias(records: Sequence[Record]) -> dict[str, Any]:
    """Per-case ratio median(later rounds' medians) / first round's median: its median, p5 and p95 over cases."""
    ratios = sorted(
        statistics.median(medians[1:]) / medians[0]
        for medians in (r.samples.round_medians_s for r in records if r.status == "ok" and r.samples is not None)
        if len(medians) >= 2
    )
    if not ratios:
        return {"cases": 0, "median": float("nan"), "p5": float("nan"), "p95": float("nan")}

    def pct(q: float) -> float:
        return ratios[min(len(ratios) - 1, int(q * len(ratios)))]

    return {"cases": len(ratios), "median": statistics.median(ratios), "p5": pct(0.05), "p95": pct(0.95)}


def quick_preset_overhead(results_dir: Path, threads: int, rounds: int = 2, warmup_pass: bool = True) -> dict[str, Any]:
    """Run the quick preset; wall time, the share of it outside clocked blocks, and the first-round bias."""
    from rnnbench.measure.machine import fingerprint

    grid = PRESETS["quick"]
    cases, _ = expand(grid)
    t0 = time.perf_counter()
    writer = run_cases(
        cases,
        fingerprint(threads),
        RunOptions(
            results_dir, threads, preset="quick", command=["rnnbench", "harness"], rounds=rounds,
            warmup_pass=warmup_pass, grid=grid,
        ),
    )  # fmt: skip
    wall = time.perf_counter() - t0
    records = writer.records
    timed = sum(r.timed_s or 0.0 for r in records)
    return {
        "cases": len(cases),
        "ok": sum(r.status == "ok" for r in records),
        "wall_s": wall,
        "timed_s": timed,
        "outside_share": 1 - timed / wall,
        "round_bias": round_bias(records),
        "document": str(writer.path),
    }
