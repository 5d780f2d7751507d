"""The numpy-in/numpy-out API against torch.nn modules (oracle) and its input checking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnbench
from rnnbench import CellSpec, UsageError, init_weights
from rnnbench.reference import init_inputs

TORCH = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def _oracle(cell, w, x, state):
    m = TORCH[cell](x.shape[2], w["weight_hh_l0"].shape[1], sum(k.startswith("weight_ih") for k in w))
    m.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()})
    st = [torch.from_numpy(s) for s in state]
    y, hn = m(torch.from_numpy(x), tuple(st) if cell == "lstm" else st[0])
    y.sum().backward()
    return y, hn, {n: p.grad.numpy() for n, p in m.named_parameters()}


# JAX jit-compiles a forward and a gradient per formulation: by far the slowest of these
@pytest.mark.parametrize("framework", ["numpy", "torch", "tensorflow", pytest.param("jax", marks=pytest.mark.slow)])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_forward_and_gradients_match_torch_modules(framework, cell):
    spec = CellSpec(cell)
    w = init_weights(spec, 5, 6, 2, seed=11)
    x, state = init_inputs(spec, 4, 3, 5, 6, 2, seed=12)
    y_ref, hn_ref, g_ref = _oracle(cell, w, x, state)
    kwargs = {"h0": state[0], "c0": state[1]} if cell == "lstm" else {"h0": state[0]}
    for formulation in ("separate", "concat", "hoisted"):
        y, st = rnnbench.forward(x, w, cell, formulation, framework, **kwargs)
        assert y.shape == (4, 3, 6) and y.dtype == np.float32
        np.testing.assert_allclose(y, y_ref.detach().numpy(), atol=2e-5)
        if cell == "lstm":
            np.testing.assert_allclose(st[0], hn_ref[0].detach().numpy(), atol=2e-5)
            np.testing.assert_allclose(st[1], hn_ref[1].detach().numpy(), atol=2e-5)
        else:
            assert st.shape == (2, 3, 6)
            np.testing.assert_allclose(st, hn_ref.detach().numpy(), atol=2e-5)
        if framework != "numpy":
            g = rnnbench.gradients(x, w, cell, formulation, framework, **kwargs)
            assert set(g) == set(w)
            for name in w:
                np.testing.assert_allclose(g[name], g_ref[name], rtol=1e-4, atol=1e-4, err_msg=name)


def test_defaults_are_zero_state():
    spec = CellSpec("gru")
    w = init_weights(spec, 3, 4)
    x, _ = init_inputs(spec, 2, 1, 3, 4)
    y, _ = rnnbench.forward(x, w, "gru")
    y0, _ = rnnbench.forward(x, w, "gru", h0=np.zeros((1, 1, 4), np.float32))
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"framework": "caffe"},
        {"formulation": "fused"},
        {"cell": "lstm"},  # GRU weights have 3 gates, not 4
        {"gru_update": "sideways"},
        {"h0": np.zeros((2, 1, 4), np.float32)},
        {"device": "tpu"},
        {"bogus_option": 1},
        {"framework": "numpy", "formulation": "native"},
    ],
)
def test_bad_input_is_a_usage_error(kwargs):
    spec = CellSpec("gru")
    w = init_weights(spec, 3, 4)
    x, _ = init_inputs(spec, 2, 1, 3, 4)
    args = {"cell": "gru", **kwargs}
    with pytest.raises((UsageError, rnnbench.Unsupported)):
        rnnbench.forward(x, w, **args)


def test_bad_x_shape():
    w = init_weights(CellSpec("rnn"), 3, 4)
    with pytest.raises(UsageError, match="time-major"):
        rnnbench.forward(np.zeros((2, 3)), w)
