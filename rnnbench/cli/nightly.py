"""`rnnbench nightly plan|bisect-args`: the nightly scripts' decisions, as shell-readable lines (see `sweep.nightly`).

`plan HISTORY` says whether tonight is paired, against which BASE side, and
why; the previous environment it needs is kept or rebuilt on the way. The
previous night comes from the columnar history HISTORY/nights (this module
reads it, the store being a layer above `sweep.nightly`, and hands it to
`plan_night`).
`bisect-args VERDICTS` says which regressed cases of a paired night
`rnnbench bisect` should search, and between which commits. Both print
`name=value` lines quoted for the shell (`eval "$(rnnbench nightly plan H)"`),
so scripts/nightly.sh and scripts/publish.sh hold no decision of their own.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from rnnbench.analysis import columnar
from rnnbench.analysis.verdicts import read_verdicts
from rnnbench.cli.options import add_verbs, input_path, int_range, nonempty, output_file
from rnnbench.measure.machine import git_state, lock_digest, machine_name, packages
from rnnbench.sweep import nightly
from rnnbench.sweep.nightly import (
    NIGHTS_DIR,
    PreviousNight,
    base_interpreter,
    ensure_environment,
    plan_night,
    regressed_cases,
)

__all__ = ["add_parser", "previous_night", "run_bisect_args", "run_plan"]


def _lines(values: dict[str, str]) -> str:
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def _unreadable(exc: Exception) -> None:
    # as an unreadable file under runs/ is, an unreadable night is no night: the one before it is the previous
    print(f"rnnbench: warning: {exc}", file=sys.stderr)


def previous_night(history: Path, machine: str) -> PreviousNight | None:
    """The previous night of `machine` in the nightly's HISTORY: from its columnar history (HISTORY/nights,
    the newest night's stored document header: one file's footer read), or from HISTORY/runs/ where an
    older history still keeps the documents (`sweep.nightly.previous_night` picks the later)."""
    store = history / NIGHTS_DIR
    stored = (
        ((night.summary, header) for night, header in columnar.newest_documents(store, machine, _unreadable))
        if columnar.is_history(store)
        else ()
    )
    return nightly.previous_night(history, machine, stored)


def run_plan(args: argparse.Namespace) -> int:
    commit, dirty = git_state()
    pkgs = packages()
    # absolute: the BASE side names the kept environment's interpreter, and a resumed shard may start elsewhere
    history = Path(args.history).absolute()
    machine = machine_name()
    plan = plan_night(previous_night(history, machine), machine, commit, lock_digest(pkgs), pkgs)
    environment = None
    if plan.needs_environment:
        prev, base_lock = plan.previous, plan.base_lock
        if prev is None or prev.packages is None or base_lock is None:  # a lock digest without its lines
            plan = plan.without_environment("the previous night's document holds no package list to rebuild from")
        elif args.no_rebuild:
            plan = plan.without_environment("rebuilding it was turned off (--no-rebuild)")
        elif (python := base_interpreter(prev.python)) is None:
            plan = plan.without_environment(f"it ran Python {prev.python}, which is not installed here")
        else:
            built = ensure_environment(history, base_lock, prev.packages, python)
            if built.path is None:
                print(f"rnnbench: cannot rebuild the previous environment: {built.error}", file=sys.stderr)
                plan = plan.without_environment(f"it could not be rebuilt ({built.error})")
            else:
                environment = built.path
                how = "kept" if built.reused else "rebuilt"
                print(f"rnnbench: the previous environment ({plan.base_lock}): {how} at {environment}", file=sys.stderr)
    doc = plan.to_json() | {
        "base_side": plan.base_side(environment) if plan.paired else None,
        "new_side": sys.executable,
        "environment": str(environment) if environment else None,
        "dirty": dirty,
    }
    if args.out:
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(args.out)
    print(f"rnnbench: {'paired' if plan.paired else 'plain'} night: {plan.reason}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
        return 0
    sys.stdout.write(
        _lines(
            {
                "paired": "1" if plan.paired else "0",
                "base": doc["base_side"] or "",
                "new": sys.executable,
                "reason": plan.reason,
            }
        )
    )
    return 0


def run_bisect_args(args: argparse.Namespace) -> int:
    request = regressed_cases(read_verdicts(Path(args.verdicts)))
    if request is None:
        sys.stdout.write(_lines({"bisect": "0"}))
        return 0
    keys = request.keys[: args.max_cases]
    sys.stdout.write(_lines({"bisect": "1", "good": request.good, "bad": request.bad, "cases": " ".join(keys)}))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    steps = add_verbs(sub, "nightly", "the nightly's decisions: is tonight paired, and what to bisect", "step")
    plan = steps.add_parser(
        "plan",
        help="tonight against the previous night of this machine in HISTORY: paired (and its BASE side) or plain",
        description=(
            "Read the previous night of this machine from the history HISTORY/nights/ (or, in a history kept "
            "before the nights' documents left it, the newest run document under HISTORY/runs/<machine>/) and "
            "compare its commit and environment lock with this checkout's and this interpreter's. Prints paired=0|1, base=SIDE "
            "(an `ab` side spec: REV or PYTHON@REV), new=PYTHON and reason=TEXT, quoted for the shell. When the "
            "environment changed, its previous one is kept or rebuilt under HISTORY/envs/<lock_digest>/."
        ),
    )
    plan.add_argument(
        "history",
        metavar="HISTORY",
        type=nonempty,
        help="the nightly's history folder (need not exist: the first night)",
    )
    plan.add_argument("--out", type=output_file((".json",)), help="also write the plan as JSON here")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON instead of shell lines")
    plan.add_argument(
        "--no-rebuild", action="store_true",
        help="never rebuild a previous environment: pair by commit only when the environment changed",
    )  # fmt: skip
    plan.set_defaults(func=run_plan)
    bis = steps.add_parser(
        "bisect-args",
        help="the regressed cases of a paired night and the commits between which to bisect them",
    )
    bis.add_argument("verdicts", metavar="VERDICTS", type=input_path, help="the night's verdicts.json")
    bis.add_argument(
        "--max-cases",
        type=int_range(1, 1000),
        default=8,
        help="bisect on at most this many regressed cases (default 8)",
    )
    bis.set_defaults(func=run_bisect_args)
