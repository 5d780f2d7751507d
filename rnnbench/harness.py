"""`rnnbench harness`: measures rnnbench itself, so its own overheads are known numbers.

(1) the quick preset's wall time and the share spent outside timed regions
(worker start-up, framework imports, verification, peak probes, writing);
(2) rnnbench's median against `torch.utils.benchmark.Timer.blocked_autorange`
on the same torch.nn.RNN module (batch 32, hidden 256, seq_len 50, forward),
interleaved in one process, with the same thread count; (3) timer overhead.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rnnbench.errors import UsageError
from rnnbench.tables import format_table
from rnnbench.timing import TimingConfig, measure, timer_overhead

__all__ = ["add_parser", "compare_with_torch_timer", "quick_preset_overhead"]


def compare_with_torch_timer(rounds: int = 5, threads: int | None = None) -> dict[str, Any]:
    """Ratio of rnnbench's median to torch.utils.benchmark's, alternating the two `rounds` times."""
    import torch
    import torch.utils.benchmark as tb

    from rnnbench import backends
    from rnnbench.case import Case
    from rnnbench.verify import make_inputs

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


def quick_preset_overhead(results_dir: Path, threads: int) -> dict[str, Any]:
    """Run the quick preset; wall time and the share of it outside clocked blocks."""
    from rnnbench.grid import PRESETS, expand
    from rnnbench.machine import fingerprint
    from rnnbench.runner import RunOptions, run_cases

    cases, _ = expand(PRESETS["quick"])
    t0 = time.perf_counter()
    writer = run_cases(
        cases, fingerprint(threads), RunOptions(results_dir, threads, preset="quick", command=["rnnbench", "harness"])
    )
    wall = time.perf_counter() - t0
    records = writer.doc["records"]
    timed = sum(r.get("timed_s") or 0.0 for r in records)
    return {
        "cases": len(cases),
        "ok": sum(r["status"] == "ok" for r in records),
        "wall_s": wall,
        "timed_s": timed,
        "outside_share": 1 - timed / wall,
        "document": str(writer.path),
    }


def cmd_harness(args: argparse.Namespace) -> int:
    import os

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be a positive integer, got {args.threads}")
    threads = args.threads or os.cpu_count() or 1
    rows: list[list[object]] = []
    overhead = timer_overhead()
    rows.append(
        [
            "timer overhead per sample (perf_counter pair)",
            f"{overhead * 1e9:.0f} ns",
            f"{overhead / 1e-3:.2%} of a 1 ms sample",
        ]
    )
    if not args.skip_torch:
        t = compare_with_torch_timer(threads=threads)
        rows.append(
            [
                "rnnbench / torch.utils.benchmark median",
                f"{t['ratio']:.3f}",
                f"{t['case']}, rounds {', '.join(f'{r:.3f}' for r in t['per_round_ratios'])}",
            ]
        )
        rows.append(
            [
                "  rnnbench median",
                f"{t['rnnbench_median_s'] * 1e3:.3f} ms",
                f"torch Timer {t['torch_timer_median_s'] * 1e3:.3f} ms, {t['threads']} threads",
            ]
        )
    if not args.skip_quick:
        with tempfile.TemporaryDirectory() as tmp:
            q = quick_preset_overhead(Path(args.results) if args.results else Path(tmp), threads)
        rows.append(["quick preset wall time", f"{q['wall_s']:.1f} s", f"{q['cases']} cases, {q['ok']} ok"])
        rows.append(["  share outside timed regions", f"{q['outside_share']:.1%}", f"timed {q['timed_s']:.1f} s"])
    print(format_table(["measure", "value", "detail"], rows))
    sys.stdout.flush()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "harness", help="measure rnnbench's own overheads (timer, quick preset, vs torch.utils.benchmark)"
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--skip-quick", action="store_true", help="skip the quick-preset wall-time run")
    p.add_argument("--skip-torch", action="store_true", help="skip the torch.utils.benchmark comparison")
    p.add_argument("--results", help="keep the quick run's document here (default: a temporary directory)")
    p.set_defaults(func=cmd_harness)
