"""The parser of every subcommand and the one place where errors become exit codes.

Exit codes: 0 success; 1 the command ran and found a problem (a failed case,
a failed peak probe, a regression with `--fail-on-regression`); 2 bad input (a
`UsageError`) or a path that cannot be read or written (a full disk
included), printed as one line; 3 (`run` only) every case ran but some were
numerically inaccurate (and none failed); 130 interrupted (Ctrl-C), also one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from rnnbench.cli import (
    ab,
    bisect,
    compare,
    doctor,
    env,
    export,
    harness,
    history,
    landing,
    listing,
    merge,
    nightly,
    regressions,
    report,
    run,
    verdicts,
    verify,
)
from rnnbench.cli.options import Parser
from rnnbench.errors import UsageError

__all__ = ["build_parser", "main"]

COMMANDS = (
    verify,
    run,
    env,
    listing,
    harness,
    export,
    history,
    report,
    compare,
    ab,
    bisect,
    regressions,
    doctor,
    merge,
    verdicts,
    landing,
    nightly,
)


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
        code = func(args)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below rather than printed
        return code
    except UsageError as exc:
        print(f"rnnbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (`rnnbench compare ... | head`): nothing left to tell it
        _silence_stdout()
        return 1
    except OSError as exc:
        # a path that cannot be read or written, found only while working (a full disk, a folder
        # removed underneath): one line naming it; writers replace files atomically, so what is
        # on disk is still the last complete version
        what = exc.strerror or str(exc)
        where = f"{exc.filename}: " if exc.filename and str(exc.filename) not in what else ""
        print(f"rnnbench: error: {where}{what}".replace("\n", " "), file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
