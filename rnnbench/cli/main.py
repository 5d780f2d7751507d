"""The parser of every subcommand and the one place where errors become exit codes.

Exit codes: 0 success; 1 the command ran and found a problem (a failed case, a
regression with `--fail-on-regression`); 2 bad input (a `UsageError`,
printed as one line); 3 (`run` only) every case ran but some were numerically
inaccurate; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rnnbench.cli import (
    ab,
    compare,
    doctor,
    env,
    export,
    harness,
    landing,
    listing,
    merge,
    regressions,
    report,
    run,
    verify,
)
from rnnbench.cli.options import Parser
from rnnbench.errors import UsageError

__all__ = ["build_parser", "main"]

COMMANDS = (verify, run, env, listing, harness, export, report, compare, ab, regressions, doctor, merge, landing)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rnnbench", description="Time RNN cell formulations across frameworks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except UsageError as exc:
        print(f"rnnbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
