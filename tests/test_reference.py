"""The numpy reference against oracles nobody here wrote: torch.nn layers and Keras layers.

Weight mappings to Keras are written out here independently of the backend's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnbench.errors import UsageError
from rnnbench.reference import (
    CellSpec,
    infer_shapes,
    init_inputs,
    init_weights,
    negate_update_gate,
    reference_forward,
    reference_gradients,
    useful_flops,
)

TORCH = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def _torch_oracle(spec, w, x, state, layers):
    extra = {"nonlinearity": spec.nonlinearity} if spec.cell == "rnn" else {}
    m = TORCH[spec.cell](x.shape[2], w["weight_hh_l0"].shape[1], layers, **extra).double()
    m.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in w.items()})
    st = [torch.tensor(s, dtype=torch.float64) for s in state]
    y, hn = m(torch.tensor(x, dtype=torch.float64), tuple(st) if spec.cell == "lstm" else st[0])
    y.sum().backward()
    hn = hn if spec.cell == "lstm" else (hn,)
    return y.detach().numpy(), [h.detach().numpy() for h in hn], {n: p.grad.numpy() for n, p in m.named_parameters()}


@pytest.mark.parametrize(
    "spec", [CellSpec("rnn"), CellSpec("rnn", "relu"), CellSpec("gru"), CellSpec("lstm")], ids=lambda s: s.label
)
@pytest.mark.parametrize("layers", [1, 2])
def test_reference_matches_torch_nn(spec, layers):
    w = init_weights(spec, 5, 7, layers, seed=3)
    x, state = init_inputs(spec, 6, 3, 5, 7, layers, seed=4)
    y, hn, grads = _torch_oracle(spec, w, x, state, layers)
    ry, rstate = reference_forward(spec, x, w, *state)
    rgrads = reference_gradients(spec, x, w, *state)
    np.testing.assert_allclose(ry, y, atol=1e-12)
    for a, b in zip(rstate, hn):
        np.testing.assert_allclose(a, b, atol=1e-12)
    for name in w:
        np.testing.assert_allclose(rgrads[name], grads[name], atol=1e-10, err_msg=name)


@pytest.mark.parametrize("layers", [1, 2])
def test_take_new_with_negated_z_rows_equals_keep_old(layers):
    """Seed 002's claim: (1-z)h + z n with the z rows negated is z h + (1-z) n."""
    for reset in ("after", "before"):
        keep, take = (
            CellSpec("gru", gru_update="keep_old", gru_reset=reset),
            CellSpec("gru", gru_update="take_new", gru_reset=reset),
        )
        w = init_weights(keep, 4, 6, layers)
        x, state = init_inputs(keep, 5, 2, 4, 6, layers)
        y_keep, _ = reference_forward(keep, x, w, *state)
        y_take, _ = reference_forward(take, x, negate_update_gate(take, w), *state)
        np.testing.assert_allclose(y_take, y_keep, atol=1e-12)
        # and the two conventions are different functions of the same weights
        assert np.abs(reference_forward(take, x, w, *state)[0] - y_keep).max() > 1e-3
        # gradient chain rule: d/dw(take_new at -w) = N d/dw(keep_old at w)
        g_keep = reference_gradients(keep, x, w, *state)
        g_take = reference_gradients(take, x, negate_update_gate(take, w), *state)
        for name in w:
            np.testing.assert_allclose(negate_update_gate(take, g_take)[name], g_keep[name], atol=1e-10)


def test_reset_before_is_a_different_function():
    after, before = CellSpec("gru"), CellSpec("gru", gru_reset="before")
    w = init_weights(after, 4, 6)
    x, state = init_inputs(after, 5, 2, 4, 6)
    assert np.abs(reference_forward(after, x, w, *state)[0] - reference_forward(before, x, w, *state)[0]).max() > 1e-3


def _keras_layer(keras, spec, units, w):
    """Keras layer holding canonical weights w (layer 0), mapped here by hand from Keras's docs:
    kernels are (in, units*G) column blocks; GRU blocks are ordered z, r, h."""
    W, U, bi, bh = w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"], w["bias_hh_l0"]
    if spec.cell == "gru":
        r, z, n = np.split(np.arange(3 * units), 3)
        order = np.concatenate([z, r, n])
        W, U, bi, bh = W[order], U[order], bi[order], bh[order]
    common = {"return_sequences": True, "return_state": True}
    if spec.cell == "rnn":
        layer = keras.layers.SimpleRNN(units, activation=spec.nonlinearity, **common)
        weights = [W.T, U.T, bi + bh]
    elif spec.cell == "lstm":
        layer = keras.layers.LSTM(units, **common)
        weights = [W.T, U.T, bi + bh]
    else:
        layer = keras.layers.GRU(units, reset_after=spec.gru_reset == "after", **common)
        weights = [W.T, U.T, np.stack([bi, bh]) if spec.gru_reset == "after" else bi + bh]
    return layer, weights


