"""What one night of the nightly runs: a plain sweep, or tonight paired against the previous night.

This module owns the decision (`plan_night`) and the two things it needs
from the history folder the nightly keeps (docs/pipeline.md): the previous
night of this machine class (`previous_night`: its commit and environment
lock, from the run document header the columnar history `HISTORY/nights/`
keeps with each night, which the caller reads and hands in, since the store
lives a layer above; or, in a history kept before the night documents left
it, the newest run document under `HISTORY/runs/<machine>/`) and, when the
environment changed, the previous environment itself (`ensure_environment`:
kept, or rebuilt from the lock that night recorded, under
`HISTORY/envs/<lock_digest>/`). The scripts call them through `rnnbench
nightly plan`; no decision lives in bash.

The rule (issue 19): a case's level moves between nights by more than the
changes worth finding on a shared machine, so a change of code or
environment is judged by measuring both sides together, interleaved (`ab`),
never by comparing two nights' samples.

- no previous night: a plain run (the first night);
- the same commit and the same lock: a plain run, judged for drift only;
- another commit, the same lock: paired, BASE = the previous commit run by
  tonight's interpreter (`REV`);
- another lock (and either commit): paired, BASE = the previous commit run by
  the previous environment's interpreter (`PYTHON@REV`), kept or rebuilt from
  its lock; when it cannot be rebuilt, paired by commit only (or, with the
  same commit, a plain run), and the reason says so;
- a previous night without a lock (recorded before locks were): paired by
  commit only, and the reason says so.

`regressed_cases` reads a night's verdicts document (the `verdicts` command's
`SITE/verdicts.json`) back for `rnnbench bisect`: which cases regressed in a
paired night, and between which commits.
"""

from __future__ import annotations

import fcntl
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rnnbench.measure.machine import lock_lines
from rnnbench.sweep.store import RUNS_DIR, read_run

__all__ = [
    "ENVS_DIR",
    "NIGHTS_DIR",
    "PAIRED_DIR",
    "BisectRequest",
    "EnvironmentBuild",
    "NightPlan",
    "PreviousNight",
    "base_interpreter",
    "ensure_environment",
    "lock_changes",
    "plan_night",
    "previous_night",
    "regressed_cases",
]

NIGHTS_DIR = "nights"  # HISTORY/nights/: the columnar history (analysis.columnar), every night and its header
PAIRED_DIR = "paired"  # SHARD/paired/runs/<machine>/: the BASE documents of paired nights (never nights)
ENVS_DIR = "envs"  # HISTORY/envs/<lock_digest>/: previous environments, kept for the next paired night
_COMPLETE = ".rnnbench-env-complete"  # written last: an environment without it is half-built
PIP_TIMEOUT_S = 3600.0  # a framework's wheels from a cold cache on a slow link


@dataclass(frozen=True)
class PreviousNight:
    """What the previous night of a machine class ran: its commit and environment lock."""

    path: Path  # where it was read from: the columnar night's summary file, or a run document
    run_id: str
    created: str
    commit: str | None
    lock_digest: str | None  # None: recorded before run documents carried a lock
    packages: Mapping[str, str] | None
    python: str | None = None  # the interpreter's version ("3.11.9"): the rebuilt environment needs the same

    @classmethod
    def from_document(cls, path: Path, header: Mapping[str, Any]) -> PreviousNight:
        """The night a run document's header describes (`path`: where it was read from)."""
        fp = header.get("machine") or {}
        fp = fp if isinstance(fp, Mapping) else {}
        pkgs, lock, python = fp.get("packages"), fp.get("lock_digest"), fp.get("python")
        return cls(
            path=Path(path), run_id=str(header.get("run_id")), created=str(header.get("created")),
            commit=fp.get("git_commit") if isinstance(fp.get("git_commit"), str) else None,
            lock_digest=lock if isinstance(lock, str) else None,
            packages={str(k): str(v) for k, v in pkgs.items()} if isinstance(pkgs, Mapping) else None,
            python=python if isinstance(python, str) else None,
        )  # fmt: skip


