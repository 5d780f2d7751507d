"""`rnnbench ab`: BASE and NEW interleaved in one sweep, judged with paired statistics.

This module owns the relative mode (asv's `continuous --interleave-rounds`,
Bencher's relative mode): two sides, each a Python interpreter (an
environment: its frameworks, its rnnbench) or a git revision of this project
(checked out as a temporary `git worktree` and run by this interpreter with
PYTHONPATH pointing at it). Each side runs its own worker process per
(framework, device) group, started from its own interpreter with
`ab_driver.py`, so nothing of one environment leaks into the other.

Interleaving: in every round the group's cases are visited in a fresh seeded
random order, and for each case both sides are measured back to back, in a
seeded random side order; so drift (frequency, other load, thermal) and order
effects hit both sides alike, and round i of BASE pairs with round i of NEW.
The verdict is `rnnbench.judge.cases.judge_records`: a paired hierarchical
bootstrap of the per-round ratios. After `--rounds`, the cases still `too
noisy` (and not flagged busy) take up to `--extra-rounds` more rounds, visited
the same way, stopping as they are decided: a sequential design that spends
the extra time only where the first rounds could not decide. Both sides are stored as ordinary run
documents (with an `ab` header linking them), so `compare`, `report` and
`regressions` read them like any other run.

`compare BASE.json NEW.json` given the two documents of one `ab` run
(`ab_pair`) judges them paired again, as `ab` did, so a stored A/B can be
re-read at another threshold.

Bad input (a missing interpreter, an environment without rnnbench, a revision
that does not exist) is a `UsageError` raised before any document is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import random
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.case import Case
from rnnbench.errors import UsageError
from rnnbench.judge.cases import Comparison, judge_records, paired_verdict
from rnnbench.judge.rules import Verdict
from rnnbench.measure.timing import TimingConfig, is_noisy
from rnnbench.sweep.grid import Grid
from rnnbench.sweep.records import ABHeader, Record, RecordError, RunDocument
from rnnbench.sweep.store import RunWriter, iter_runs, live_writers
from rnnbench.sweep.worker import make_record

__all__ = [
    "BUDGET_S",
    "EXTRA_ROUNDS",
    "IDLE_ENV",
    "ROUNDS",
    "ABOptions",
    "ABResult",
    "NothingLeft",
    "Side",
    "ab_pair",
    "resolve_side",
    "run_ab",
    "split_side",
]

DRIVER = Path(__file__).with_name("ab_driver.py")
# Rounds at the same --budget, torch part of the quick preset, A/A on the 2-core VM one after the other
# (docs/measurements/2026-12-07-ci-cpu-2core-ab-rounds.md): 3 rounds 42 of 96 `same` in 256 s, 5 rounds
# 58 in 313 s, 8 rounds 50 in 388 s (a round's share of the budget too small to resolve its ratio)
ROUNDS = 5
# Rounds more, at most, for the cases still `too noisy` after ROUNDS (a sequential design: decided cases
# stop, each extra round visits only the undecided, in a fresh seeded order); see docs/measurements/
# 2026-12-07-ci-cpu-2core-ab-equivalence.md for what they bought on the 2-core VM
EXTRA_ROUNDS = 5
BUDGET_S = 1.0  # sampling seconds per case and side, all rounds together (`--budget`)
# Both sides' workers start with these unless the environment sets them. OpenBLAS (numpy's BLAS) keeps
# its idle threads spinning for about 2^28 cycles after a call, far past the pause between turns, so
# the side that just ran kept both cores busy during the other's turn: numpy A/A on the 2-core VM,
# one after the other, interval half-width 59.7% (within-round IQR 37%) by default, 12.0% (9.4%)
# with a timeout of 2^4 cycles, median time unchanged (ratio 1.003); docs/measurements/2026-12-07-ci-cpu-2core-ab-rounds.md
IDLE_ENV = {"OPENBLAS_THREAD_TIMEOUT": "4"}
PROBE_TIMEOUT_S = 120.0  # importing rnnbench and reading the fingerprint (nvidia-smi, git) on a cold disk


class NothingLeft(Exception):
    """`--resume` found every case already recorded on both sides: nothing was run or written."""


@dataclass(frozen=True)
class Side:
    """How to start one side's workers."""

    spec: str  # what the user typed
    python: str  # interpreter to start
    revision: str | None = None  # full commit sha when the side is a git revision
    env: dict[str, str] = field(default_factory=dict)  # extra environment for its workers


