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

import atexit
import hashlib
import itertools
import multiprocessing
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rnnbench.case import Case
from rnnbench.judge.rules import resolve_winner
from rnnbench.measure.load import busy_warning
from rnnbench.measure.machine import GpuMonitor
from rnnbench.measure.timing import TimingConfig, stall_count
from rnnbench.sweep.grid import Grid
from rnnbench.sweep.records import Peak, PeakFailure, Record, RecordError
from rnnbench.sweep.store import RunWriter
from rnnbench.sweep.worker import CACHE_SIZE, is_poisoning, make_record, worker_main

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
    grid: Grid | None = None  # the sweep the cases come from, filed in the document's header for `merge`
    # the worker's entry point; tests substitute one that crashes or hangs
    worker_target: Callable[..., None] = worker_main


_LAUNCHER: list[str] = []  # the path of this process's worker launcher, once written


def _launcher_folder() -> Path:
    """This user's folder of worker launchers in the temporary directory: private (0700, owned by this
    user, or another user could swap the script the workers exec); a fresh private one when it is not."""
    folder = Path(tempfile.gettempdir()) / f"rnnbench-launch-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
        if folder.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(f"{folder} is not private to this user")
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="rnnbench-launch-"))
        atexit.register(shutil.rmtree, folder, True)
    return folder


def _launcher() -> str:
    """A tiny shell script that starts this interpreter with SIGINT ignored, as the workers' executable.

    A terminal's Ctrl-C goes to the whole process group, workers included. A worker must not print a
    KeyboardInterrupt traceback while it imports (the runner ends it), and the runner must never miss
    the Ctrl-C: so the ignore is set in the child, between fork and exec (`trap`), and survives the
    exec, and the new interpreter then never installs its KeyboardInterrupt handler. Ignoring SIGINT
    in the runner around `Process.start()` instead dropped a Ctrl-C that landed in those milliseconds;
    a Ctrl-C that reaches the shell before its `trap` ends the starting worker, and the runner, which
    got the same Ctrl-C, stops the run anyway.
    """
    if not _LAUNCHER:
        text = f"#!/bin/sh\ntrap '' INT\nexec {shlex.quote(sys.executable)} \"$@\"\n"
        folder = _launcher_folder()
        script = folder / f"python-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        if not (script.is_file() and script.read_text() == text):
            # one launcher per interpreter, kept for every later run: a run killed by a signal leaves
            # nothing behind; written beside and renamed, so a concurrent run never sees half a script
            tmp = folder / f".{script.name}.{os.getpid()}.tmp"
            tmp.write_text(text)
            tmp.chmod(0o755)
            tmp.replace(script)
        _LAUNCHER.append(str(script))
    return _LAUNCHER[0]


class _Worker:
    """A worker process and its end of the pipe."""

    def __init__(self, opts: RunOptions) -> None:
        ctx = multiprocessing.get_context("spawn")
        ctx.set_executable(_launcher())  # the workers start with SIGINT ignored (see _launcher)
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=opts.worker_target, args=(child, opts.threads, opts.timing, os.getpid()), daemon=True
        )
        self.proc.start()
        child.close()

    def ask(self, msg: dict[str, Any], timeout: float) -> Any:
        """Send `msg` and wait for the reply (a `Record` for a case, a dict otherwise); RuntimeError with
        the reason if the worker dies or hangs."""
        try:
            self.conn.send(msg)
            if not self.conn.poll(timeout):
                self.kill()
                raise RuntimeError(f"timed out after {timeout:g}s (worker killed)")
            return self.conn.recv()
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
    extra_records: Sequence[Record] = (),
) -> RunWriter:
    """Verify and time every case; returns the writer whose document holds the whole run.

    `extra_records` (the grid's not-applicable cases) are appended after the measured ones, while
    the document is still locked; the writer is closed (its lock released) when this returns.
    """
    writer = RunWriter(
        opts.results_dir, machine, command=opts.command, preset=opts.preset, shard=opts.shard, grid=opts.grid
    )
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(2**32)
    writer.set_order_seed(seed)  # rounds' case order is reproducible from it
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
            writer.apply_machine_peaks()  # after every group, so an interrupted run is consistent too
        for record in extra_records:
            writer.add(record)
        writer.finish()
    finally:
        bar.close()
        writer.close()
        if monitor is not None:
            monitor.close()
    return writer