@dataclass(frozen=True)
class NightPlan:
    """Tonight: paired (and against what) or plain, and why, in words the published page can show."""

    paired: bool
    reason: str
    machine: str
    commit: str | None
    lock_digest: str | None
    previous: PreviousNight | None = None
    base_commit: str | None = None  # the commit BASE runs (the previous night's)
    base_lock: str | None = None  # the lock BASE runs in (tonight's, when paired by commit only)
    needs_environment: bool = False  # BASE runs in the previous environment (HISTORY/envs/<base_lock>)
    changes: tuple[str, ...] = ()  # "commit abc123 -> def456", "torch 2.13.0 -> 2.14.0", ...

    def base_side(self, environment: Path | None = None) -> str:
        """BASE's `ab` side spec: `REV`, or `PYTHON@REV` with the previous environment's interpreter."""
        if not self.paired or self.base_commit is None:
            raise ValueError("a plain night has no BASE side")
        if environment is None:
            return self.base_commit
        return f"{environment / 'bin' / 'python'}@{self.base_commit}"

    def without_environment(self, why: str) -> NightPlan:
        """This plan when the previous environment cannot be had: paired by commit only, or plain."""
        if not self.needs_environment:
            return self
        commit_changed = self.base_commit != self.commit
        reason = f"the environment changed ({', '.join(self.lock_change_words()) or 'lock'}) but {why}; " + (
            "paired by commit only" if commit_changed else "judged for drift only"
        )
        return replace(
            self,
            paired=commit_changed,
            reason=reason,
            base_commit=self.base_commit if commit_changed else None,
            base_lock=self.lock_digest if commit_changed else None,
            needs_environment=False,
        )

    def lock_change_words(self) -> list[str]:
        return [c for c in self.changes if not c.startswith("commit ")]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["previous"] = None if self.previous is None else {**asdict(self.previous), "path": str(self.previous.path)}
        d["changes"] = list(self.changes)
        if d["previous"] is not None:
            d["previous"].pop("packages", None)  # the lock itself stays in the documents
        return d


def previous_night(
    history: Path, machine: str, stored: Iterable[tuple[Path, Mapping[str, Any]]] = ()
) -> PreviousNight | None:
    """The previous night of `machine`, or None (the first night): the newest of `stored` (the columnar
    history's nights of that machine as (file, run document header), newest first: only the first is
    taken) and, for a history kept while the nights' documents were, the newest readable run document
    under `history/runs/<machine>/`; the later one when both are there (the document on a tie: it holds
    the package lock, which a night stored before headers were kept lacks).

    Documents are named by their start time (`store.RunWriter`), so the newest is the last name: only it
    is opened (and the one before it, and so on, when it cannot be read).
    """
    from_store = next((PreviousNight.from_document(path, header) for path, header in stored), None)
    folder = Path(history) / RUNS_DIR / machine
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    from_runs = None
    for path in reversed(paths):
        try:
            doc = read_run(path)
        except ValueError:
            continue  # a file that is not a run document is not a night
        from_runs = PreviousNight.from_document(
            path, {"run_id": doc.run_id, "created": doc.created, "machine": doc.machine}
        )
        break
    if from_store is None or from_runs is None:
        return from_store or from_runs
    return from_store if _when(from_store.created) > _when(from_runs.created) else from_runs


def _when(created: str) -> datetime:
    try:
        when = datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return datetime.min
    offset = when.utcoffset()
    return when.replace(tzinfo=None) - offset if offset is not None else when


def lock_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """The differences between two locks in words: "torch 2.13.0 -> 2.14.0", "+jax 0.4.30", "-flax 0.8.0"."""
    words = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None:
            words.append(f"+{name} {new}")
        elif new is None:
            words.append(f"-{name} {old}")
        else:
            words.append(f"{name} {old} -> {new}")
    return words


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "unknown"


def plan_night(
    prev: PreviousNight | None, machine: str, commit: str | None, lock_digest: str | None,
    packages: Mapping[str, str] | None = None,
) -> NightPlan:  # fmt: skip
    """Tonight's plan for `machine` at `commit` in the environment `lock_digest` (`packages` its lock, to name
    what changed), from the previous night of that machine (`previous_night`; see the module's rule)."""
    plain = NightPlan(False, "", machine, commit, lock_digest, previous=prev)
    if prev is None:
        return replace(plain, reason=f"first night of {machine}: nothing to pair with")
    if commit is None or prev.commit is None:
        which = "tonight's" if commit is None else "the previous night's"
        return replace(plain, reason=f"{which} commit is unknown: nothing to pair with")
    commit_changed = prev.commit != commit
    changes = [f"commit {_short(prev.commit)} -> {_short(commit)}"] if commit_changed else []
    if prev.lock_digest is None or lock_digest is None:
        which = "the previous night" if prev.lock_digest is None else "tonight"
        if not commit_changed:
            why = f"same commit {_short(commit)}; {which} records no environment lock: judged for drift only"
            return replace(plain, reason=why)
        return replace(
            plain, paired=True, reason=f"{which} records no environment lock: paired by commit only ({changes[0]})",
            base_commit=prev.commit, base_lock=lock_digest, changes=tuple(changes),
        )  # fmt: skip
    lock_changed = prev.lock_digest != lock_digest
    if lock_changed:
        if prev.packages is not None and packages is not None:
            changes += lock_changes(prev.packages, packages) or [f"lock {prev.lock_digest} -> {lock_digest}"]
        else:
            changes.append(f"lock {prev.lock_digest} -> {lock_digest}")
    if not changes:
        return replace(
            plain, reason=f"nothing changed (commit {_short(commit)}, lock {lock_digest}): judged for drift only"
        )
    what = " and ".join(w for w, on in (("commit", commit_changed), ("environment", lock_changed)) if on)
    return replace(
        plain, paired=True, reason=f"the {what} changed since the previous night ({prev.created}): paired against it",
        base_commit=prev.commit, base_lock=prev.lock_digest if lock_changed else lock_digest,
        needs_environment=lock_changed, changes=tuple(changes),
    )  # fmt: skip