@pytest.mark.parametrize(
    "spec",
    [CellSpec("rnn"), CellSpec("rnn", "relu"), CellSpec("lstm"), CellSpec("gru"), CellSpec("gru", gru_reset="before")],
    ids=lambda s: s.label,
)
def test_reference_matches_keras(spec):
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    units, inp = 6, 4
    w = init_weights(spec, inp, units, 1, seed=5)
    x, state = init_inputs(spec, 5, 3, inp, units, 1, seed=6)
    layer, weights = _keras_layer(keras, spec, units, w)
    layer.build((3, 5, inp))
    layer.set_weights(weights)
    out = layer(np.transpose(x, (1, 0, 2)), initial_state=[s[0] for s in state])
    y = np.transpose(np.asarray(out[0]), (1, 0, 2))
    ry, rstate = reference_forward(spec, x, w, *state)
    np.testing.assert_allclose(y, ry, atol=2e-6)
    np.testing.assert_allclose(np.asarray(out[1]), rstate[0][0], atol=2e-6)


def test_useful_flops_counts_gate_gemms():
    spec = CellSpec("lstm")
    # layer 0: 2*B*(I+H)*4H*T ; layer 1: 2*B*(H+H)*4H*T
    assert useful_flops(spec, 2, 3, 5, 7, 2, train=False) == 2 * 2 * 8 * 20 * 7 + 2 * 2 * 10 * 20 * 7
    assert useful_flops(spec, 2, 3, 5, 7, 1, train=True) == 3 * useful_flops(spec, 2, 3, 5, 7, 1, train=False)


def test_infer_shapes_rejects_bad_weights():
    spec = CellSpec("gru")
    w = init_weights(spec, 3, 4, 2)
    assert infer_shapes(spec, w) == (3, 4, 2)
    with pytest.raises(UsageError):
        infer_shapes(spec, {k: v for k, v in w.items() if k != "bias_hh_l1"})
    with pytest.raises(UsageError):
        infer_shapes(CellSpec("lstm"), w)  # 12 rows is 3 gates of 4, not LSTM's 4 of 4
    bad = dict(w)
    bad["weight_hh_l0"] = bad["weight_hh_l0"][:, :3]
    with pytest.raises(UsageError):
        infer_shapes(spec, bad)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_head_reference_matches_torch_nn_linear_and_cross_entropy(cell):
    """The output head and its BPTT against an independent oracle: torch.nn.{RNN,GRU,LSTM} + Linear + CrossEntropyLoss."""
    from rnnbench.reference import cross_entropy, head_forward, init_head, init_targets

    spec = CellSpec(cell)
    seq_len, batch, input_size, hidden, layers, vocab = 6, 3, 4, 5, 2, 7
    weights = init_weights(spec, input_size, hidden, layers) | init_head(hidden, vocab)
    x, state = init_inputs(spec, seq_len, batch, input_size, hidden, layers)
    targets = init_targets(seq_len, batch, vocab)

    rnn = TORCH[cell](input_size, hidden, layers).double()
    head = torch.nn.Linear(hidden, vocab).double()
    rnn.load_state_dict(
        {k: torch.from_numpy(v).double() for k, v in weights.items() if k not in ("weight_hy", "bias_y")}
    )
    head.load_state_dict({"weight": torch.from_numpy(weights["weight_hy"]).double(),
                          "bias": torch.from_numpy(weights["bias_y"]).double()})  # fmt: skip
    hx = [torch.from_numpy(s).double() for s in state]
    y, _ = rnn(torch.from_numpy(x).double(), tuple(hx) if cell == "lstm" else hx[0])
    logits = head(y)
    loss = torch.nn.CrossEntropyLoss()(logits.reshape(-1, vocab), torch.from_numpy(targets).reshape(-1))
    loss.backward()
    oracle = {n: p.grad.numpy() for n, p in rnn.named_parameters()}
    oracle |= {"weight_hy": head.weight.grad.numpy(), "bias_y": head.bias.grad.numpy()}

    ref_y, _ = reference_forward(spec, x, weights, *state)
    ref_logits = head_forward(ref_y, weights)
    np.testing.assert_allclose(ref_logits, logits.detach().numpy(), atol=1e-12)
    assert cross_entropy(ref_logits, targets)[0] == pytest.approx(loss.item(), abs=1e-12)
    grads = reference_gradients(spec, x, weights, *state, targets=targets)
    assert set(grads) == set(oracle)
    for name, g in oracle.items():
        np.testing.assert_allclose(grads[name], g, atol=1e-12, err_msg=name)


def test_a_head_needs_targets():
    from rnnbench.reference import init_head

    spec = CellSpec("rnn")
    weights = init_weights(spec, 3, 4) | init_head(4, 5)
    x, state = init_inputs(spec, 2, 2, 3, 4)
    with pytest.raises(UsageError):
        reference_gradients(spec, x, weights, *state)
