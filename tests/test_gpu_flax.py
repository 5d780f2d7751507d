"""JAX's `native`: flax.nnx recurrent cells scanned by nnx.RNN, checked against the numpy reference.

The full verify grid (tests/test_backends.py) already runs every JAX native
case it contains; this file checks that those cases exist, that the GRU's
absence is for the stated reason (flax's GRUCell computes another function),
and the low precisions.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnbench import backends
from rnnbench.case import FRAMEWORKS, Case
from rnnbench.measure.verify import make_inputs, reference, verify_kernel
from rnnbench.sweep.grid import PRESETS, expand


def test_jax_native_rows_are_in_the_verify_grid():
    cases, skipped = expand(PRESETS["verify"], installed=FRAMEWORKS)
    native = {(c.spec.label, c.layers, c.pass_) for c in cases if c.framework == "jax" and c.formulation == "native"}
    for label in ("rnn", "rnn[relu]", "lstm"):
        for layers in (1, 2):
            for p in ("forward", "train"):
                assert (label, layers, p) in native
    gru = [why for c, why in skipped
           if c.framework == "jax" and c.formulation == "native" and c.cell == "gru" and c.mode == "compiled"]  # fmt: skip
    assert gru and all("b_hn" in why for why in gru)


@pytest.mark.parametrize(
    "cell,nonlinearity", [pytest.param("lstm", "tanh", marks=pytest.mark.slow), ("rnn", "tanh"), ("rnn", "relu")]
)
def test_flax_native_matches_reference_with_two_layers_and_a_wider_input(cell, nonlinearity):
    case = Case(framework="jax", formulation="native", mode="compiled", cell=cell, nonlinearity=nonlinearity,
                pass_="train", layers=2, input_size=6, hidden=9, batch=3, seq_len=5)  # fmt: skip
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backends.get("jax").build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.max_rel_error:.3g} > {check.tolerance}"


def test_a_wrong_flax_kernel_fails_verification():
    case = Case(framework="jax", formulation="native", mode="compiled", cell="lstm", pass_="train", layers=2)
    weights, x, state0 = make_inputs(case)
    bad = dict(weights) | {"bias_hh_l1": weights["bias_hh_l1"] + 0.05}
    assert not verify_kernel(backends.get("jax").build(case, bad, x, state0), weights, x, state0).ok


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("p", ["forward", "train"])
def test_flax_native_in_half_precision(dtype, p):
    case = Case(framework="jax", formulation="native", mode="compiled", cell="lstm", pass_=p, dtype=dtype, seq_len=4)
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backends.get("jax").build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.max_rel_error:.3g} > {check.tolerance}"


def _flax_gru(weights: dict, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """flax.nnx.GRUCell loaded as closely as its layout allows: b_ih + b_hh for r and z, b_in for n, no b_hn."""
    import jax.numpy as jnp
    from flax import nnx

    hid = h0.shape[-1]
    zeros = nnx.initializers.zeros_init()  # every weight is loaded below
    cell = nnx.GRUCell(x.shape[-1], hid, rngs=nnx.Rngs(0), kernel_init=zeros, recurrent_kernel_init=zeros)
    bi, bh = weights["bias_ih_l0"], weights["bias_hh_l0"]
    cell.dense_i.kernel.value = jnp.asarray(weights["weight_ih_l0"].T)
    cell.dense_i.bias.value = jnp.asarray(np.concatenate([bi[: 2 * hid] + bh[: 2 * hid], bi[2 * hid :]]))
    cell.dense_h.kernel.value = jnp.asarray(weights["weight_hh_l0"].T)
    _, ys = nnx.RNN(cell, time_major=True, return_carry=True)(jnp.asarray(x), initial_carry=jnp.asarray(h0))
    return np.asarray(ys, dtype=np.float64)


def test_flax_gru_differs_from_the_reference_only_by_b_hn():
    """Why GRU has no JAX native row: flax's GRUCell matches the reference exactly when b_hn = 0, and not otherwise."""
    case = Case(framework="jax", formulation="native", mode="compiled", cell="gru", hidden=6, input_size=4)
    weights, x, state0 = make_inputs(case)
    hid = case.hidden
    no_bhn = dict(weights) | {"bias_hh_l0": np.concatenate([weights["bias_hh_l0"][: 2 * hid], np.zeros(hid)])}
    for w, same in ((no_bhn, True), (weights, False)):
        ref = reference(case, w, x, state0)
        flax_y = _flax_gru(w, x, state0[0][0])
        assert np.allclose(flax_y, ref.y, rtol=1e-4, atol=1e-5) == same
