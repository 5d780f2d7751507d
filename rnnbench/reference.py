"""The math every backend implements, once, in numpy and framework-free.

This module owns the cell kinds (`rnn` with tanh/relu, `gru` with both update
conventions and both reset placements, `lstm`), the canonical weights in
PyTorch's state_dict layout (`weight_ih_l{k}`, `weight_hh_l{k}`,
`bias_ih_l{k}`, `bias_hh_l{k}`; gate order r,z,n for GRU and i,f,g,o for
LSTM), a float64 numpy reference forward and its hand-written backward
(back-propagation through time), and the useful-FLOP count of a case.
The reference is the oracle the backends are checked against; it is itself
checked against torch.autograd and jax.grad in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rnnbench.errors import UsageError

__all__ = [
    "CELLS",
    "GATES",
    "GRU_RESETS",
    "GRU_UPDATES",
    "HEAD_NAMES",
    "NONLINEARITIES",
    "CellSpec",
    "cross_entropy",
    "head_forward",
    "infer_shapes",
    "init_head",
    "init_inputs",
    "init_targets",
    "init_weights",
    "negate_update_gate",
    "reference_forward",
    "reference_gradients",
    "useful_flops",
    "weight_names",
]

# float arrays of any precision (numpy typing is invariant in the dtype)
Array = npt.NDArray[Any]

CELLS = ("rnn", "gru", "lstm")
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
NONLINEARITIES = ("tanh", "relu")
GRU_UPDATES = ("keep_old", "take_new")
GRU_RESETS = ("after", "before")


@dataclass(frozen=True)
class CellSpec:
    """Which function a cell computes (independent of how it is computed).

    `nonlinearity` matters for `rnn` only, `gru_update`/`gru_reset` for `gru`
    only; the defaults are PyTorch's `nn.RNN` and `nn.GRU`.
    """

    cell: str = "rnn"
    nonlinearity: str = "tanh"
    gru_update: str = "keep_old"
    gru_reset: str = "after"

    def __post_init__(self) -> None:
        _choice("cell", self.cell, CELLS)
        _choice("nonlinearity", self.nonlinearity, NONLINEARITIES)
        _choice("gru_update", self.gru_update, GRU_UPDATES)
        _choice("gru_reset", self.gru_reset, GRU_RESETS)
        if self.cell != "rnn" and self.nonlinearity != "tanh":
            raise UsageError(f"nonlinearity={self.nonlinearity!r} applies to cell 'rnn' only")

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def label(self) -> str:
        """Short name of the variant, e.g. `gru[take_new,before]`, `rnn[relu]`."""
        if self.cell == "rnn":
            return "rnn" if self.nonlinearity == "tanh" else f"rnn[{self.nonlinearity}]"
        if self.cell == "gru":
            if (self.gru_update, self.gru_reset) == ("keep_old", "after"):
                return "gru"
            return f"gru[{self.gru_update},{self.gru_reset}]"
        return self.cell


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"unknown {what} {value!r}; choose from {', '.join(allowed)}")


def weight_names(layers: int) -> list[str]:
    """PyTorch's state_dict keys for a stack of `layers` layers, in its order."""
    return [
        f"{kind}_{part}_l{k}"
        for k in range(layers)
        for kind, part in (("weight", "ih"), ("weight", "hh"), ("bias", "ih"), ("bias", "hh"))
    ]


def init_weights(spec: CellSpec, input_size: int, hidden: int, layers: int = 1, seed: int = 0) -> dict[str, Array]:
    """Canonical float32 weights, drawn as PyTorch draws them: U(-1/sqrt(H), 1/sqrt(H))."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden)
    gh = spec.gates * hidden
    out: dict[str, Array] = {}
    for k in range(layers):
        i_k = input_size if k == 0 else hidden
        shapes = {"weight_ih": (gh, i_k), "weight_hh": (gh, hidden), "bias_ih": (gh,), "bias_hh": (gh,)}
        for name, shape in shapes.items():
            out[f"{name}_l{k}"] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def init_inputs(
    spec: CellSpec, seq_len: int, batch: int, input_size: int, hidden: int, layers: int = 1, seed: int = 1
) -> tuple[Array, tuple[Array, ...]]:
    """A time-major input `x (T, B, I)` and an initial state (`h0`, plus `c0` for LSTM), float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((seq_len, batch, input_size)).astype(np.float32)
    n_states = 2 if spec.cell == "lstm" else 1
    state = tuple((0.5 * rng.standard_normal((layers, batch, hidden))).astype(np.float32) for _ in range(n_states))
    return x, state


# The optional output head `y_t = W_hy h_t + b_y` (seed 001), trained with softmax cross-entropy.
HEAD_NAMES = ("weight_hy", "bias_y")


