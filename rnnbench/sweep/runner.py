"""The sweep runner: cases -> worker processes -> records in the results store, with progress.

`run_cases` groups cases by (framework, device), starts one worker process per
group (see `worker.py`), measures the peak GEMM of every (framework, device,
dtype) it uses, sends cases one at a time and writes each record as soon as
it arrives. Each group is swept `rounds` times (asv's idea): the worker keeps
its kernels, and every round appends samples to the case's record, so a
case's samples span the whole group instead of one moment of it. On a shared
or virtual machine the level drifts by several percent over minutes; samples
from one instant hide that drift and make `compare` see changes that are not
there. A worker that crashes or exceeds the per-case timeout is killed,
its case is recorded as failed with the reason, and a fresh worker takes the
rest of the group, so the sweep always completes.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rnnbench.case import Case
from rnnbench.measure.machine import GpuMonitor
from rnnbench.measure.roofline import apply_machine_peaks
from rnnbench.measure.timing import Measurement, TimingConfig
from rnnbench.sweep.store import RunWriter
from rnnbench.sweep.worker import make_record, worker_main

__all__ = ["RunOptions", "run_cases", "summary_rows"]


@dataclass
class RunOptions:
    results_dir: Path
    threads: int
    timing: TimingConfig = field(default_factory=TimingConfig)
    # per ladder size of the peak probe (measure/roofline.py): a peak is a best, 5 samples suffice
    peak_timing: TimingConfig = field(
        default_factory=lambda: TimingConfig(budget_s=0.2, warmup_budget_s=0.1, min_samples=5)
    )
    timeout_s: float = 600.0
    rounds: int = 2
    progress: bool = True
    command: list[str] = field(default_factory=list)
    preset: str | None = None
    shard: str | None = None
    # the worker's entry point; tests substitute one that crashes or hangs
    worker_target: Callable[..., None] = worker_main


class _Worker:
    """A worker process and its end of the pipe."""

    def __init__(self, opts: RunOptions) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=opts.worker_target, args=(child, opts.threads, opts.timing), daemon=True)
        self.proc.start()
        child.close()

    def ask(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send `msg` and wait for the reply; RuntimeError with the reason if the worker dies or hangs."""
        try:
            self.conn.send(msg)
            if not self.conn.poll(timeout):
                self.kill()
                raise RuntimeError(f"timed out after {timeout:g}s (worker killed)")
            reply: dict[str, Any] = self.conn.recv()
            return reply
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            self.proc.join(5)
            code = self.proc.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            if code is not None and code in (-9, 137):
                how += ", likely out of memory"
            raise RuntimeError(f"worker process died ({how})") from None

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)

    def close(self) -> None:
        try:
            self.conn.send({"op": "exit"})
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(10)
        self.kill()


def run_cases(cases: Sequence[Case], machine: dict[str, Any], opts: RunOptions) -> RunWriter:
    """Verify and time every case; returns the writer whose document holds the whole run."""
    writer = RunWriter(opts.results_dir, machine, command=opts.command, preset=opts.preset, shard=opts.shard)
    bar = tqdm(
        total=len(cases) * opts.rounds, unit="case", file=sys.stderr, disable=not opts.progress, dynamic_ncols=True
    )
    groups = itertools.groupby(
        sorted(cases, key=lambda c: (c.framework, c.device)), key=lambda c: (c.framework, c.device)
    )
    monitor = GpuMonitor() if any(c.device == "cuda" for c in cases) else None
    try:
        for (framework, device), group in groups:
            _run_group(list(group), framework, device, writer, opts, bar, monitor if device == "cuda" else None)
            apply_machine_peaks(writer.doc)  # after every group, so an interrupted run is consistent too
        writer.finish()
    finally:
        bar.close()
        if monitor is not None:
            monitor.close()
    return writer


