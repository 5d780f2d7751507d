"""numpy-in / numpy-out entry points: check any formulation against your own RNN.

`forward` and `gradients` take a time-major input and a PyTorch-style
state_dict and return exactly what torch's `nn.RNN`/`nn.GRU`/`nn.LSTM` would
(`y`, and `h_n` or `(h_n, c_n)`), computed by the chosen framework and
formulation. Shapes are inferred from the arrays; bad input raises a one-line
`UsageError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from rnnbench import backends
from rnnbench.backends import Outputs
from rnnbench.case import Case
from rnnbench.errors import UsageError
from rnnbench.reference import Array, CellSpec, infer_shapes

__all__ = ["forward", "gradients"]


def _run(
    x: npt.ArrayLike,
    weights: Mapping[str, npt.ArrayLike],
    train: bool,
    cell: str,
    formulation: str,
    framework: str,
    device: str,
    mode: str | None,
    dtype: str,
    h0: npt.ArrayLike | None,
    c0: npt.ArrayLike | None,
    options: dict[str, Any],
) -> Outputs:
    unknown = set(options) - {"nonlinearity", "gru_update", "gru_reset"}
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(sorted(unknown))}")
    spec = CellSpec(cell, **options)
    w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
    input_size, hidden, layers = infer_shapes(spec, w)
    xs = np.asarray(x, dtype=np.float32)
    if xs.ndim != 3 or xs.shape[2] != input_size:
        raise UsageError(f"x must be (T, B, {input_size}) time-major, got shape {xs.shape}")
    seq_len, batch, _ = xs.shape
    backend = backends.get(framework)
    case = Case(
        framework=framework, device=device, cell=cell, formulation=formulation, mode=mode or backend.modes[0],
        pass_="train" if train else "forward", batch=batch, input_size=input_size, hidden=hidden,
        seq_len=seq_len, layers=layers, dtype=dtype, **options,
    )  # fmt: skip
    state_shape = (layers, batch, hidden)
    state0 = []
    for name, s in (("h0", h0), ("c0", c0))[: 2 if cell == "lstm" else 1]:
        s = np.zeros(state_shape, np.float32) if s is None else np.asarray(s, dtype=np.float32)
        if s.shape != state_shape:
            raise UsageError(f"{name} must have shape {state_shape}, got {s.shape}")
        state0.append(s)
    if cell != "lstm" and c0 is not None:
        raise UsageError("c0 applies to cell 'lstm' only")
    kernel = backend.build(case, w, xs, tuple(state0))
    return kernel.fetch(kernel.call())


def forward(
    x: npt.ArrayLike, weights: Mapping[str, npt.ArrayLike], cell: str = "rnn", formulation: str = "separate",
    framework: str = "numpy", device: str = "cpu", *, mode: str | None = None, dtype: str = "float32",
    h0: npt.ArrayLike | None = None, c0: npt.ArrayLike | None = None, **options: Any,
) -> tuple[Array, Array | tuple[Array, Array]]:  # fmt: skip
    """Run `x (T, B, I)` through the cell stack described by `weights`.

    Returns `(y, h_n)`, or `(y, (h_n, c_n))` for LSTM, as torch's modules do:
    `y (T, B, H)` is the last layer's output, states are `(L, B, H)`.
    `options`: `nonlinearity` ('tanh'/'relu', rnn), `gru_update`
    ('keep_old'/'take_new') and `gru_reset` ('after'/'before'), gru.
    `mode` defaults to the framework's first (eager, or compiled for JAX).
    """
    out = _run(x, weights, False, cell, formulation, framework, device, mode, dtype, h0, c0, options)
    return out.y, (out.state if cell == "lstm" else out.state[0])  # type: ignore[return-value]


def gradients(
    x: npt.ArrayLike, weights: Mapping[str, npt.ArrayLike], cell: str = "rnn", formulation: str = "separate",
    framework: str = "torch", device: str = "cpu", *, mode: str | None = None, dtype: str = "float32",
    h0: npt.ArrayLike | None = None, c0: npt.ArrayLike | None = None, **options: Any,
) -> dict[str, Array]:  # fmt: skip
    """Gradients of `sum(y)` w.r.t. every weight, keyed like `weights` (same arguments as `forward`)."""
    out = _run(x, weights, True, cell, formulation, framework, device, mode, dtype, h0, c0, options)
    assert out.grads is not None
    return out.grads