def init_head(hidden: int, vocab: int, seed: int = 3) -> dict[str, Array]:
    """Head weights drawn like torch.nn.Linear's: U(-1/sqrt(H), 1/sqrt(H)), float32."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden)
    return {
        "weight_hy": rng.uniform(-bound, bound, size=(vocab, hidden)).astype(np.float32),
        "bias_y": rng.uniform(-bound, bound, size=(vocab,)).astype(np.float32),
    }


def init_targets(seq_len: int, batch: int, vocab: int, seed: int = 4) -> npt.NDArray[np.int64]:
    """Target classes `(T, B)` for the head's cross-entropy loss."""
    return np.random.default_rng(seed).integers(0, vocab, size=(seq_len, batch))


def head_forward(y: npt.ArrayLike, weights: Mapping[str, npt.ArrayLike]) -> Array:
    """Logits `(T, B, V)` = y W_hy^T + b_y, in float64."""
    w, b = (np.asarray(weights[n], dtype=np.float64) for n in HEAD_NAMES)
    return np.asarray(y, dtype=np.float64) @ w.T + b


def cross_entropy(logits: Array, targets: npt.ArrayLike) -> tuple[float, Array]:
    """Mean softmax cross-entropy over every (t, b) and its gradient w.r.t. the logits."""
    t = np.asarray(targets)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    onehot = np.eye(logits.shape[-1])[t]
    n = t.size
    return float(-(onehot * log_p).sum() / n), (np.exp(log_p) - onehot) / n


def infer_shapes(spec: CellSpec, weights: Mapping[str, npt.ArrayLike]) -> tuple[int, int, int]:
    """(input_size, hidden, layers) of a canonical weight dict; UsageError if it is not one."""
    layers = 0
    while f"weight_ih_l{layers}" in weights:
        layers += 1
    if layers == 0:
        raise UsageError("weights must be a PyTorch-style state_dict with 'weight_ih_l0', 'weight_hh_l0', ...")
    expected = set(weight_names(layers)) | (set(HEAD_NAMES) & set(weights))
    if set(weights) != expected:
        extra = sorted(set(weights) - expected)
        missing = sorted(expected - set(weights))
        raise UsageError(f"weights keys do not match {layers}-layer {spec.cell}: missing {missing}, unexpected {extra}")
    w0 = np.asarray(weights["weight_ih_l0"])
    gh, input_size = w0.shape
    if gh % spec.gates:
        raise UsageError(f"weight_ih_l0 has {gh} rows, not a multiple of {spec.gates} gates for {spec.cell}")
    hidden = gh // spec.gates
    for k in range(layers):
        i_k = input_size if k == 0 else hidden
        want = {
            f"weight_ih_l{k}": (gh, i_k),
            f"weight_hh_l{k}": (gh, hidden),
            f"bias_ih_l{k}": (gh,),
            f"bias_hh_l{k}": (gh,),
        }
        for name, shape in want.items():
            got = np.shape(weights[name])
            if got != shape:
                raise UsageError(f"{name} has shape {got}, expected {shape} for {spec.cell} hidden={hidden}")
    return input_size, hidden, layers


def negate_update_gate(spec: CellSpec, weights: Mapping[str, Array]) -> dict[str, Array]:
    """The same weights with the GRU z rows of W, U, b_i, b_h negated.

    Because sigmoid(-a) = 1 - sigmoid(a), `take_new` with these weights computes
    exactly `keep_old` with the originals (and the other way round).
    """
    if spec.cell != "gru":
        raise UsageError("negate_update_gate applies to GRU weights only")
    out = {}
    for name, w in weights.items():
        w = np.array(w, copy=True)
        if name in HEAD_NAMES:  # the output head has no gates
            out[name] = w
            continue
        hidden = w.shape[0] // 3
        w[hidden : 2 * hidden] *= -1
        out[name] = w
    return out


def useful_flops(
    spec: CellSpec, batch: int, input_size: int, hidden: int, seq_len: int, layers: int, train: bool
) -> int:
    """FLOPs of the gate GEMMs, 2*B*(I_k+H)*G*H per layer and step, the same for every formulation.

    Extra work a formulation executes (concat's zero blocks, the concat copy)
    is deliberately not counted, so GFLOP/s compare like for like. A train
    pass counts 3x: the forward GEMMs plus the two backward GEMMs (data and
    weight gradients), the usual convention.
    """
    total = 0
    for k in range(layers):
        i_k = input_size if k == 0 else hidden
        total += 2 * batch * (i_k + hidden) * spec.gates * hidden * seq_len
    return 3 * total if train else total


def _sigmoid(a: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-a))


