"""rnnbench measuring itself (the `rnnbench harness` command), so its own overheads are known numbers.

(1) the quick preset's wall time and the share spent outside timed regions
(worker start-up, framework imports, verification, peak probes, writing),
and from the same run the first-round bias: per case, the median of its later
rounds' medians over its first round's median (`round_bias`; the target is a
median ratio within 1% of 1);
(2) rnnbench's median against `torch.utils.benchmark.Timer.blocked_autorange`
on the same torch.nn.RNN module (batch 32, hidden 256, seq_len 50, forward),
interleaved in one process, with the same thread count; (3) timer overhead.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from rnnbench.measure.timing import TimingConfig, measure

__all__ = ["compare_with_torch_timer", "quick_preset_overhead", "round_bias"]


def compare_with_torch_timer(rounds: int = 5, threads: int | None = None) -> dict[str, Any]:
    """Ratio of rnnbench's median to torch.utils.benchmark's, alternating the two `rounds` times."""
    import torch
    import torch.utils.benchmark as tb

    from rnnbench import backends
    from rnnbench.case import Case
    from rnnbench.measure.verify import make_inputs

    if threads:
        torch.set_num_threads(threads)
    case = Case(framework="torch", cell="rnn", formulation="native", batch=32, input_size=256, hidden=256, seq_len=50)
    kernel = backends.get("torch").build(case, *make_inputs(case))
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(measure(kernel.call, TimingConfig(budget_s=1.0)).median_s)
        # Timer defaults to one thread; give it ours so both time the same work
        timer = tb.Timer("call()", globals={"call": kernel.call}, num_threads=torch.get_num_threads())
        theirs.append(timer.blocked_autorange(min_run_time=1.0).median)
    return {
        "case": case.key,
        "rnnbench_median_s": statistics.median(ours),
        "torch_timer_median_s": statistics.median(theirs),
        "ratio": statistics.median(ours) / statistics.median(theirs),
        "per_round_ratios": [a / b for a, b in zip(ours, theirs)],
        "threads": torch.get_num_threads(),
    }


def round_bias(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-case ratio median(later rounds' medians) / first round's median: its median, p5 and p95 over cases."""
    ratios = sorted(
        statistics.median(r["round_medians_s"][1:]) / r["round_medians_s"][0]
        for r in records
        if r.get("status") == "ok" and len(r.get("round_medians_s") or []) >= 2 and r["round_medians_s"][0]
    )
    if not ratios:
        return {"cases": 0, "median": float("nan"), "p5": float("nan"), "p95": float("nan")}

    def pct(q: float) -> float:
        return ratios[min(len(ratios) - 1, int(q * len(ratios)))]

    return {"cases": len(ratios), "median": statistics.median(ratios), "p5": pct(0.05), "p95": pct(0.95)}


def quick_preset_overhead(results_dir: Path, threads: int, rounds: int = 2, warmup_pass: bool = True) -> dict[str, Any]:
    """Run the quick preset; wall time, the share of it outside clocked blocks, and the first-round bias."""
    from rnnbench.measure.machine import fingerprint
    from rnnbench.sweep.grid import PRESETS, expand
    from rnnbench.sweep.runner import RunOptions, run_cases

    cases, _ = expand(PRESETS["quick"])
    t0 = time.perf_counter()
    writer = run_cases(
        cases,
        fingerprint(threads),
        RunOptions(
            results_dir, threads, preset="quick", command=["rnnbench", "harness"], rounds=rounds,
            warmup_pass=warmup_pass,
        ),
    )  # fmt: skip
    wall = time.perf_counter() - t0
    records = writer.doc["records"]
    timed = sum(r.get("timed_s") or 0.0 for r in records)
    return {
        "cases": len(cases),
        "ok": sum(r["status"] == "ok" for r in records),
        "wall_s": wall,
        "timed_s": timed,
        "outside_share": 1 - timed / wall,
        "round_bias": round_bias(records),
        "document": str(writer.path),
    }
