"""`rnnbench env`: print the machine fingerprint stored with every result."""

from __future__ import annotations

import argparse
import json

from rnnbench.cli.options import threads
from rnnbench.display import format_table

__all__ = ["add_parser", "run"]


def run(args: argparse.Namespace) -> int:
    from rnnbench.measure.machine import fingerprint

    fp = fingerprint(args.threads)
    if args.json:
        print(json.dumps(fp, indent=1))
        return 0
    rows = [[k, json.dumps(v) if isinstance(v, dict) else v] for k, v in fp.items()]
    print(format_table(["field", "value"], rows))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("env", help="print this machine's fingerprint")
    p.add_argument("--threads", type=threads, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