@dataclass
class ABOptions:
    base: str
    new: str
    results_dir: Path
    threads: int
    timing: TimingConfig = field(default_factory=TimingConfig)
    rounds: int = ROUNDS
    extra_rounds: int = EXTRA_ROUNDS
    seed: int = 0
    threshold: float = 0.05
    timeout_s: float = 600.0
    progress: bool = True
    command: list[str] = field(default_factory=list)
    preset: str | None = None
    # extra environment per side (the calibration's self-test switch goes into new_env)
    base_env: dict[str, str] = field(default_factory=dict)
    new_env: dict[str, str] = field(default_factory=dict)
    # where BASE's document goes (default: results_dir beside NEW's): the nightly keeps the re-measured
    # previous night apart from tonight's run, which is a night of its own
    base_results_dir: Path | None = None
    shard: str | None = None  # "K/N" filed in both headers, so `merge` joins a sharded ab's documents
    # skip the cases both sides already recorded in their results folders (an interrupted run, rerun)
    resume: bool = False


@dataclass(frozen=True)
class ABResult:
    comparison: Comparison
    base_path: Path
    new_path: Path
    base_doc: RunDocument
    new_doc: RunDocument


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _git(*args: str, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(root or project_root()), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _interpreter(text: str, spec: str) -> str:
    """The absolute path of the interpreter `text` names; UsageError when it is not an executable file."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise UsageError(f"{text} is a directory; give its Python interpreter (e.g. {text.rstrip('/')}/bin/python)")
    if not path.is_file():
        raise UsageError(f"no such interpreter: {text}" + (f" (in side {spec!r})" if text != spec else ""))
    if not os.access(path, os.X_OK):
        raise UsageError(f"{text} is not executable (expected a Python interpreter)")
    return str(path.absolute())


def _revision(text: str, spec: str) -> str:
    """The full commit sha of revision `text` of this project; UsageError when there is none."""
    if not (project_root() / ".git").exists() or shutil.which("git") is None:
        raise UsageError(f"{spec!r} is not an interpreter path, and rnnbench is not running from a git checkout")
    found = _git("rev-parse", "--verify", "--quiet", f"{text}^{{commit}}") if text else None
    if found is None or found.returncode != 0 or not found.stdout.strip():
        if text != spec:
            raise UsageError(f"{text!r} (in side {spec!r}) is not a git revision of {project_root()}")
        raise UsageError(f"{spec!r} is neither an interpreter path nor a git revision of {project_root()}")
    return found.stdout.strip()


def split_side(spec: str) -> tuple[str | None, str | None]:
    """(interpreter, revision) named by a side spec: `PYTHON`, `REV` or `PYTHON@REV` (either may be None).

    `PYTHON@REV` is split at the first `@` whose left part is a path (holds a `/`, starts with `.` or
    `~`, or exists), so revisions that hold an `@` themselves (`HEAD@{1}`, `@~2`) still read as revisions.
    """
    for i, ch in enumerate(spec):
        if ch != "@" or i == 0:
            continue
        left = spec[:i]
        if os.sep in left or left.startswith((".", "~")) or Path(left).exists():
            return left, spec[i + 1 :]
    path = Path(spec).expanduser()
    if os.sep in spec or spec.startswith((".", "~")) or path.exists():
        return spec, None
    return None, spec


def resolve_side(spec: str, env: dict[str, str] | None = None) -> Side:
    """A side spec -> a `Side`; UsageError when it names no interpreter or revision.

    `PYTHON` runs that interpreter's own rnnbench (an environment); `REV` checks out that git revision of
    this project and runs it with this interpreter; `PYTHON@REV` runs revision REV with interpreter PYTHON
    (the previous night of the nightly: its commit in its own environment, docs/pipeline.md).
    """
    env = dict(env or {})
    python, revision = split_side(spec)
    if revision is not None and python is not None:
        if not revision:
            raise UsageError(f"side {spec!r}: nothing after '@' (expected PYTHON@REV)")
        return Side(spec, _interpreter(python, spec), _revision(revision, spec), env)
    if python is not None:
        return Side(spec, _interpreter(python, spec), None, env)
    return Side(spec, sys.executable, _revision(spec, spec), env)


@contextlib.contextmanager
def _checkout(side: Side) -> Iterator[dict[str, str]]:
    """The environment the side's workers run with; a revision is checked out as a temporary worktree."""
    env = {**IDLE_ENV, **os.environ, **side.env}
    if side.revision is None:
        yield env
        return
    tmp = Path(tempfile.mkdtemp(prefix=f"rnnbench-ab-{side.revision[:8]}-"))
    tree = tmp / "tree"
    added = _git("worktree", "add", "--detach", str(tree), side.revision)
    if added.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(f"cannot check out {side.spec}: {(added.stderr.strip().splitlines() or ['git failed'])[-1]}")
    try:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH", "")]))
        yield env
    finally:
        _git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(tmp, ignore_errors=True)
        _git("worktree", "prune")


class _Driver:
    """One side's worker process, speaking `ab_driver.py`'s JSON lines."""

    def __init__(self, side: Side, env: dict[str, str], threads: int, timeout: float) -> None:
        self.side, self.env, self.threads = side, env, threads
        self.log = tempfile.TemporaryFile()  # the worker's stderr: framework chatter, and the reason it died
        # a neutral working directory: `python -c` puts it first on sys.path, where a stray
        # rnnbench/ folder would shadow the side's own
        self.cwd = tempfile.mkdtemp(prefix="rnnbench-ab-cwd-")
        try:
            self.proc = subprocess.Popen(
                [side.python, "-c", DRIVER.read_text()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
                env=env,
                cwd=self.cwd,
            )
        except OSError:
            self.log.close()
            shutil.rmtree(self.cwd, ignore_errors=True)
            raise
        self.buf = b""
        try:
            self.hello: dict[str, Any] = self.ask({"op": "hello", "threads": threads}, timeout)
        except BaseException:  # a side that cannot start leaves no process and no directory behind
            self.close()
            raise

    def last_error(self) -> str:
        self.log.seek(0)
        lines = [ln.strip() for ln in self.log.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:300] if lines else "no message"

    def ask(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send `msg` and wait for one reply line; RuntimeError if the process dies or hangs."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise RuntimeError(self._died()) from None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError(f"timed out after {timeout:g}s (worker killed)")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise RuntimeError(self._died())
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _died(self) -> str:
        try:
            code = self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"worker process died ({how}): {self.last_error()}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)

    def close(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(b'{"op": "exit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(10)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            pass
        self.kill()
        self.log.close()
        shutil.rmtree(self.cwd, ignore_errors=True)


def _probe(side: Side, env: dict[str, str], threads: int) -> dict[str, Any]:
    """The side's fingerprint, read by its own rnnbench; UsageError if it has none or cannot start."""
    try:
        driver = _Driver(side, env, threads, PROBE_TIMEOUT_S)
    except OSError as exc:
        raise UsageError(f"cannot start {side.spec}: {exc.strerror or exc}") from None
    except RuntimeError as exc:
        msg = str(exc)
        if "No module named 'rnnbench'" in msg or "ModuleNotFoundError" in msg:
            raise UsageError(f"{side.spec}: this environment has no rnnbench (pip install it there)") from None
        raise UsageError(f"{side.spec}: cannot run rnnbench's worker: {msg}") from None
    try:
        return driver.hello
    finally:
        driver.close()


def _side_record(reply: object, case: Case, threads: int) -> Record:
    """A side's record as its worker sent it (JSON), typed; a reply that is not a valid record of `case`
    fails the case with the reason (an older side's rnnbench writes records this one still reads)."""
    if isinstance(reply, dict) and set(reply) == {"error"}:  # the side's own account of a failure
        return make_record(case, "failed", threads=threads, error=reply["error"])
    try:
        record = Record.from_json(reply)
    except RecordError as exc:
        return make_record(case, "failed", threads=threads, error=f"the worker's record is malformed: {exc}")
    if record.key != case.key:
        return make_record(case, "failed", threads=threads, error=f"the worker answered for {record.key}")
    return record


def _results_dir(opts: ABOptions, name: str) -> Path:
    return opts.base_results_dir if name == "base" and opts.base_results_dir is not None else opts.results_dir


def _done_on_both(prints: dict[str, dict[str, Any]], opts: ABOptions) -> set[str]:
    """The case keys both sides already recorded in earlier `ab` runs (each side's documents in its own
    results folder, for its own machine and commit, with an `ab` header naming that side): what `--resume`
    skips. UsageError while another process still writes one of those documents.

    A case one side recorded and the other did not (a SIGKILL between the two documents' writes) is
    measured again on both; its older one-sided record is then a duplicate that `merge` names.
    """
    done: list[set[str]] = []
    for name in ("base", "new"):
        machine = prints[name]["machine"]
        results = _results_dir(opts, name)
        live = live_writers(results, machine["machine"], machine.get("git_commit"))
        if live:
            path, pid = live[0]
            holder = f"process {pid}" if pid > 0 else "another process"
            raise UsageError(f"cannot resume: {holder} is still writing {path}; wait for it to end")
        keys: set[str] = set()
        for _, doc in iter_runs(results):
            head = doc.extra.get("ab")
            fp = doc.machine
            if not isinstance(head, dict) or head.get("side") != name:
                continue  # the other side's documents, when both share a folder, or a plain run's
            if fp.get("machine") == machine["machine"] and fp.get("git_commit") == machine.get("git_commit"):
                keys |= {r.key for r in doc.records if r.status in ("ok", "failed", "inaccurate")}
        done.append(keys)
    return done[0] & done[1]


def _open_writers(
    sides: dict[str, Side], envs: dict[str, dict[str, str]], prints: dict[str, dict[str, Any]], stepped: bool,
    opts: ABOptions, grid: Grid | None,
) -> dict[str, RunWriter]:  # fmt: skip
    """One run document per side, each with an `ab` header naming the other."""
    writers: dict[str, RunWriter] = {}
    try:
        for name in sides:
            writers[name] = RunWriter(
                _results_dir(opts, name), prints[name]["machine"], command=opts.command, preset=opts.preset,
                shard=opts.shard, grid=grid,
            )  # fmt: skip
    except BaseException:
        for w in writers.values():
            w.close()
        raise
    for name, w in writers.items():
        w.set_ab(
            ABHeader(
                side=name, spec=sides[name].spec, revision=sides[name].revision,
                other_run_id=writers["new" if name == "base" else "base"].run_id, rounds=opts.rounds,
                extra_rounds=opts.extra_rounds, seed=opts.seed, interleave="turn" if stepped else "round",
                idle_env={k: envs[name][k] for k in IDLE_ENV},
                selftest={k: v for k, v in sides[name].env.items() if k.startswith("RNNBENCH_SELFTEST")},
            )
        )  # fmt: skip
    return writers


class _Interleaved:
    """The rounds of one `ab` run: every case on both sides back to back, its records in both documents."""

    def __init__(
        self, sides: dict[str, Side], envs: dict[str, dict[str, str]], writers: dict[str, RunWriter], stepped: bool,
        opts: ABOptions, bar: Any,
    ) -> None:  # fmt: skip
        self.sides, self.envs, self.writers, self.stepped, self.opts, self.bar = (
            sides,
            envs,
            writers,
            stepped,
            opts,
            bar,
        )
        self.rng = random.Random(opts.seed)
        self.config = dataclasses.asdict(opts.timing)
        self.position: dict[str, int] = {}  # case key -> index of its records (the same in both documents)

    def visit(self, drivers: dict[str, _Driver | None], case: Case, r: int, label: str) -> None:
        """One round of `case` on both sides, added to (or, in round 0, starting) its records."""
        self.bar.set_postfix_str(f"{case.key} ({label})", refresh=False)
        if r > 0 and any(self.writers[n].record(self.position[case.key]).status != "ok" for n in self.sides):
            return  # no pair to add to
        if self.stepped:
            records = _measure_pair(drivers, self.sides, self.envs, case, self.config, self.opts, self.rng)
        else:
            names = list(self.sides)
            self.rng.shuffle(names)
            records = {
                n: _measure(drivers, n, self.sides[n], self.envs[n], case, self.config, self.opts) for n in names
            }
        for name, record in records.items():
            writer = self.writers[name]
            if r == 0:
                writer.add(record)
            else:
                i = self.position[case.key]
                writer.replace(i, writer.record(i).merge(record))  # every round's samples kept apart
        # the two documents are written together: a SIGKILL then leaves (almost never) a case on one
        # side only, which `--resume` would measure again and `merge` reject as measured twice
        if len({w.pending for w in self.writers.values()}) > 1:
            for w in self.writers.values():
                w.flush()
        if r == 0:
            self.position[case.key] = len(self.writers["base"]) - 1

    def group(self, members: list[Case]) -> None:
        """`--rounds` rounds over one (framework, device) group, then extra rounds for its undecided cases."""
        opts, bar = self.opts, self.bar
        drivers: dict[str, _Driver | None] = dict.fromkeys(self.sides)
        try:
            for r in range(opts.rounds):
                order = list(members)
                self.rng.shuffle(order)  # a fresh order per round spreads order effects and drift evenly
                for case in order:
                    self.visit(drivers, case, r, f"round {r + 1}/{opts.rounds}")
                    bar.update(1)
            for e in range(opts.extra_rounds):
                pairs = {n: [rec.to_json() for rec in self.writers[n].records] for n in self.sides}
                order = [c for c in members if _undecided(pairs, self.position[c.key], opts.threshold)]
                if not order:
                    break
                self.rng.shuffle(order)
                bar.total += len(order)
                for case in order:
                    self.visit(drivers, case, opts.rounds + e, f"extra round {e + 1}/{opts.extra_rounds}")
                    bar.update(1)
        finally:
            for d in drivers.values():
                if d is not None:
                    d.close()


def run_ab(
    cases: Sequence[Case], machine_threads: int, opts: ABOptions, grid: Grid | None = None,
    skipped: Sequence[tuple[Case, str]] = (),
) -> ABResult:  # fmt: skip
    """Measure `cases` on both sides, interleaved; store two run documents; judge them paired.

    `grid`: the sweep `cases` come from, filed in both documents' headers. `skipped`: the grid's cases
    that do not apply here, with the reason, recorded as `skipped` in both documents (as `run` records
    them), so a sharded ab's documents merge against the grid. With `opts.resume`, cases both sides
    already recorded are left out, and the comparison covers the cases measured now.
    """
    from tqdm import tqdm

    sides = {"base": resolve_side(opts.base, opts.base_env), "new": resolve_side(opts.new, opts.new_env)}
    with contextlib.ExitStack() as stack:
        envs = {name: stack.enter_context(_checkout(side)) for name, side in sides.items()}
        # both sides must start and import rnnbench before anything is written
        prints = {name: _probe(side, envs[name], machine_threads) for name, side in sides.items()}
        if opts.resume:
            done = _done_on_both(prints, opts)
            before = len(cases)
            cases = [c for c in cases if c.key not in done]
            print(f"rnnbench: --resume: {before - len(cases)} cases already recorded on both sides, "
                  f"{len(cases)} to go", file=sys.stderr)  # fmt: skip
            if before and not cases:  # (a shard with no case of its own still files its empty documents)
                raise NothingLeft("--resume: every case is recorded on both sides; no new document written")
        # in turns where both sides' rnnbench can hold a case open; case by case otherwise
        stepped = all(bool(prints[name].get("stepped")) for name in sides)
        writers = _open_writers(sides, envs, prints, stepped, opts, grid)
        bar = tqdm(
            total=len(cases) * opts.rounds, unit="case", file=sys.stderr, disable=not opts.progress, dynamic_ncols=True
        )
        try:
            for w in writers.values():
                for case, why in skipped:
                    w.add(make_record(case, "skipped", threads=opts.threads, error=why))
            first_measured = len(writers["base"])
            run = _Interleaved(sides, envs, writers, stepped, opts, bar)
            groups = itertools.groupby(
                sorted(cases, key=lambda c: (c.framework, c.device)), key=lambda c: (c.framework, c.device)
            )
            for _, group in groups:
                run.group(list(group))
            for w in writers.values():
                w.finish()
        finally:
            bar.close()
            for w in writers.values():
                w.close()  # release the documents' locks (see store.RunWriter)
    base, new = writers["base"], writers["new"]
    comparison = judge_records(
        [r.to_json() for r in base.records[first_measured:]], [r.to_json() for r in new.records[first_measured:]],
        opts.threshold,
    )  # fmt: skip
    return ABResult(comparison, base.path, new.path, base.document(), new.document())


def _undecided(records: dict[str, list[dict[str, Any]]], i: int, threshold: float) -> bool:
    """Whether the pair at index `i` can still be decided by more rounds: both sides measured, and the
    verdict `too noisy`, or too few rounds quiet (a busy round is dropped: a quiet one may replace it)."""
    rb, rn = records["base"][i], records["new"][i]
    if rb["status"] != "ok" or rn["status"] != "ok":
        return False
    v, busy = paired_verdict(rb, rn, threshold)
    return busy or v.verdict == Verdict.TOO_NOISY


def _driver(drivers: dict[str, _Driver | None], name: str, side: Side, env: dict[str, str], opts: ABOptions) -> _Driver:
    driver = drivers[name]
    if driver is None:
        driver = drivers[name] = _Driver(side, env, opts.threads, PROBE_TIMEOUT_S)
    return driver


def _drop(drivers: dict[str, _Driver | None], name: str) -> None:
    """Close a worker that crashed or hung; the next case starts a fresh one."""
    if drivers[name] is not None:
        drivers[name].close()  # type: ignore[union-attr]
    drivers[name] = None


def _quiet(samples: Sequence[float], threshold: float) -> bool:
    """The timing engine's stopping rule (`timing.is_noisy`: IQR / median above `threshold`) passed."""
    return len(samples) >= 2 and not is_noisy(samples, threshold)


# Turns, not single samples. Measured on the 2-core VM (docs/measurements/2026-12-07-ci-cpu-2core-ab-turns.md):
# alternating one sample at a time, samples had IQR / median 21% over the quick grid (the side that
# just ran has evicted the other's caches and its thread pools are still spinning); in turns, with a
# pause between them and the first sample of each turn dropped, a torch A/A's samples were as quiet
# as a case timed alone (3.3%) and its intervals 2.7% wide, against 14.1% case by case.
TURN_S = 0.05  # sampled seconds per turn (after the dropped re-warming sample)
TURN_SAMPLES = (3, 32)  # samples kept per turn, at least and at most
TURN_GAP_S = 0.01  # a pause between turns: the side that just ran lets its thread pools go to sleep
# a round's paired ratio is resolved when its standard error is this share of the verdict threshold:
# three rounds then give an interval of about +-threshold/2, so an unchanged case can be called `same`
RESOLVE_SHARE = 0.2


def _resolved(turns: dict[str, list[list[float]]], open_: dict[str, int], noise: float, threshold: float) -> bool:
    """Both sides quiet (the engine's IQR rule) and, with both open, the round's ratio known to
    RESOLVE_SHARE x threshold: the standard error of the mean log ratio of paired turns (turn t of
    NEW over turn t of BASE, each a median), from three turns on."""
    import numpy as np

    if not all(_quiet([v for t in turns[n] for v in t], noise) for n in open_):
        return False
    if len(open_) < 2:
        return True
    a, b = ([float(np.median(t)) for t in turns[n]] for n in open_)
    k = min(len(a), len(b))
    if k < 3:
        return False
    logs = np.log(np.asarray(b[:k]) / np.asarray(a[:k]))
    return float(np.std(logs, ddof=1)) / np.sqrt(k) <= RESOLVE_SHARE * threshold


def _measure_pair(
    drivers: dict[str, _Driver | None],
    sides: dict[str, Side],
    envs: dict[str, dict[str, str]],
    case: Case,
    config: dict[str, Any],
    opts: ABOptions,
    rng: random.Random,
) -> dict[str, Record]:
    """One round of `case` on both sides, alternating in turns (A B, B A, A B, ...).

    Each side builds (or re-warms) its kernel first; then each takes a turn of
    samples (the same calls per sample on both sides: the larger of their
    calibrations), about TURN_S long, whose first sample is dropped: so a
    change of the machine's speed that lasts longer than a turn hits both
    alike. Stops once both sides are quiet, hold `min_samples`, and the round's
    ratio is resolved (`_resolved`); or when both sides' budget is spent; or
    at `max_samples`. A side that fails or hangs gets a failed record; the
    other finishes alone.
    """
    start = time.perf_counter()
    records: dict[str, Record] = {}
    numbers: dict[str, int] = {}
    names = list(sides)
    rng.shuffle(names)

    def fail(name: str, error: str) -> None:
        records[name] = make_record(case, "failed", threads=opts.threads, error=error)
        numbers.pop(name, None)

    def ask(name: str, msg: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return _driver(drivers, name, sides[name], envs[name], opts).ask(msg, opts.timeout_s)
        except RuntimeError as exc:
            _drop(drivers, name)
            fail(name, str(exc))
            return None

    for name in names:
        reply = ask(name, {"op": "open", "case": case.to_dict(), "config": config})
        if reply is None:
            continue
        if "number" in reply:
            numbers[name] = int(reply["number"])
        else:  # the case cannot be timed (skipped, inaccurate, failed): the side's record says why
            records[name] = _side_record(
                reply.get("record") or {"error": str(reply.get("error", "no reply"))}, case, opts.threads
            )
    turns: dict[str, list[list[float]]] = {n: [] for n in numbers}
    number = max(numbers.values(), default=1)
    per_turn = TURN_SAMPLES[0]
    deadline = time.perf_counter() + config["budget_s"] * max(1, len(numbers))
    t = 0
    while numbers:
        for name in [n for n in names if n in numbers][:: 1 if t % 2 == 0 else -1]:
            time.sleep(TURN_GAP_S)
            # one re-warming sample first, neither kept nor returned: it reloads what the other side evicted
            reply = ask(name, {"op": "sample", "number": number, "count": per_turn, "rewarm": 1})
            if reply is not None and "s" in reply:
                turns[name].append([float(v) for v in reply["s"]])
            elif reply is not None:
                fail(name, str(reply.get("error", "no sample")))
        t += 1
        kept = min((sum(map(len, turns[n])) for n in numbers), default=0)
        if t == 1 and kept:  # the first turn tells how long a sample takes: size the turns to TURN_S
            sample_s = statistics.median(v for n in numbers for v in turns[n][0]) * number
            per_turn = min(TURN_SAMPLES[1], max(TURN_SAMPLES[0], math.ceil(TURN_S / max(sample_s, 1e-9))))
        if time.perf_counter() >= deadline or kept >= config["max_samples"]:
            break
        if kept >= config["min_samples"] and _resolved(turns, numbers, config["noise_threshold"], opts.threshold):
            break
    for name in [n for n in names if n in numbers]:
        reply = ask(name, {"op": "close"})
        if reply is not None:
            records[name] = _side_record(reply, case, opts.threads)
    wall = (time.perf_counter() - start) / 2
    return {name: dataclasses.replace(record, wall_s=wall) for name, record in records.items()}


def _measure(
    drivers: dict[str, _Driver | None],
    name: str,
    side: Side,
    env: dict[str, str],
    case: Case,
    config: dict[str, Any],
    opts: ABOptions,
) -> Record:
    """One round of `case` on one side; a crash or hang becomes a failed record and a fresh worker next time."""
    start = time.perf_counter()
    try:
        reply = _driver(drivers, name, side, env, opts).ask(
            {"op": "case", "case": case.to_dict(), "config": config}, opts.timeout_s
        )
        record = _side_record(reply, case, opts.threads)
    except RuntimeError as exc:
        record = make_record(case, "failed", threads=opts.threads, error=str(exc))
        _drop(drivers, name)
    return dataclasses.replace(record, wall_s=time.perf_counter() - start)


def ab_pair(base: str, new: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """The records of BASE and NEW when they are the two documents of one `ab` run (each names the
    other, BASE as side base), else None; malformed records are left out, as every reader does."""
    from rnnbench.sweep.records import DocumentError, RunDocument

    docs = []
    for path in (base, new):
        try:
            raw = json.loads(Path(path).read_text())
            doc, _ = RunDocument.from_json(raw)
        except (OSError, ValueError, DocumentError):
            return None
        docs.append(doc)
    head_b, head_n = docs[0].extra.get("ab"), docs[1].extra.get("ab")
    if not isinstance(head_b, dict) or not isinstance(head_n, dict):
        return None
    linked = head_b.get("other_run_id") == docs[1].run_id and head_n.get("other_run_id") == docs[0].run_id
    if not linked or head_b.get("side") != "base":
        return None
    return [r.to_json() for r in docs[0].records], [r.to_json() for r in docs[1].records]
