"""`rnnbench harness`: measure rnnbench's own overheads (see `rnnbench.sweep.harness`, `rnnbench.measure.harness`)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from rnnbench.cli.options import int_range, output_dir, threads
from rnnbench.display import format_table, format_time

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnbench.measure.harness import compare_with_torch_timer
    from rnnbench.measure.timing import timer_overhead
    from rnnbench.sweep.harness import quick_preset_overhead

    n_threads = args.threads or os.cpu_count() or 1
    rows: list[list[object]] = []
    overhead = timer_overhead()
    rows.append(
        [
            "timer overhead per sample (perf_counter pair)",
            format_time(overhead),
            f"{overhead / 1e-3:.2%} of a 1 ms sample",
        ]
    )
    if not args.skip_torch:
        t = compare_with_torch_timer(threads=n_threads)
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
                format_time(t["rnnbench_median_s"]),
                f"torch Timer {format_time(t['torch_timer_median_s'])}, {t['threads']} threads",
            ]
        )
    if not args.skip_quick:
        with tempfile.TemporaryDirectory() as tmp:
            q = quick_preset_overhead(
                Path(args.results) if args.results else Path(tmp), n_threads, args.rounds, not args.no_warmup_pass
            )
        rows.append(["quick preset wall time", format_time(q["wall_s"]), f"{q['cases']} cases, {q['ok']} ok"])
        rows.append(
            ["  share outside timed regions", f"{q['outside_share']:.1%}", f"timed {format_time(q['timed_s'])}"]
        )
        b = q["round_bias"]
        rows.append(
            [
                "  later/first round median, per case",
                f"{b['median']:.3f}",
                f"p5 {b['p5']:.3f}, p95 {b['p95']:.3f} over {b['cases']} cases ({args.rounds} rounds, "
                f"warm-up pass {'off' if args.no_warmup_pass else 'on'}; target: median within 1% of 1)",
            ]
        )
    print(format_table(["measure", "value", "detail"], rows))
    sys.stdout.flush()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "harness", help="measure rnnbench's own overheads (timer, quick preset, vs torch.utils.benchmark)"
    )
    p.add_argument("--threads", type=threads, default=None)
    p.add_argument("--skip-quick", action="store_true", help="skip the quick-preset wall-time run")
    p.add_argument("--skip-torch", action="store_true", help="skip the torch.utils.benchmark comparison")
    p.add_argument(
        "--results", type=output_dir, help="keep the quick run's document here (default: a temporary directory)"
    )
    p.add_argument(
        "--rounds", type=int_range(2, 100), default=3,
        help="rounds of the quick run; the first-round bias compares later rounds with the first (default 3)",
    )  # fmt: skip
    p.add_argument(
        "--no-warmup-pass",
        action="store_true",
        help="time the first round without the warm-up pass (to see the bias the pass removes)",
    )
    p.set_defaults(func=run)
