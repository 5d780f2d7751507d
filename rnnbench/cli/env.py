"""`rnnbench env`: print the machine fingerprint stored with every result, or the environment's lock."""

from __future__ import annotations

import argparse
import json

from rnnbench.cli.options import threads
from rnnbench.display import format_table

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    if args.lock:
        from rnnbench.measure.machine import lock_lines, packages

        # pip requirements: `python -m venv DIR && DIR/bin/pip install -r lock.txt` rebuilds this environment
        print("\n".join(lock_lines(packages())))
        return 0
    from rnnbench.measure.machine import fingerprint

    fp = fingerprint(args.threads)
    if args.json:
        print(json.dumps(fp, indent=1))
        return 0
    # the lock is long (every installed distribution): the table names how many, `--lock` lists them
    shown = {k: (f"{len(v)} distributions (rnnbench env --lock)" if k == "packages" else v) for k, v in fp.items()}
    rows = [[k, json.dumps(v) if isinstance(v, dict) else v] for k, v in shown.items()]
    print(format_table(["field", "value"], rows))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("env", help="print this machine's fingerprint (or, with --lock, its environment's lock)")
    p.add_argument("--threads", type=threads, default=None)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument(
        "--lock", action="store_true",
        help="print the environment's lock as pip requirement lines (name==version), to rebuild it with pip install -r",
    )  # fmt: skip
    p.set_defaults(func=run)
