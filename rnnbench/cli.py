"""The `rnnbench` command line: argument parsing and the one place errors become exit codes.

Every subcommand is a function `cmd_<name>(args) -> int`. A `UsageError`
anywhere (bad name, bad size, missing device) is printed as one line and
exits 2, never as a traceback; argparse's own errors are made one line too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rnnbench.errors import UsageError

if TYPE_CHECKING:
    from rnnbench.grid import Grid

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def add_grid_flags(p: argparse.ArgumentParser, default_preset: str) -> None:
    """Flags shared by every command that expands a grid (verify, run, list)."""
    from rnnbench.grid import PRESETS

    p.add_argument("--preset", default=default_preset, help=f"grid to start from ({', '.join(PRESETS)})")
    p.add_argument("--framework", type=_names, help="comma list: numpy,torch,tensorflow,jax")
    p.add_argument("--device", type=_names, help="comma list: cpu,cuda")
    p.add_argument("--cell", type=_names, help="comma list of cell variants: rnn, rnn[relu], gru, gru*, lstm, ...")
    p.add_argument("--formulation", type=_names, help="comma list: separate,concat,hoisted,native")
    p.add_argument("--mode", type=_names, help="comma list: eager,compiled")
    p.add_argument("--pass", dest="pass_", type=_names, help="comma list: forward,train")
    p.add_argument("--dtype", type=_names, help="comma list: float32,float16,bfloat16")
    p.add_argument("--batch", type=_ints)
    p.add_argument("--input-size", type=_ints)
    p.add_argument("--hidden", type=_ints)
    p.add_argument("--seq-len", type=_ints)
    p.add_argument("--layers", type=_ints)


def grid_from_args(args: argparse.Namespace) -> Grid:
    from rnnbench import backends
    from rnnbench.grid import override, preset

    grid = override(
        preset(args.preset),
        frameworks=args.framework,
        devices=args.device,
        cells=args.cell,
        formulations=args.formulation,
        modes=args.mode,
        passes=args.pass_,
        dtypes=args.dtype,
        layers=args.layers,
        batch=args.batch,
        input_size=args.input_size,
        hidden=args.hidden,
        seq_len=args.seq_len,
    )
    if args.framework:
        missing = [f for f in args.framework if f not in backends.available()]
        if missing:
            raise UsageError(f"framework {missing[0]!r} is not installed (pip install -e '.[{missing[0]}]')")
    return grid


def cmd_verify(args: argparse.Namespace) -> int:
    from rnnbench.verify_cli import verify_grid

    return verify_grid(grid_from_args(args), quiet=args.quiet)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnbench", description="Time RNN cell formulations across frameworks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("verify", help="check every formulation against the numpy reference")
    add_grid_flags(p, "verify")
    p.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")
    p.set_defaults(func=cmd_verify)
    from rnnbench import harness, run_cli

    run_cli.add_parsers(sub)
    harness.add_parser(sub)
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