def merge_round(record: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`record` with a later round's samples added (statistics recomputed over all of them)."""
    if new["status"] != "ok":
        note = f"round {record.get('rounds', 1) + 1}: {new['error']}"
        return record | {"error": f"{record['error']}; {note}" if record.get("error") else note}
    samples = tuple(record["samples_s"]) + tuple(new["samples_s"])
    m = Measurement(samples, record["number"], record["compile_s"] or 0.0, 0, record.get("noise_threshold", 0.05))
    merged = record | {
        "samples_s": list(samples),
        "median_s": m.median_s,
        "iqr_s": m.iqr_s,
        "mean_s": m.mean_s,
        "noisy": m.noisy,
        "rounds": record.get("rounds", 1) + 1,
        "round_medians_s": [*record.get("round_medians_s", [record["median_s"]]), new["median_s"]],
        "timed_s": (record.get("timed_s") or 0.0) + (new.get("timed_s") or 0.0),
        "wall_s": record.get("wall_s", 0.0) + new.get("wall_s", 0.0),
    }
    if "gpu_throttled" in new:  # GPU state of every round: first and last sample, throttled if any round was
        merged["gpu_temp_c"] = [record.get("gpu_temp_c", new["gpu_temp_c"])[0], new["gpu_temp_c"][-1]]
        merged["gpu_sm_mhz"] = [record.get("gpu_sm_mhz", new["gpu_sm_mhz"])[0], new["gpu_sm_mhz"][-1]]
        merged["gpu_throttle"] = sorted(set(record.get("gpu_throttle", [])) | set(new["gpu_throttle"]))
        merged["gpu_throttled"] = bool(record.get("gpu_throttled")) or new["gpu_throttled"]
    merged["gflops"] = record["flops"] / m.median_s / 1e9
    if record.get("peak_gflops"):
        merged["peak_fraction"] = merged["gflops"] / record["peak_gflops"]
    return merged


def _record_runtime(worker: _Worker, framework: str, writer: RunWriter, opts: RunOptions) -> None:
    """File the framework's CUDA runtime and cuDNN (known only inside the worker) in the fingerprint."""
    machine = writer.doc["machine"]
    if framework in machine.setdefault("runtimes", {}):
        return
    try:
        runtime = worker.ask({"op": "runtime", "framework": framework}, opts.timeout_s)
    except RuntimeError as exc:
        runtime = {"error": str(exc)}
    machine["runtimes"][framework] = runtime
    if machine.get("cudnn") is None and runtime.get("cudnn"):
        machine["cudnn"] = runtime["cudnn"]


def _run_group(
    cases: list[Case],
    framework: str,
    device: str,
    writer: RunWriter,
    opts: RunOptions,
    bar: tqdm,  # type: ignore[type-arg]
    monitor: GpuMonitor | None = None,
) -> None:
    worker: _Worker | None = None
    peaks: dict[str, float | None] = {}
    position: dict[str, int] = {}  # case key -> index of its record in the document
    rounds = [(r, case) for r in range(opts.rounds) for case in cases]
    try:
        for r, case in rounds:
            if r > 0 and writer.doc["records"][position[case.key]]["status"] != "ok":
                bar.update(1)  # failed or skipped in round 1: nothing to add
                continue
            bar.set_postfix_str(f"{case.key} (round {r + 1}/{opts.rounds})", refresh=False)
            if worker is None:
                worker = _Worker(opts)
                _record_runtime(worker, framework, writer, opts)
            if case.dtype not in peaks:
                bar.set_postfix_str(f"peak GEMM {framework}/{device}/{case.dtype}")
                msg = {
                    "op": "peak",
                    "framework": framework,
                    "device": device,
                    "dtype": case.dtype,
                    "config": opts.peak_timing,
                }
                try:
                    peak = worker.ask(msg, opts.timeout_s)
                except RuntimeError as exc:
                    peak, worker = {"error": str(exc)}, None
                if "error" in peak:
                    print(
                        f"rnnbench: warning: peak GEMM {framework}/{device}/{case.dtype}: {peak['error']}",
                        file=sys.stderr,
                    )
                    peaks[case.dtype] = None
                else:
                    writer.add_peak(peak)
                    peaks[case.dtype] = peak["gflops"]
                if worker is None:
                    worker = _Worker(opts)
                bar.set_postfix_str(case.key, refresh=False)
            start = time.perf_counter()
            before = monitor.sample() if monitor else None
            try:
                record = worker.ask(
                    {"op": "case", "case": case.to_dict(), "peak_gflops": peaks[case.dtype]}, opts.timeout_s
                )
            except RuntimeError as exc:
                record = make_record(case, "failed", threads=opts.threads, error=str(exc))
                worker = None  # it is dead or killed; the next case gets a fresh one
            record["wall_s"] = time.perf_counter() - start
            record |= GpuMonitor.case_fields(before, monitor.sample() if monitor else None)
            if r == 0:
                position[case.key] = len(writer.doc["records"])
                writer.add(record | {"rounds": 1, "round_medians_s": [record["median_s"]]})
            else:
                i = position[case.key]
                writer.replace(i, merge_round(writer.doc["records"][i], record))
            bar.update(1)
    finally:
        if worker is not None:
            worker.close()


def summary_rows(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[object]]]:
    """Per framework/device/cell/mode/pass/shape: median ms of each formulation, the winner (or `tie: ...`), concat/separate."""
    from rnnbench.analysis.compare import resolve_winner

    forms = ("separate", "concat", "hoisted", "native")
    table: dict[tuple[Any, ...], dict[str, float]] = {}
    samples: dict[tuple[Any, ...], dict[str, list[list[float]]]] = {}
    for r in records:
        if r["status"] != "ok":
            continue
        shape = f"B{r['batch']} H{r['hidden']} T{r['seq_len']} L{r['layers']}" + (
            "" if r["input_size"] == r["hidden"] else f" I{r['input_size']}"
        )
        key = (r["framework"], r["device"], r["variant"], r["mode"], r["pass"], r["dtype"], shape)
        table.setdefault(key, {})[r["formulation"]] = r["median_s"]
        samples.setdefault(key, {})[r["formulation"]] = r.get("round_samples_s") or [r["samples_s"]]
    headers = [
        "framework",
        "device",
        "cell",
        "mode",
        "pass",
        "dtype",
        "shape",
        *(f"{f} ms" for f in forms),
        "winner",
        "concat/sep",
    ]
    rows: list[list[object]] = []
    for key, times in table.items():
        # a winner is named only when its lead is resolved; otherwise the tied formulations are
        winner = resolve_winner(samples[key]).label
        ratio = times["concat"] / times["separate"] if "concat" in times and "separate" in times else None
        rows.append([*key, *(times[f] * 1e3 if f in times else None for f in forms), winner, ratio])
    return headers, rows
