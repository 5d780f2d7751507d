"""Flags shared by several commands and the argparse `type=` validators behind every flag.

A validator returns the parsed value or raises `argparse.ArgumentTypeError`,
which the parser turns into a one-line `UsageError` (exit 2) naming the flag.
Every numeric flag is checked here: finite, positive where it must be, and
bounded where a larger value would only exhaust the machine.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from rnnbench.errors import UsageError

if TYPE_CHECKING:
    from rnnbench.sweep.grid import Grid

__all__ = [
    "Parser",
    "add_grid_flags",
    "fraction",
    "grid_from_args",
    "int_range",
    "names",
    "positive_float",
    "positive_ints",
    "shard_spec",
    "threads",
]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one-line `UsageError`s instead of usage dumps and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def names(text: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']; an empty list is an error (a filter that selects nothing)."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return values


def positive_ints(text: str) -> list[int]:
    """'1,32' -> [1, 32]; every value a positive integer."""
    try:
        values = [int(v) for v in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def positive_float(high: float = math.inf) -> Callable[[str], float]:
    """A finite number in (0, high]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or not 0 < value <= high:
            bound = "" if high == math.inf else f" and at most {high:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number above 0{bound}, got {text!r}")
        return value

    return parse


def fraction(text: str) -> float:
    """`5%` or `0.05` -> 0.05, strictly between 0 and 1."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.05 or 5%, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (0% and 100%), exclusive, got {text!r}")
    return value


# more threads than this is a typo, not a machine; the cap keeps a worker from spawning 100k threads
MAX_THREADS = 1024
threads = int_range(1, MAX_THREADS)


def shard_spec(text: str) -> tuple[int, int]:
    """'K/N' (1-based K) -> (K, N)."""
    from rnnbench.sweep.grid import parse_shard

    try:
        return parse_shard(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_grid_flags(p: argparse.ArgumentParser, default_preset: str) -> None:
    """Flags shared by every command that expands a grid (verify, run)."""
    from rnnbench.sweep.grid import PRESETS

    p.add_argument(
        "--preset", default=default_preset, choices=list(PRESETS), help=f"grid to start from ({', '.join(PRESETS)})"
    )
    p.add_argument("--framework", type=names, help="comma list: numpy,torch,tensorflow,jax")
    p.add_argument("--device", type=names, help="comma list: cpu,cuda")
    p.add_argument("--cell", type=names, help="comma list of cell variants: rnn, rnn[relu], gru, gru*, lstm, ...")
    p.add_argument("--formulation", type=names, help="comma list: separate,concat,hoisted,native")
    p.add_argument("--mode", type=names, help="comma list: eager,compiled")
    p.add_argument("--pass", dest="pass_", type=names, help="comma list: forward,train")
    p.add_argument("--dtype", type=names, help="comma list: float32,float16,bfloat16")
    p.add_argument(
        "--precision", type=names, help="comma list: mixed (float32 master weights; default), pure (all in dtype)"
    )
    p.add_argument("--fp32", type=names, help="comma list: strict (full FP32 matmuls; default), tf32")
    p.add_argument(
        "--compiler",
        type=names,
        help="comma list for compiled mode: inductor, inductor+cudagraphs (GPU), tf.function, tf.function+xla, xla",
    )
    p.add_argument("--head", type=names, help="comma list: none (default), linear (logits + cross-entropy loss)")
    p.add_argument("--vocab", type=positive_ints, help="output-head sizes for --head linear (default 32)")
    p.add_argument("--batch", type=positive_ints)
    p.add_argument("--input-size", type=positive_ints)
    p.add_argument("--hidden", type=positive_ints)
    p.add_argument("--seq-len", type=positive_ints)
    p.add_argument("--layers", type=positive_ints)


def grid_from_args(args: argparse.Namespace, check_installed: bool = True) -> Grid:
    """The grid that `add_grid_flags`' flags describe; UsageError for a framework that is not installed.

    `check_installed=False` rebuilds the grid another machine ran (`merge` reads it from a shard's command).
    """
    from rnnbench import backends
    from rnnbench.sweep.grid import override, preset

    grid = override(
        preset(args.preset),
        frameworks=args.framework,
        devices=args.device,
        cells=args.cell,
        formulations=args.formulation,
        modes=args.mode,
        passes=args.pass_,
        dtypes=args.dtype,
        precisions=args.precision,
        fp32=args.fp32,
        compilers=args.compiler,
        heads=args.head,
        vocabs=args.vocab,
        layers=args.layers,
        batch=args.batch,
        input_size=args.input_size,
        hidden=args.hidden,
        seq_len=args.seq_len,
    )
    if args.framework and check_installed:
        missing = [f for f in args.framework if f not in backends.available()]
        if missing:
            raise UsageError(f"framework {missing[0]!r} is not installed (pip install -e '.[{missing[0]}]')")
    return grid
