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


def cmd_export(args: argparse.Namespace) -> int:
    from rnnbench.frame import run_export

    return run_export(args)


def cmd_report(args: argparse.Namespace) -> int:
    from rnnbench.report import run_report

    return run_report(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from rnnbench.compare import run_compare

    return run_compare(args)


def cmd_regressions(args: argparse.Namespace) -> int:
    from rnnbench.history import run_regressions

    return run_regressions(args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from rnnbench.doctor import run_doctor

    return run_doctor(args)


def _fraction(text: str) -> float:
    """`5%` or `0.05` -> 0.05."""
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.05 or 5%, got {text!r}") from None


def add_analysis_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """export, report, compare, regressions, doctor: the commands that read results back."""
    paths_help = "result files or folders (runner documents, asv results); default: results/"
    formats = ("table", "markdown", "json")
    p = sub.add_parser("export", help="write every result under PATHS as one table (CSV or Parquet)")
    p.add_argument("paths", nargs="*", help=paths_help)
    p.add_argument("--out", required=True, help="file.csv or file.parquet")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="write a static HTML report with charts")
    p.add_argument("paths", nargs="*", help=paths_help)
    p.add_argument("--out", required=True, help="folder for index.html and its images")
    p.add_argument(
        "--threshold", type=_fraction, default=0.05, help="smallest step change marked in histories (default 5%%)"
    )
    p.add_argument("--max-charts", type=int, default=24, help="charts per section at most (default 24)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="verdicts per case between two result sets: faster, slower, same, too noisy")
    p.add_argument("base", metavar="BASE", help="result file, folder, or commit prefix in the results store")
    p.add_argument("new", metavar="NEW", help="result file, folder, or commit prefix in the results store")
    p.add_argument("--threshold", type=_fraction, default=0.05, help="smallest change that counts (default 5%%)")
    p.add_argument("--fail-on-regression", action="store_true", help="exit 1 if any case is slower")
    p.add_argument("--format", choices=formats, default="table")
    p.add_argument("--results", default="results", help="results store to look commits up in (default results/)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("regressions", help="step changes in every case's history")
    p.add_argument("paths", nargs="*", help=paths_help)
    p.add_argument("--threshold", type=_fraction, default=0.05, help="smallest step that counts (default 5%%)")
    p.add_argument("--format", choices=formats, default="table")
    p.set_defaults(func=cmd_regressions)

    p = sub.add_parser("doctor", help="how noisy is this machine? timer, noise, and compare's false-alarm rate")
    p.add_argument(
        "--rounds", type=int, default=5, help="A/A and injected-slowdown rounds over the kernel set (default 5)"
    )
    p.add_argument("--samples", type=int, default=15, help="samples per case and measurement set (default 15)")
    p.add_argument("--sample-time", type=float, default=0.002, help="target seconds per sample (default 0.002)")
    p.add_argument("--slowdown", type=_fraction, default=0.20, help="slowdown injected into concat (default 20%%)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads for the kernel set (default 1)")
    p.add_argument("--save", help="also write the measured sets as runner documents into this folder")
    p.set_defaults(func=cmd_doctor)


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
    add_analysis_commands(sub)
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
