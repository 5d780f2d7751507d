"""rnnbench: time RNN cell formulations (concat vs separate vs hoisted vs native) honestly.

The public API is curated here; everything else is importable but not promised.
Frameworks are imported only when a backend is used, so `import rnnbench` is cheap.
"""

from __future__ import annotations

from rnnbench.api import forward, gradients
from rnnbench.case import Case
from rnnbench.cells import CellSpec, init_weights, reference_forward, reference_gradients, useful_flops
from rnnbench.errors import Unsupported, UsageError

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
    "reference_forward",
    "reference_gradients",
    "useful_flops",
]