# -- the previous environment --------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvironmentBuild:
    """The previous environment's folder, or why it could not be had."""

    path: Path | None
    reused: bool = False
    error: str | None = None
    log: list[str] = field(default_factory=list)


def base_interpreter(version: str | None) -> str | None:
    """An interpreter to build an environment of Python `version` with: this one when its major.minor
    matches (or the version is unknown), else `pythonX.Y` on PATH; None when there is none (compiled
    wheels are per Python minor version, so another one could not install the lock)."""
    if version is None or version.split(".")[:2] == platform.python_version().split(".")[:2]:
        return sys.executable
    minor = ".".join(version.split(".")[:2])
    return shutil.which(f"python{minor}")


Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)


def ensure_environment(
    history: Path, lock_digest: str, packages: Mapping[str, str], python: str, run: Runner = _run
) -> EnvironmentBuild:
    """The environment of lock `lock_digest` under `history/envs/`: kept from an earlier night, else rebuilt
    with `python -m venv` and `pip install --no-deps -r lock.txt` (the pip cache or the index serves the
    wheels; the lock names every distribution, so pip resolves nothing). A half-built folder (no marker:
    an interrupted build) is built again; a failed build is removed and its reason returned.
    """
    root = Path(history) / ENVS_DIR / lock_digest
    root.parent.mkdir(parents=True, exist_ok=True)
    # the history is no place for environments in git: the results branch must not take them in
    (root.parent / ".gitignore").write_text("*\n")
    # the shards of a SLURM array share the history folder: one of them builds, the others wait and reuse
    with open(root.parent / f".{lock_digest}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        return _build(root, lock_digest, packages, python, run)


def _build(root: Path, lock_digest: str, packages: Mapping[str, str], python: str, run: Runner) -> EnvironmentBuild:
    if (root / _COMPLETE).is_file() and (root / "bin" / "python").exists():
        return EnvironmentBuild(root, reused=True)
    if root.exists():
        shutil.rmtree(root)
    lock = root.parent / f"{lock_digest}.txt"
    lock.write_text("\n".join(lock_lines(dict(packages))) + "\n")
    log: list[str] = []
    steps = [
        [python, "-m", "venv", str(root)],
        [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(lock)],
    ]
    for cmd in steps:
        log.append(" ".join(cmd))
        try:
            done = run(cmd)
        except (OSError, subprocess.SubprocessError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            return EnvironmentBuild(None, error=f"{cmd[0]}: {exc}", log=log)
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            lines = [ln for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
            why = lines[-1].strip()[:300] if lines else f"exit code {done.returncode}"
            return EnvironmentBuild(None, error=f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} failed: {why}", log=log)
    (root / _COMPLETE).write_text(lock.read_text())
    return EnvironmentBuild(root, log=log)


# -- after a paired night: what to bisect ----------------------------------------------------------------


@dataclass(frozen=True)
class BisectRequest:
    """The regressed cases of a paired night and the commits they lie between."""

    good: str
    bad: str
    keys: tuple[str, ...]


def regressed_cases(verdicts: Mapping[str, Any]) -> BisectRequest | None:
    """From a verdicts document (api_version 1): the cases published as regressions by a paired verdict,
    with BASE's and NEW's commits; None when the night was not paired, found none, or the two commits are
    the same (an environment change: nothing to bisect over)."""
    pairing = verdicts.get("pairing")
    if not isinstance(pairing, Mapping) or not pairing.get("paired"):
        return None
    keys = []
    good = bad = None
    for case in verdicts.get("cases") or []:
        if not isinstance(case, Mapping) or case.get("verdict") != "regression" or case.get("method") != "paired":
            continue
        keys.append(str(case["key"]))
        good = good or (case.get("base") or {}).get("commit")
        bad = bad or (case.get("new") or {}).get("commit")
    if not keys or not good or not bad or good == bad:
        return None
    return BisectRequest(str(good), str(bad), tuple(keys))
