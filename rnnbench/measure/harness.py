"""rnnbench's timing engine measured against torch's (part of the `rnnbench harness` command).

rnnbench's median against `torch.utils.benchmark.Timer.blocked_autorange` on
the same torch.nn.RNN module (batch 32, hidden 256, seq_len 50, forward),
interleaved in one process, with the same thread count. What runs a sweep to
measure the harness (the quick preset's overhead and first-round bias) is
`rnnbench.sweep.harness`, a layer up: the engine here knows no sweeps.
"""

from __future__ import annotations

import statistics
from typing import Any

from rnnbench.measure.timing import TimingConfig, measure

__all__ = ["compare_with_torch_timer"]


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
