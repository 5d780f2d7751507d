"""The sweep runner: cases -> worker processes -> records in the results store, with progress.

`run_cases` groups cases by (framework, device), starts one worker process per
group (see `worker.py`), measures the peak GEMM of every (framework, device,
dtype) it uses, sends cases one at a time and writes each record as soon as
it arrives. A group is cut into chunks of `chunk_size` cases (fewer than the
worker's kernel cache holds, so later rounds never rebuild a kernel), and
each chunk is swept `rounds` times (asv's idea): the worker keeps its
kernels, and every round appends samples to the case's record, so a case's
samples span the whole chunk instead of one moment of it. On a shared or
virtual machine the level drifts by several percent over minutes; samples
from one instant hide that drift and make `compare` see changes that are not
there.

No warm-up bias: before its first timed round a chunk gets a warm-up pass
(every case built, verified, compiled and run until stable, nothing kept but
the compile time and verification), so the first round no longer pays for
process-level warm-up (allocator, thread pools, oneDNN primitive caches,
clock ramp-up) that later rounds do not; and every round visits the chunk's
cases in a fresh random order drawn from the run's `order_seed` (stored in
the document), so drift and order effects spread evenly over the cases. A worker that crashes or exceeds the per-case timeout is killed,
its case is recorded as failed with the reason, and a fresh worker takes the
rest of the group, so the sweep always completes. The same happens after a
CUDA error that poisons the process (the worker's reply says so). A failure
in a later round fails the case; the samples of its earlier rounds stay in
the record, and `failed_round` says which round failed. A peak probe that
fails is retried once in a fresh worker; a second failure is kept in the
document's `peak_failures`, and `run` exits non-zero.

Interrupts: workers start with SIGINT ignored (a terminal's Ctrl-C goes to
the whole process group), and on any exception, KeyboardInterrupt included,
the runner kills its worker at once rather than waiting for the case to end.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rnnbench.case import Case
from rnnbench.judge.rules import resolve_winner
from rnnbench.measure.load import busy_warning
from rnnbench.measure.machine import GpuMonitor
from rnnbench.measure.roofline import apply_machine_peaks
from rnnbench.measure.timing import TimingConfig, stall_count
from rnnbench.sweep.records import Record, RecordError
from rnnbench.sweep.store import RunWriter
from rnnbench.sweep.worker import CACHE_SIZE, make_record, worker_main

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
    rounds: int = 3
    progress: bool = True
    # rounds sweep one chunk of a group at a time, so a chunk's kernels stay in the worker's cache
    chunk_size: int = CACHE_SIZE // 4
    warmup_pass: bool = True  # build, verify and warm every case of a chunk before its first timed round
    seed: int | None = None  # of the rounds' random case order; None: a fresh one, recorded in the document
    command: list[str] = field(default_factory=list)
    preset: str | None = None
    shard: str | None = None
    # the worker's entry point; tests substitute one that crashes or hangs
    worker_target: Callable[..., None] = worker_main


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while a worker starts: the ignored disposition survives exec, so the new
    interpreter never installs its KeyboardInterrupt handler and a Ctrl-C during its imports
    prints nothing (the worker ignores SIGINT itself once it runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Worker:
    """A worker process and its end of the pipe."""

    def __init__(self, opts: RunOptions) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=opts.worker_target, args=(child, opts.threads, opts.timing, os.getpid()), daemon=True
        )
        with _sigint_ignored():
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
        self.conn.close()

    def close(self) -> None:
        try:
            self.conn.send({"op": "exit"})
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(10)
        self.kill()


def run_cases(
    cases: Sequence[Case],
    machine: dict[str, Any],
    opts: RunOptions,
    extra_records: Sequence[dict[str, Any]] = (),
) -> RunWriter:
    """Verify and time every case; returns the writer whose document holds the whole run.

    `extra_records` (the grid's not-applicable cases) are appended after the measured ones, while
    the document is still locked; the writer is closed (its lock released) when this returns.
    """
    writer = RunWriter(opts.results_dir, machine, command=opts.command, preset=opts.preset, shard=opts.shard)
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(2**32)
    writer.doc["order_seed"] = seed  # rounds' case order is reproducible from it
    busy = busy_warning(opts.threads)
    if busy:
        print(f"rnnbench: warning: {busy}", file=sys.stderr)
    passes = opts.rounds + (1 if opts.warmup_pass else 0)
    bar = tqdm(total=len(cases) * passes, unit="case", file=sys.stderr, disable=not opts.progress, dynamic_ncols=True)
    groups = itertools.groupby(
        sorted(cases, key=lambda c: (c.framework, c.device)), key=lambda c: (c.framework, c.device)
    )
    monitor = GpuMonitor() if any(c.device == "cuda" for c in cases) else None
    try:
        for (framework, device), group in groups:
            rng = random.Random(f"{seed}/{framework}/{device}")
            _run_group(list(group), framework, device, writer, opts, bar, rng, monitor if device == "cuda" else None)
            apply_machine_peaks(writer.doc)  # after every group, so an interrupted run is consistent too
        writer.doc["records"].extend(extra_records)
        writer.finish()
    finally:
        bar.close()
        writer.close()
        if monitor is not None:
            monitor.close()
    return writer


def merge_round(record: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`record` with a later round added (`records.Record.merge`: statistics recomputed over every round).

    A later round that failed fails the case: its earlier rounds' samples stay, and `failed_round` marks
    them as partial. A reply that is not a valid record counts as such a failed round, with the reason.
    """
    first = Record.from_json(record)
    try:
        later = Record.from_json(new)
    except RecordError as exc:
        later = Record(first.case, "failed", error=f"the worker's record is malformed: {exc}")
    return first.merge(later).to_json()


def _probe_peak(
    worker: _Worker | None, framework: str, device: str, dtype: str, writer: RunWriter, opts: RunOptions
) -> tuple[float | None, _Worker | None]:
    """The peak GEMM rate of (framework, device, dtype), retried once in a fresh worker."""
    msg = {"op": "peak", "framework": framework, "device": device, "dtype": dtype, "config": opts.peak_timing}
    errors: list[str] = []
    for _attempt in range(2):
        if worker is None:
            worker = _Worker(opts)
        try:
            peak = worker.ask(msg, opts.timeout_s)
        except RuntimeError as exc:
            peak, worker = {"error": str(exc)}, None
        if "error" not in peak:
            peak.pop("poisoned", None)
            writer.add_peak(peak)
            return float(peak["gflops"]), worker
        errors.append(str(peak["error"]))
        if worker is not None:  # it answered, but may be unhealthy: the retry gets a fresh process
            worker.kill()
            worker = None
    error = "; retry: ".join(errors)
    writer.add_peak_failure({"framework": framework, "device": device, "dtype": dtype, "error": error})
    print(f"rnnbench: warning: peak GEMM {framework}/{device}/{dtype} failed twice: {error}", file=sys.stderr)
    return None, worker


@dataclass
class _GroupState:
    """The live worker of a (framework, device) group and the peaks it has measured."""

    framework: str
    device: str
    worker: _Worker | None = None
    peaks: dict[str, float | None] = field(default_factory=dict)
    monitor: GpuMonitor | None = None  # NVML samples around each case (CUDA groups)


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


def _ask_case(
    state: _GroupState, case: Case, op: str, writer: RunWriter, opts: RunOptions, bar: tqdm
) -> dict[str, Any]:  # type: ignore[type-arg]
    """One case message to the group's worker (starting one, and probing the dtype's peak, as needed)."""
    if state.worker is None:
        state.worker = _Worker(opts)
        _record_runtime(state.worker, state.framework, writer, opts)
    if case.dtype not in state.peaks:
        bar.set_postfix_str(f"peak GEMM {state.framework}/{state.device}/{case.dtype}")
        state.peaks[case.dtype], state.worker = _probe_peak(
            state.worker, state.framework, state.device, case.dtype, writer, opts
        )
    if state.worker is None:
        state.worker = _Worker(opts)
    start = time.perf_counter()
    before = state.monitor.sample() if state.monitor else None
    try:
        record = state.worker.ask(
            {"op": op, "case": case.to_dict(), "peak_gflops": state.peaks[case.dtype]}, opts.timeout_s
        )
    except RuntimeError as exc:
        record = make_record(case, "failed", threads=opts.threads, error=str(exc))
        state.worker = None  # it is dead or killed; the next case gets a fresh one
    if record.pop("poisoned", False) and state.worker is not None:
        # a CUDA error that leaves the context unusable: every later case in it would fail too
        state.worker.kill()
        state.worker = None
        record["error"] = f"{record['error']} (worker replaced)"
    record["wall_s"] = time.perf_counter() - start
    record |= GpuMonitor.case_fields(before, state.monitor.sample() if state.monitor else None)
    return record


def _worst(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _run_group(
    cases: list[Case],
    framework: str,
    device: str,
    writer: RunWriter,
    opts: RunOptions,
    bar: tqdm,
    rng: random.Random,  # type: ignore[type-arg]
    monitor: GpuMonitor | None = None,
) -> None:
    state = _GroupState(framework, device, monitor=monitor)
    try:
        for start in range(0, len(cases), opts.chunk_size):
            _run_chunk(cases[start : start + opts.chunk_size], state, writer, opts, bar, rng)
    except BaseException:
        # Ctrl-C, a full disk, a bug: stop the worker now instead of waiting for its case to end
        if state.worker is not None:
            state.worker.kill()
            state.worker = None
        raise
    finally:
        if state.worker is not None:
            state.worker.close()


def _run_chunk(
    chunk: list[Case],
    state: _GroupState,
    writer: RunWriter,
    opts: RunOptions,
    bar: tqdm,
    rng: random.Random,  # type: ignore[type-arg]
) -> None:
    """Warm-up pass over the chunk, then `rounds` timed passes, each in a fresh random order."""
    records = writer.doc["records"]
    first = len(records)
    position: dict[str, int] = {}  # case key -> index of its record in the document
    prepared: dict[str, dict[str, Any]] = {}
    if opts.warmup_pass:
        for case in chunk:
            bar.set_postfix_str(f"{case.key} (warm-up)", refresh=False)
            reply = _ask_case(state, case, "prepare", writer, opts, bar)
            if reply["status"] == "ok":
                prepared[case.key] = reply
            else:  # failed or not applicable: recorded now, never timed
                position[case.key] = len(records)
                writer.add(reply | {"rounds": 1, "round_medians_s": [reply["median_s"]]})
            bar.update(1)
    for r in range(opts.rounds):
        order = list(chunk)
        rng.shuffle(order)
        for case in order:
            if case.key in position and records[position[case.key]]["status"] != "ok":
                bar.update(1)  # failed or skipped earlier: nothing to add
                continue
            bar.set_postfix_str(f"{case.key} (round {r + 1}/{opts.rounds})", refresh=False)
            record = _ask_case(state, case, "case", writer, opts, bar)
            if case.key not in position:
                warm = prepared.get(case.key)
                if warm is not None:  # the warm-up pass built the kernel: its compile time and cost belong here
                    if record.get("compile_s") is None and record["status"] == "ok":
                        record["compile_s"] = warm["compile_s"]
                    record["wall_s"] += warm.get("wall_s", 0.0)
                    if record.get("timed_s") is not None:
                        record["timed_s"] += warm.get("timed_s") or 0.0
                position[case.key] = len(records)
                writer.add(record)
            else:
                i = position[case.key]
                merged = merge_round(records[i], record)
                if merged["status"] == "ok":
                    merged["stalls"] = stall_count(merged["samples_s"])
                for k in ("load_avg", "cpu_steal"):
                    merged[k] = _worst(records[i].get(k), record.get(k))
                writer.replace(i, merged)
            bar.update(1)
    # rounds visit the chunk in random order; the document lists cases in grid order
    rank = {c.key: n for n, c in enumerate(chunk)}
    records[first:] = sorted(records[first:], key=lambda rec: rank.get(rec["key"], len(rank)))
    writer.flush()


def summary_rows(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[object]]]:
    """Per framework/device/cell/mode/pass/shape: median ms of each formulation, the winner (or `tie: ...`), concat/separate."""
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