def _layer_weights(weights: Mapping[str, npt.ArrayLike], k: int) -> tuple[Array, Array, Array, Array]:
    return tuple(  # type: ignore[return-value]
        np.asarray(weights[f"{n}_l{k}"], dtype=np.float64) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def _step(
    spec: CellSpec, x: Array, h: Array, c: Array | None, w: Array, u: Array, bi: Array, bh: Array
) -> tuple[Array, Array | None, dict[str, Array]]:
    """One reference step; returns (h', c', cache for the backward)."""
    hid = h.shape[1]
    ax = x @ w.T + bi
    if spec.cell == "rnn":
        a = ax + h @ u.T + bh
        h_new = np.tanh(a) if spec.nonlinearity == "tanh" else np.maximum(a, 0.0)
        return h_new, None, {"x": x, "h": h, "a": a, "h_new": h_new}
    if spec.cell == "lstm":
        a = ax + h @ u.T + bh
        i, f = _sigmoid(a[:, :hid]), _sigmoid(a[:, hid : 2 * hid])
        g, o = np.tanh(a[:, 2 * hid : 3 * hid]), _sigmoid(a[:, 3 * hid :])
        assert c is not None
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        return o * tc, c_new, {"x": x, "h": h, "c": c, "i": i, "f": f, "g": g, "o": o, "tc": tc}
    # gru
    if spec.gru_reset == "after":
        ah = h @ u.T + bh
        r = _sigmoid(ax[:, :hid] + ah[:, :hid])
        z = _sigmoid(ax[:, hid : 2 * hid] + ah[:, hid : 2 * hid])
        hn = ah[:, 2 * hid :]
        n = np.tanh(ax[:, 2 * hid :] + r * hn)
    else:
        ah = h @ u[: 2 * hid].T + bh[: 2 * hid]
        r = _sigmoid(ax[:, :hid] + ah[:, :hid])
        z = _sigmoid(ax[:, hid : 2 * hid] + ah[:, hid:])
        hn = (r * h) @ u[2 * hid :].T + bh[2 * hid :]
        n = np.tanh(ax[:, 2 * hid :] + hn)
    h_new = z * h + (1 - z) * n if spec.gru_update == "keep_old" else (1 - z) * h + z * n
    return h_new, None, {"x": x, "h": h, "r": r, "z": z, "n": n, "hn": hn}


def _forward_cached(
    spec: CellSpec,
    x: npt.ArrayLike,
    weights: Mapping[str, npt.ArrayLike],
    h0: npt.ArrayLike | None,
    c0: npt.ArrayLike | None,
) -> tuple[Array, tuple[Array, ...], list[list[dict[str, Array]]]]:
    _, hidden, layers = infer_shapes(spec, weights)
    seq = np.asarray(x, dtype=np.float64)
    batch = seq.shape[1]
    h_init = np.zeros((layers, batch, hidden)) if h0 is None else np.asarray(h0, dtype=np.float64)
    c_init = np.zeros((layers, batch, hidden)) if c0 is None else np.asarray(c0, dtype=np.float64)
    h_n, c_n, caches = [], [], []
    for k in range(layers):
        w, u, bi, bh = _layer_weights(weights, k)
        h, c = h_init[k], (c_init[k] if spec.cell == "lstm" else None)
        outs, layer_cache = [], []
        for t in range(seq.shape[0]):
            h, c, cache = _step(spec, seq[t], h, c, w, u, bi, bh)
            outs.append(h)
            layer_cache.append(cache)
        seq = np.stack(outs)
        h_n.append(h)
        c_n.append(c)
        caches.append(layer_cache)
    state: tuple[Array, ...] = (np.stack(h_n),)
    if spec.cell == "lstm":
        state = (np.stack(h_n), np.stack(c_n))  # type: ignore[arg-type]
    return seq, state, caches


def reference_forward(
    spec: CellSpec, x: npt.ArrayLike, weights: Mapping[str, npt.ArrayLike],
    h0: npt.ArrayLike | None = None, c0: npt.ArrayLike | None = None,
) -> tuple[Array, tuple[Array, ...]]:  # fmt: skip
    """float64 reference: `y (T, B, H)` of the last layer and `(h_n,)` or `(h_n, c_n)`, each `(L, B, H)`."""
    y, state, _ = _forward_cached(spec, x, weights, h0, c0)
    return y, state


def _step_backward(
    spec: CellSpec, cache: Mapping[str, Array], dh: Array, dc_next: Array, u: Array
) -> tuple[Array, Array, Array, Array, Array]:
    """One step of BPTT through one cell: the gate pre-activation gradients on the input side (`dax`)
    and the recurrent side (`dah`), this step's `d U`, and the gradients flowing to the previous step's
    h and (LSTM) c. `dh` is the loss's gradient at this step's output h, `dc_next` at its c."""
    h = cache["h"]
    hid = u.shape[1]
    if spec.cell == "rnn":
        da = dh * (1 - cache["h_new"] ** 2) if spec.nonlinearity == "tanh" else dh * (cache["a"] > 0)
        return da, da, da.T @ h, da @ u, dc_next
    if spec.cell == "lstm":
        i, f, g, o, tc = cache["i"], cache["f"], cache["g"], cache["o"], cache["tc"]
        dc = dc_next + dh * o * (1 - tc**2)
        dai = dc * g * i * (1 - i)
        daf = dc * cache["c"] * f * (1 - f)
        dag = dc * i * (1 - g**2)
        dao = dh * tc * o * (1 - o)
        da = np.concatenate([dai, daf, dag, dao], axis=1)
        return da, da, da.T @ h, da @ u, dc * f
    r, z, n, hn = cache["r"], cache["z"], cache["n"], cache["hn"]
    if spec.gru_update == "keep_old":
        dz, dn, dh_prev = dh * (h - n), dh * (1 - z), dh * z
    else:
        dz, dn, dh_prev = dh * (n - h), dh * z, dh * (1 - z)
    dan = dn * (1 - n**2)
    daz = dz * z * (1 - z)
    if spec.gru_reset == "after":
        dar = dan * hn * r * (1 - r)
        dax = np.concatenate([dar, daz, dan], axis=1)
        dah = np.concatenate([dar, daz, dan * r], axis=1)
        return dax, dah, dah.T @ h, dh_prev + dah @ u, dc_next
    # reset before: rows r, z of U multiply h; rows n multiply r*h
    drh = dan @ u[2 * hid :]
    dar = drh * h * r * (1 - r)
    da = np.concatenate([dar, daz, dan], axis=1)
    du_t = np.concatenate([da[:, : 2 * hid].T @ h, dan.T @ (r * h)], axis=0)
    return da, da, du_t, dh_prev + drh * r + da[:, : 2 * hid] @ u[: 2 * hid], dc_next


def reference_gradients(
    spec: CellSpec, x: npt.ArrayLike, weights: Mapping[str, npt.ArrayLike],
    h0: npt.ArrayLike | None = None, c0: npt.ArrayLike | None = None, targets: npt.ArrayLike | None = None,
) -> dict[str, Array]:  # fmt: skip
    """Gradients of the loss w.r.t. every canonical weight, by hand-written BPTT in float64.

    The loss is `sum(y)`, or with head weights (`HEAD_NAMES`) in `weights`, the
    mean softmax cross-entropy of the head's logits against `targets (T, B)`.
    """
    y, _, caches = _forward_cached(spec, x, weights, h0, c0)
    layers = len(caches)
    grads: dict[str, Array] = {}
    dy = np.ones_like(y)  # d sum(y) / d y
    if HEAD_NAMES[0] in weights:
        if targets is None:
            raise UsageError("a model with an output head needs targets for its cross-entropy loss")
        _, dlogits = cross_entropy(head_forward(y, weights), targets)
        grads["weight_hy"] = np.einsum("tbv,tbh->vh", dlogits, y)
        grads["bias_y"] = dlogits.sum(axis=(0, 1))
        dy = dlogits @ np.asarray(weights["weight_hy"], dtype=np.float64)
    for k in reversed(range(layers)):
        w, u, bi, bh = _layer_weights(weights, k)
        hid = u.shape[1]
        dw, du, dbi, dbh = np.zeros_like(w), np.zeros_like(u), np.zeros_like(bi), np.zeros_like(bh)
        dx_seq = np.zeros((dy.shape[0], dy.shape[1], w.shape[1]))
        dh_next = np.zeros((dy.shape[1], hid))
        dc_next = np.zeros((dy.shape[1], hid))
        for t in reversed(range(dy.shape[0])):
            cache = caches[k][t]
            dh = dy[t] + dh_next
            xt = cache["x"]
            dax, dah, du_t, dh_prev, dc_next = _step_backward(spec, cache, dh, dc_next, u)
            dw += dax.T @ xt
            du += du_t
            dbi += dax.sum(axis=0)
            dbh += dah.sum(axis=0)
            dx_seq[t] = dax @ w
            dh_next = dh_prev
        grads[f"weight_ih_l{k}"] = dw
        grads[f"weight_hh_l{k}"] = du
        grads[f"bias_ih_l{k}"] = dbi
        grads[f"bias_hh_l{k}"] = dbh
        dy = dx_seq
    return {name: grads[name] for name in [*weight_names(layers), *HEAD_NAMES] if name in grads}
