"""rnnbench: time RNN cell formulations (concat vs separate vs hoisted vs native) honestly.

The public API is curated here; everything else is importable but not promised.
Frameworks are imported only when a backend is used, so `import rnnbench` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnbench.api import forward, gradients
from rnnbench.case import Case
from rnnbench.errors import Unsupported, UsageError
from rnnbench.reference import CellSpec, init_weights, reference_forward, reference_gradients, useful_flops

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    import pandas as pd

__version__ = "0.1.0"

__all__ = [
    "Case",
    "CellSpec",
    "Unsupported",
    "UsageError",
    "__version__",
    "forward",
    "gradients",
    "init_weights",
    "load",
    "reference_forward",
    "reference_gradients",
    "useful_flops",
]


def load(
    paths: Iterable[str | Path] | str | Path | None = None,
    machines: Iterable[str] | None = None,
    last: int | None = None,
    since: str | None = None,
) -> pd.DataFrame:
    """Every runner document, asv result and history folder under `paths` (default `results/`) as one tidy
    DataFrame; `machines`, `last` (runs per machine) and `since` (a UTC date) narrow what is read.

    A thin wrapper so that `import rnnbench` does not import pandas; see `rnnbench.analysis.frame.load`.
    """
    from rnnbench.analysis.frame import load as load_frame

    return load_frame(paths, machines=machines, last=last, since=since)