def merge_round(record: Record, new: Record) -> Record:
    """`record` with a later round added (`records.Record.merge`: statistics recomputed over every round),
    its stalls counted over every round and its load the worse of the two rounds'.

    A later round that failed fails the case: its earlier rounds' samples stay, and `failed_round` marks
    them as partial.
    """
    merged = record.merge(new)
    notes: dict[str, Any] = {k: _worst(record.extra.get(k), new.extra.get(k)) for k in ("load_avg", "cpu_steal")}
    if merged.status == "ok" and merged.samples is not None:
        notes["stalls"] = stall_count(merged.samples.flat)
    return merged.annotated(notes)


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
            try:
                probe = Peak.from_json(peak)
            except RecordError as exc:
                peak = {"error": f"the worker's peak is malformed: {exc}"}
            else:
                writer.add_peak(probe)
                return probe.gflops, worker
        errors.append(str(peak["error"]))
        if worker is not None:  # it answered, but may be unhealthy: the retry gets a fresh process
            worker.kill()
            worker = None
    error = "; retry: ".join(errors)
    writer.add_peak_failure(PeakFailure(framework, device, dtype, error))
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
    if framework in writer.machine.get("runtimes", {}):
        return
    try:
        runtime = worker.ask({"op": "runtime", "framework": framework}, opts.timeout_s)
    except RuntimeError as exc:
        runtime = {"error": str(exc)}
    writer.set_runtime(framework, runtime)


def _ask_case(state: _GroupState, case: Case, op: str, writer: RunWriter, opts: RunOptions, bar: tqdm) -> Record:  # type: ignore[type-arg]
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
        if not isinstance(record, Record) or record.key != case.key:
            raise RuntimeError(f"the worker answered {type(record).__name__}, not this case's record")
    except RuntimeError as exc:
        record = make_record(case, "failed", threads=opts.threads, error=str(exc))
        if state.worker is not None:
            state.worker.kill()
        state.worker = None  # it is dead or killed; the next case gets a fresh one
    if record.status == "failed" and is_poisoning(record.error or "") and state.worker is not None:
        # a CUDA error that leaves the context unusable: every later case in it would fail too
        state.worker.kill()
        state.worker = None
        record = replace(record, error=f"{record.error} (worker replaced)")
    record = replace(record, wall_s=time.perf_counter() - start)
    return record.annotated(GpuMonitor.case_fields(before, state.monitor.sample() if state.monitor else None))


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
    first = len(writer)
    position: dict[str, int] = {}  # case key -> index of its record in the document
    prepared: dict[str, Record] = {}
    if opts.warmup_pass:
        for case in chunk:
            bar.set_postfix_str(f"{case.key} (warm-up)", refresh=False)
            reply = _ask_case(state, case, "prepare", writer, opts, bar)
            if reply.status == "ok":
                prepared[case.key] = reply
            else:  # failed or not applicable: recorded now, never timed
                position[case.key] = len(writer)
                writer.add(reply)
            bar.update(1)
    for r in range(opts.rounds):
        order = list(chunk)
        rng.shuffle(order)
        for case in order:
            if case.key in position and writer.record(position[case.key]).status != "ok":
                bar.update(1)  # failed or skipped earlier: nothing to add
                continue
            bar.set_postfix_str(f"{case.key} (round {r + 1}/{opts.rounds})", refresh=False)
            record = _ask_case(state, case, "case", writer, opts, bar)
            if case.key not in position:
                position[case.key] = len(writer)
                writer.add(_with_warm_up(record, prepared.get(case.key)))
            else:
                i = position[case.key]
                writer.replace(i, merge_round(writer.record(i), record))
            bar.update(1)
    # rounds visit the chunk in random order; the document lists cases in grid order
    rank = {c.key: n for n, c in enumerate(chunk)}
    writer.sort_records(first, lambda rec: rank.get(rec.key, len(rank)))
    writer.flush()


def _with_warm_up(record: Record, warm: Record | None) -> Record:
    """A case's first timed round, charged with its warm-up pass (when the pass built the kernel): the
    compile time is the warm-up's, and so is part of the wall and clocked time."""
    if warm is None:
        return record
    compile_s = warm.compile_s if record.compile_s is None and record.status == "ok" else record.compile_s
    timed_s = record.timed_s + (warm.timed_s or 0.0) if record.timed_s is not None else None
    return replace(record, compile_s=compile_s, wall_s=(record.wall_s or 0.0) + (warm.wall_s or 0.0), timed_s=timed_s)


def summary_rows(records: Sequence[Record]) -> tuple[list[str], list[list[object]]]:
    """Per framework/device/cell/mode/pass/shape: median ms of each formulation, the winner (or `tie: ...`), concat/separate."""
    forms = ("separate", "concat", "hoisted", "native")
    table: dict[tuple[Any, ...], dict[str, float]] = {}
    samples: dict[tuple[Any, ...], dict[str, list[list[float]]]] = {}
    for r in records:
        if r.status != "ok" or r.samples is None:
            continue
        c = r.case
        shape = f"B{c.batch} H{c.hidden} T{c.seq_len} L{c.layers}" + (
            "" if c.input_size == c.hidden else f" I{c.input_size}"
        )
        key = (c.framework, c.device, c.spec.label, c.mode, c.pass_, c.dtype, shape)
        table.setdefault(key, {})[c.formulation] = r.samples.median_s
        samples.setdefault(key, {})[c.formulation] = [list(rs) for rs in r.samples.rounds]
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
