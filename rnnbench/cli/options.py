"""Flags shared by several commands and the argparse `type=` validators behind every flag.

A validator returns the parsed value or raises `argparse.ArgumentTypeError`,
which the parser turns into a one-line `UsageError` (exit 2) naming the flag.
Every numeric flag is checked here: finite, positive where it must be, and
bounded where a larger value would only exhaust the machine.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rnnbench.errors import UsageError

if TYPE_CHECKING:
    from rnnbench.sweep.grid import Grid

__all__ = [
    "Parser",
    "add_budget_flags",
    "add_grid_flags",
    "add_threshold_flag",
    "fraction",
    "grid_from_args",
    "input_path",
    "int_range",
    "names",
    "nonempty",
    "output_dir",
    "output_file",
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


def nonempty(text: str) -> str:
    """Any text but the empty one (an empty path would silently mean the working directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


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


# -- paths ------------------------------------------------------------------------------------------
# Output paths are checked while the arguments are parsed, so a typo fails in a second rather
# than after minutes of measuring, and nothing is created for a command that is then refused.


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _check_writable(folder: Path, shown: str) -> None:
    """ArgumentTypeError unless files can be created in `folder`. `access(2)` answers for the real
    user (root may write where the mode says no) and says EROFS for a read-only mount; it writes
    nothing, so parsing a recorded command line again (`merge`) has no side effect."""
    if os.access(folder, os.W_OK | os.X_OK):
        return
    try:
        os.stat(folder)
        why = "permission denied"
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            why = "read-only file system"
    except OSError as exc:
        why = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc)).lower()
    raise argparse.ArgumentTypeError(f"cannot write to {shown}: {why}")


def _writable_target(text: str, want_dir: bool) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (give a path)")
    path = Path(text).expanduser()
    existing = _nearest_existing(path)
    if existing == path:
        if want_dir and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
        if not want_dir and path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
        if not want_dir and not os.access(path, os.W_OK):
            raise argparse.ArgumentTypeError(f"cannot write to {text}: permission denied")
        folder = path if want_dir else path.parent
    else:
        if not existing.is_dir():
            raise argparse.ArgumentTypeError(f"cannot create {text}: {existing} is not a folder")
        folder = existing
    _check_writable(folder, text)
    return path


def output_dir(text: str) -> Path:
    """A folder that exists or can be created, and can be written into."""
    return _writable_target(text, want_dir=True)


def output_file(suffixes: Sequence[str] = ()) -> Callable[[str], Path]:
    """A file path (ending in one of `suffixes`, if given) whose folder exists or can be created and is writable."""

    def parse(text: str) -> Path:
        if suffixes and Path(text).suffix not in suffixes:
            raise argparse.ArgumentTypeError(f"must end in {' or '.join(suffixes)}, got {Path(text).name!r}")
        return _writable_target(text, want_dir=False)

    return parse


def input_path(text: str) -> str:
    """A file or folder that exists and can be read."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (give a path)")
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise argparse.ArgumentTypeError(f"cannot read {text}: permission denied")
    return text


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


def grid_from_args(args: argparse.Namespace) -> Grid:
    """The grid that `add_grid_flags`' flags describe; UsageError for a framework that is not installed."""
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
    if args.framework:
        missing = [f for f in args.framework if f not in backends.available()]
        if missing:
            raise UsageError(f"framework {missing[0]!r} is not installed (pip install -e '.[{missing[0]}]')")
    return grid


def add_threshold_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--threshold: the smallest change a verdict counts (compare, ab, regressions, landing)."""
    p.add_argument("--threshold", type=fraction, default=0.05, help="smallest change that counts (default 5%%)")


def add_budget_flags(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    per: str,
    timeout: bool = True,
    budget: float | None = 1.0,
    default_help: str | None = None,
) -> None:
    """--budget (sampling seconds per case `per`, all rounds together), --timeout and --no-progress.

    `budget` None: the caller picks a default when --budget is not given, and `default_help` says which."""
    p.add_argument(
        "--budget", type=positive_float(3600), default=budget,
        help=f"sampling seconds per case{per}, all rounds together (default {default_help or budget})",
    )  # fmt: skip
    if timeout:
        p.add_argument(
            "--timeout", type=positive_float(7 * 24 * 3600), default=600.0,
            help="seconds before a case's worker is killed (default 600)",
        )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_verbs(sub: argparse._SubParsersAction, name: str, help: str, dest: str) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """A command whose next word is a verb of its own (`rnnbench history import`, `rnnbench nightly plan`):
    the verbs' subparsers, of the command parser's class (one-line errors, exit 2); a verb is required."""
    p = sub.add_parser(name, help=help)
    return p.add_subparsers(dest=dest, required=True, parser_class=type(p))
