"""Sweeps: named presets, their expansion into `Case`s, filters, overrides and sharding.

A `Grid` holds one list per `Case` field; `expand` takes the product, drops
what a backend cannot build (recording why) and returns the cases in a
stable order. `--shard K/N` on N machines covers the grid exactly once: a
case's shard is a stable hash of its key (not its position), so a machine
whose grid differs by one framework or shape still agrees with the others on
every case they share, and growing the grid moves only the new cases.
Shapes are (batch, input_size, hidden, seq_len) tuples so that presets taken
from published suites (DeepBench's RNN shapes) need not be full products.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rnnbench import backends
from rnnbench.case import (
    COMPILERS,
    DEVICES,
    DTYPES,
    FORMULATIONS,
    FP32_MODES,
    FRAMEWORKS,
    HEADS,
    MODES,
    PASSES,
    PRECISIONS,
    Case,
    check_choice,
)
from rnnbench.errors import UsageError
from rnnbench.reference import CellSpec

__all__ = ["CELL_VARIANTS", "PRESETS", "Grid", "expand", "parse_shard", "preset", "shard", "shard_of"]

Shape = tuple[int, int, int, int]  # batch, input_size, hidden, seq_len

CELL_VARIANTS: dict[str, CellSpec] = {
    spec.label: spec
    for spec in (
        CellSpec("rnn"),
        CellSpec("rnn", nonlinearity="relu"),
        CellSpec("gru"),
        CellSpec("gru", gru_update="take_new"),
        CellSpec("gru", gru_reset="before"),
        CellSpec("gru", gru_update="take_new", gru_reset="before"),
        CellSpec("lstm"),
    )
}
DEFAULT_CELLS = ("rnn", "gru", "lstm")

# The mode each framework is normally run in, used where a grid names no mode:
# PyTorch users run eager, Keras trains under tf.function, JAX always jits.
PRIMARY_MODE = {"numpy": "eager", "torch": "eager", "tensorflow": "compiled", "jax": "compiled"}


def products(
    batch: Iterable[int], hidden: Iterable[int], seq_len: Iterable[int], input_size: Iterable[int] | None = None
) -> tuple[Shape, ...]:
    """Every (batch, input, hidden, seq_len); input_size defaults to hidden, as in DeepBench."""
    out = []
    for b, h, t in itertools.product(batch, hidden, seq_len):
        for i in input_size if input_size is not None else (h,):
            out.append((b, i, h, t))
    return tuple(out)


@dataclass(frozen=True)
class Grid:
    frameworks: tuple[str, ...] = FRAMEWORKS
    devices: tuple[str, ...] = ("cpu",)
    cells: tuple[str, ...] = DEFAULT_CELLS  # labels from CELL_VARIANTS
    formulations: tuple[str, ...] = FORMULATIONS
    modes: tuple[str, ...] | None = None  # None: each framework's PRIMARY_MODE
    passes: tuple[str, ...] = PASSES
    shapes: tuple[Shape, ...] = field(default_factory=lambda: products((16, 64), (64, 256), (32,)))
    layers: tuple[int, ...] = (1,)
    dtypes: tuple[str, ...] = ("float32",)
    precisions: tuple[str, ...] = ("mixed",)  # applies to float16/bfloat16 (float32 is always pure)
    fp32: tuple[str, ...] = ("strict",)  # applies to float32 only
    compilers: tuple[str, ...] | None = None  # compiled mode only; None: each framework's default
    heads: tuple[str, ...] = ("none",)
    vocabs: tuple[int, ...] = (32,)  # output-head sizes, for head "linear" only

    def to_json(self) -> dict[str, Any]:
        """The grid as a run document's header stores it (`merge` checks the shards against it)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = None if value is None else [list(v) if f.name == "shapes" else v for v in value]
        return out

    @classmethod
    def from_json(cls, d: object) -> Grid:
        """A grid from its `to_json` form; UsageError naming the first field that is not one this rnnbench knows."""
        if not isinstance(d, dict):
            raise UsageError(f"a grid must be an object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"grid field {unknown[0]!r} is unknown to this rnnbench")
        values: dict[str, Any] = {}
        for name, value in d.items():
            if value is None and name in ("modes", "compilers"):
                values[name] = None
                continue
            if not isinstance(value, list):
                raise UsageError(f"grid field {name!r} must be a list")
            if name == "shapes":
                if not all(isinstance(s, list) and len(s) == 4 for s in value):
                    raise UsageError("grid field 'shapes' must hold [batch, input_size, hidden, seq_len] lists")
                values[name] = tuple(tuple(_positive("shape size", v) for v in s) for s in value)
            elif name in ("layers", "vocabs"):
                values[name] = tuple(_positive(name.rstrip("s"), v) for v in value)
            else:
                for v in value:
                    check_choice(f"grid {name}", v, _CHOICES[name])
                values[name] = tuple(value)
        return cls(**values)


_DEEPBENCH_GPU = (
    # (batch, input, hidden, seq_len), after DeepBench's RNN inference/training set
    *products((16, 32, 64, 128), (1760,), (50,)),
    *products((16, 64), (2560,), (50,)),
    *products((1, 16, 32, 64, 128), (512,), (25,)),
    *products((16, 32), (1024,), (25, 375)),
    *products((32,), (2048,), (25,)),
    *products((1, 16, 64), (1536,), (375,)),
)

PRESETS: dict[str, Grid] = {
    "verify": Grid(
        cells=tuple(CELL_VARIANTS),
        modes=MODES,
        shapes=((3, 6, 5, 4),),
        layers=(1, 2),
    ),
    "quick": Grid(),
    "default": Grid(
        cells=tuple(CELL_VARIANTS),
        modes=MODES,
        shapes=products((1, 16, 64), (64, 256, 512), (16, 64)),
        layers=(1, 2),
    ),
    "full": Grid(
        cells=tuple(CELL_VARIANTS),
        modes=MODES,
        shapes=products((1, 8, 32, 128), (32, 128, 512, 1024), (8, 32, 128), (32, 256)),
        layers=(1, 2, 4),
        dtypes=DTYPES,
    ),
    "nightly-gpu": Grid(
        frameworks=("torch", "tensorflow", "jax"),
        devices=("cuda",),
        modes=MODES,
        shapes=_DEEPBENCH_GPU,
        dtypes=DTYPES,
    ),
}


# what each list of a Grid may hold
_CHOICES: dict[str, tuple[str, ...]] = {
    "frameworks": FRAMEWORKS,
    "devices": DEVICES,
    "cells": tuple(CELL_VARIANTS),
    "formulations": FORMULATIONS,
    "modes": MODES,
    "passes": PASSES,
    "dtypes": DTYPES,
    "precisions": PRECISIONS,
    "fp32": FP32_MODES,
    "compilers": COMPILERS,
    "heads": HEADS,
}


def preset(name: str) -> Grid:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def override(
    grid: Grid,
    *,
    batch: Sequence[int] | None = None,
    input_size: Sequence[int] | None = None,
    hidden: Sequence[int] | None = None,
    seq_len: Sequence[int] | None = None,
    **lists: Sequence[str] | Sequence[int] | None,
) -> Grid:
    """A copy of `grid` with the given axes replaced (None leaves an axis as it is).

    Shape overrides replace that coordinate in every preset shape; when
    `hidden` is overridden and `input_size` is not, input follows hidden.
    """
    checks = _CHOICES | {"cells": (*CELL_VARIANTS, "gru*", "rnn*")}
    changes: dict[str, object] = {}
    for name, values in lists.items():
        if values is None:
            continue
        if name in ("layers", "vocabs"):
            changes[name] = tuple(_positive(name.rstrip("s"), v) for v in values)  # type: ignore[arg-type]
            continue
        for v in values:
            check_choice(name.rstrip("s").replace("passe", "pass").replace("fp32", "fp32 mode"), v, checks[name])
        if name == "cells":
            values = _expand_cells(values)  # type: ignore[arg-type]
        changes[name] = tuple(values)
    shapes = grid.shapes
    for index, values in ((0, batch), (1, input_size), (2, hidden), (3, seq_len)):
        if values is None:
            continue
        vals = [_positive(("batch", "input-size", "hidden", "seq-len")[index], v) for v in values]
        new = []
        for shape in shapes:
            for v in vals:
                s = list(shape)
                s[index] = v
                if index == 2 and input_size is None and shape[1] == shape[2]:
                    s[1] = v
                new.append(tuple(s))
        shapes = tuple(dict.fromkeys(new))  # type: ignore[arg-type]
    changes["shapes"] = shapes
    return dataclasses.replace(grid, **changes)  # type: ignore[arg-type]


def _expand_cells(values: Sequence[str]) -> list[str]:
    """`gru*` / `rnn*` stand for every variant of that cell."""
    out: list[str] = []
    for v in values:
        out += [label for label in CELL_VARIANTS if label.startswith(v[:-1])] if v.endswith("*") else [v]
    return list(dict.fromkeys(out))


def _positive(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{what} must be a positive integer, got {value!r}")
    return value


def expand(grid: Grid, installed: Sequence[str] | None = None) -> tuple[list[Case], list[tuple[Case, str]]]:
    """(cases to run, [(case, why it is skipped)]), both in a stable order.

    Frameworks that are not installed are left out entirely; cases a backend
    cannot build (no native layer for that variant, no eager JAX) are listed
    as skipped with the backend's reason.
    """
    installed = backends.available() if installed is None else installed
    runs: list[Case] = []
    skipped: list[tuple[Case, str]] = []
    for fw in grid.frameworks:
        if fw not in installed:
            continue
        backend = backends.get(fw)
        modes = grid.modes if grid.modes is not None else (PRIMARY_MODE[fw],)
        for device, label, formulation, mode, pass_, shape, layers, dtype in itertools.product(
            grid.devices, grid.cells, grid.formulations, modes, grid.passes, grid.shapes, grid.layers, grid.dtypes
        ):
            spec = CELL_VARIANTS[label]
            b, i, h, t = shape
            numerics = (
                [("pure", fp32) for fp32 in grid.fp32]
                if dtype == "float32"
                else [(precision, "strict") for precision in grid.precisions]
            )
            compilers = ("none",) if mode == "eager" else grid.compilers or ("",)
            heads = [(h, v) for h in grid.heads for v in ((0,) if h == "none" else grid.vocabs)]
            for (precision, fp32), compiler, (head, vocab) in itertools.product(numerics, compilers, heads):
                case = Case(
                    framework=fw, device=device, cell=spec.cell, formulation=formulation, mode=mode, pass_=pass_,
                    batch=b, input_size=i, hidden=h, seq_len=t, layers=layers, dtype=dtype,
                    nonlinearity=spec.nonlinearity, gru_update=spec.gru_update, gru_reset=spec.gru_reset,
                    precision=precision, fp32=fp32, compiler=compiler, head=head, vocab=vocab,
                )  # fmt: skip
                reason = backend.unsupported(case)
                if reason:
                    skipped.append((case, reason))
                else:
                    runs.append(case)
    return runs, skipped


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' (1-based K) -> (K, N); UsageError on anything else."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise UsageError(f"--shard must look like K/N (e.g. 2/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def shard_of(key: str, n: int) -> int:
    """The 1-based shard (of `n`) that the case with this key belongs to.

    A hash of the key alone (sha256, so it is the same in every process and
    Python version, unlike `hash()`): which other cases exist never matters.
    """
    if n < 1:
        raise UsageError(f"the shard count must be at least 1, got {n}")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % n + 1


def shard(cases: Sequence[Case], k: int, n: int) -> list[Case]:
    """The K-th of N disjoint parts: the cases whose key hashes to K (order kept)."""
    return [c for c in cases if shard_of(c.key, n) == k]


def select_shard(
    cases: Sequence[Case], skipped: Sequence[tuple[Case, str]], part: tuple[int, int] | None
) -> tuple[list[Case], list[tuple[Case, str]], str | None]:
    """The cases and not-applicable cases of shard `part` (K, N) of an expanded grid, and its `K/N` text;
    everything, and None, without a shard."""
    if part is None:
        return list(cases), list(skipped), None
    k, n = part
    return shard(cases, k, n), [(c, why) for c, why in skipped if shard_of(c.key, n) == k], f"{k}/{n}"
