"""The timed formulations, written once against a tiny array-ops namespace.

Each backend supplies an `Ops` (concat, sigmoid, tanh, relu, reshape, scan)
and its own tensors; `@`, `+`, `*` and slicing work on numpy, torch,
TensorFlow and JAX alike, so the step code below is shared and a reader who
knows one framework's formulation knows all four. This module owns:

- `pack`: canonical weights -> the parameters a formulation trains on
  (transposed so a step is `x @ W^T`; `concat` builds `W_m = [W | U]` with
  `b = b_i + b_h`, and for GRU the block matrices of docs/formulations.md);
- `run_layers`: the forward of a stack of layers for one formulation;
- `python_scan`: the time loop run op by op from Python (numpy, eager
  torch and TensorFlow; JAX and tf.function use their own loop primitives);
- `unpack_grads`: gradients w.r.t. packed parameters -> canonical names
  (so `concat`'s dW_m is compared with `separate`'s dW and dU).

`native` (the framework's own layer) is not here; backends build it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnbench.reference import Array, CellSpec

__all__ = [
    "CastOnRead",
    "Ops",
    "head_logits",
    "make_loss",
    "make_step",
    "pack",
    "pack_head",
    "python_scan",
    "run_layers",
    "unpack_grads",
    "unpack_head_grads",
]

# (carry, x_t) -> (carry, y_t); carry is (h,) or (h, c)
Step = Callable[[tuple[Any, ...], Any], tuple[tuple[Any, ...], Any]]
Scan = Callable[[Step, tuple[Any, ...], Any], tuple[tuple[Any, ...], Any]]


def python_scan(stack: Callable[[list[Any]], Any]) -> Scan:
    """A scan that loops over axis 0 in Python and joins the outputs with `stack` (e.g. np.stack)."""

    def scan(step: Step, carry: tuple[Any, ...], xs: Any) -> tuple[tuple[Any, ...], Any]:
        ys = []
        for t in range(int(xs.shape[0])):
            carry, y = step(carry, xs[t])
            ys.append(y)
        return carry, stack(ys)

    return scan


@dataclass(frozen=True)
class Ops:
    """The few array functions whose names differ between frameworks."""

    concat: Callable[[Sequence[Any]], Any]  # along the last axis
    sigmoid: Callable[[Any], Any]
    tanh: Callable[[Any], Any]
    relu: Callable[[Any], Any]
    reshape: Callable[[Any, tuple[int, ...]], Any]
    log_softmax: Callable[[Any], Any]  # along the last axis
    sum: Callable[[Any], Any]  # of every element
    # scan(step, carry, xs) -> (carry, ys stacked on axis 0)
    scan: Scan


def pack(spec: CellSpec, formulation: str, weights: Mapping[str, Array], layers: int) -> list[dict[str, Array]]:
    """Per layer, the float32 numpy parameters `formulation` computes with."""
    out = []
    for k in range(layers):
        w, u = weights[f"weight_ih_l{k}"], weights[f"weight_hh_l{k}"]
        bi, bh = weights[f"bias_ih_l{k}"], weights[f"bias_hh_l{k}"]
        hid = u.shape[1]
        gru_before = spec.cell == "gru" and spec.gru_reset == "before"
        if formulation in ("separate", "hoisted"):
            p = {"wt": w.T, "bi": bi}
            if gru_before:  # U_n multiplies r*h, so it is a GEMM of its own
                p |= {"ut_rz": u[: 2 * hid].T, "bh_rz": bh[: 2 * hid], "ut_n": u[2 * hid :].T, "bh_n": bh[2 * hid :]}
            else:
                p |= {"ut": u.T, "bh": bh}
        elif formulation == "concat":
            if spec.cell != "gru":
                p = {"wmt": np.concatenate([w, u], axis=1).T, "b": bi + bh}
            elif spec.gru_reset == "after":
                # 4H outputs [r, z, W_n x + b_in, U_n h + b_hn]; the zero blocks are executed FLOPs
                i_k = w.shape[1]
                wm = np.zeros((4 * hid, i_k + hid), dtype=w.dtype)
                wm[: 2 * hid, :i_k], wm[: 2 * hid, i_k:] = w[: 2 * hid], u[: 2 * hid]
                wm[2 * hid : 3 * hid, :i_k] = w[2 * hid :]
                wm[3 * hid :, i_k:] = u[2 * hid :]
                b = np.concatenate([bi[: 2 * hid] + bh[: 2 * hid], bi[2 * hid :], bh[2 * hid :]])
                p = {"wmt": wm.T, "b": b}
            else:  # reset before: [x, h] -> r, z then [x, r*h] -> n
                p = {
                    "wm1t": np.concatenate([w[: 2 * hid], u[: 2 * hid]], axis=1).T,
                    "b1": bi[: 2 * hid] + bh[: 2 * hid],
                    "wm2t": np.concatenate([w[2 * hid :], u[2 * hid :]], axis=1).T,
                    "b2": bi[2 * hid :] + bh[2 * hid :],
                }
        else:
            raise ValueError(f"pack() has no formulation {formulation!r}")
        out.append({name: np.ascontiguousarray(a, dtype=np.float32) for name, a in p.items()})
    return out


def unpack_grads(spec: CellSpec, formulation: str, grads: Sequence[Mapping[str, Array]]) -> dict[str, Array]:
    """Gradients w.r.t. `pack`'s parameters -> gradients w.r.t. canonical weights.

    Where `concat` adds two biases into one, d/db_i = d/db_h = d/db.
    """
    out: dict[str, Array] = {}
    for k, g in enumerate(grads):
        g = {name: np.asarray(a, dtype=np.float64) for name, a in g.items()}
        if formulation in ("separate", "hoisted"):
            dw, dbi = g["wt"].T, g["bi"]
            if "ut" in g:
                du, dbh = g["ut"].T, g["bh"]
            else:
                du = np.concatenate([g["ut_rz"].T, g["ut_n"].T])
                dbh = np.concatenate([g["bh_rz"], g["bh_n"]])
        elif spec.cell != "gru":
            wm = g["wmt"].T  # (G*H, I_k + H)
            i_k = wm.shape[1] - wm.shape[0] // spec.gates
            dw, du, dbi, dbh = wm[:, :i_k], wm[:, i_k:], g["b"], g["b"]
        elif spec.gru_reset == "after":  # gru: undo the 4H block layout
            wm, b = g["wmt"].T, g["b"]
            hid = wm.shape[0] // 4
            i_k = wm.shape[1] - hid
            dw = np.concatenate([wm[: 2 * hid, :i_k], wm[2 * hid : 3 * hid, :i_k]])
            du = np.concatenate([wm[: 2 * hid, i_k:], wm[3 * hid :, i_k:]])
            dbi = np.concatenate([b[: 2 * hid], b[2 * hid : 3 * hid]])
            dbh = np.concatenate([b[: 2 * hid], b[3 * hid :]])
        else:  # gru, reset before
            wm1, wm2 = g["wm1t"].T, g["wm2t"].T
            hid = wm2.shape[0]
            i_k = wm2.shape[1] - hid
            dw = np.concatenate([wm1[:, :i_k], wm2[:, :i_k]])
            du = np.concatenate([wm1[:, i_k:], wm2[:, i_k:]])
            dbi = dbh = np.concatenate([g["b1"], g["b2"]])
        out |= {f"weight_ih_l{k}": dw, f"weight_hh_l{k}": du, f"bias_ih_l{k}": dbi, f"bias_hh_l{k}": dbh}
    return out


def _update(spec: CellSpec, z: Any, h: Any, n: Any) -> Any:
    return z * h + (1 - z) * n if spec.gru_update == "keep_old" else (1 - z) * h + z * n


def _recurrent(ops: Ops, spec: CellSpec, xp: Any, carry: tuple[Any, ...], p: Mapping[str, Any], hid: int) -> Any:
    """One step given the input projection `xp = x W^T + b_i` (separate and hoisted)."""
    h = carry[0]
    if spec.cell == "gru":
        if spec.gru_reset == "after":
            hp = h @ p["ut"] + p["bh"]
            r = ops.sigmoid(xp[:, :hid] + hp[:, :hid])
            z = ops.sigmoid(xp[:, hid : 2 * hid] + hp[:, hid : 2 * hid])
            n = ops.tanh(xp[:, 2 * hid :] + r * hp[:, 2 * hid :])
        else:
            hp = h @ p["ut_rz"] + p["bh_rz"]
            r = ops.sigmoid(xp[:, :hid] + hp[:, :hid])
            z = ops.sigmoid(xp[:, hid : 2 * hid] + hp[:, hid:])
            n = ops.tanh(xp[:, 2 * hid :] + (r * h) @ p["ut_n"] + p["bh_n"])
        h_new = _update(spec, z, h, n)
        return (h_new,), h_new
    return _gates_to_state(ops, spec, xp + h @ p["ut"] + p["bh"], carry, hid)


def _gates_to_state(ops: Ops, spec: CellSpec, a: Any, carry: tuple[Any, ...], hid: int) -> Any:
    """rnn and lstm: all pre-activations `a` -> the new state."""
    if spec.cell == "rnn":
        h_new = ops.tanh(a) if spec.nonlinearity == "tanh" else ops.relu(a)
        return (h_new,), h_new
    c = carry[1]
    i, f = ops.sigmoid(a[:, :hid]), ops.sigmoid(a[:, hid : 2 * hid])
    g, o = ops.tanh(a[:, 2 * hid : 3 * hid]), ops.sigmoid(a[:, 3 * hid :])
    c_new = f * c + i * g
    h_new = o * ops.tanh(c_new)
    return (h_new, c_new), h_new


def _concat_step(ops: Ops, spec: CellSpec, x: Any, carry: tuple[Any, ...], p: Mapping[str, Any], hid: int) -> Any:
    h = carry[0]
    if spec.cell != "gru":
        return _gates_to_state(ops, spec, ops.concat([x, h]) @ p["wmt"] + p["b"], carry, hid)
    if spec.gru_reset == "after":
        a = ops.concat([x, h]) @ p["wmt"] + p["b"]
        r = ops.sigmoid(a[:, :hid])
        z = ops.sigmoid(a[:, hid : 2 * hid])
        n = ops.tanh(a[:, 2 * hid : 3 * hid] + r * a[:, 3 * hid :])
    else:
        a = ops.concat([x, h]) @ p["wm1t"] + p["b1"]
        r, z = ops.sigmoid(a[:, :hid]), ops.sigmoid(a[:, hid:])
        n = ops.tanh(ops.concat([x, r * h]) @ p["wm2t"] + p["b2"])
    h_new = _update(spec, z, h, n)
    return (h_new,), h_new


def make_step(ops: Ops, spec: CellSpec, formulation: str, p: Mapping[str, Any], hid: int) -> Step:
    """The per-time-step function of one layer (what torch.compile compiles)."""
    if formulation == "separate":
        return lambda carry, x: _recurrent(ops, spec, x @ p["wt"] + p["bi"], carry, p, hid)
    if formulation == "hoisted":
        return lambda carry, xp: _recurrent(ops, spec, xp, carry, p, hid)
    return lambda carry, x: _concat_step(ops, spec, x, carry, p, hid)


def hoist(ops: Ops, xs: Any, p: Mapping[str, Any], shape: tuple[int, int, int]) -> Any:
    """`X W^T + b_i` for all time steps as one (T*B, I) x (I, G*H) GEMM."""
    t, b, i = shape
    proj = ops.reshape(xs, (t * b, i)) @ p["wt"] + p["bi"]
    return ops.reshape(proj, (t, b, proj.shape[-1]))


class CastOnRead(Mapping[str, Any]):
    """A view of one layer's parameters that casts each on every read (a Keras AutoCastVariable).

    Mixed precision keeps float32 master weights and computes in a low dtype.
    Casting where a step reads a weight (inside the scan body, once per step)
    makes each step's weight gradient flow back through the cast into float32,
    so the sum of gradients over the sequence accumulates in float32.
    """

    def __init__(self, params: Mapping[str, Any], cast: Callable[[Any], Any]) -> None:
        self._params, self._cast = params, cast

    def __getitem__(self, name: str) -> Any:
        return self._cast(self._params[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)


def pack_head(weights: Mapping[str, Array]) -> dict[str, Array]:
    """The output head's parameters as a step computes with them (`y @ W_hy^T`), float32."""
    return {"why_t": np.ascontiguousarray(weights["weight_hy"].T), "by": np.asarray(weights["bias_y"])}


def unpack_head_grads(grads: Mapping[str, Array]) -> dict[str, Array]:
    return {"weight_hy": np.asarray(grads["why_t"], dtype=np.float64).T, "bias_y": np.asarray(grads["by"], np.float64)}


def head_logits(ops: Ops, ys: Any, p: Mapping[str, Any]) -> Any:
    """Logits `(T, B, V)` (or batch-major) of hidden outputs `ys`, as one (T*B, H) x (H, V) GEMM."""
    t, b, hid = (int(n) for n in ys.shape)
    logits = ops.reshape(ys, (t * b, hid)) @ p["why_t"] + p["by"]
    return ops.reshape(logits, (t, b, int(logits.shape[-1])))


def make_loss(ops: Ops, onehot: Any | None) -> Callable[[Any], Any]:
    """The train pass's loss of the model output: sum(y), or mean cross-entropy against one-hot targets."""
    if onehot is None:
        return ops.sum
    n = int(np.prod(onehot.shape[:-1]))
    return lambda logits: -ops.sum(onehot * ops.log_softmax(logits)) / n


def run_layers(
    ops: Ops,
    spec: CellSpec,
    formulation: str,
    params: Sequence[Mapping[str, Any]],
    xs: Any,
    state0: Sequence[Any],
    shape: tuple[int, int, int, int],
    steps: Sequence[Step] | None = None,
    cast: Callable[[Any], Any] | None = None,
) -> tuple[Any, list[tuple[Any, ...]]]:
    """Forward through every layer: returns (ys of the last layer, final carry per layer).

    `shape` is (T, B, I, H). `state0[j]` is the j-th state tensor (h0, c0),
    each (L, B, H). `steps` are per-layer step functions built (and compiled)
    once by the backend, by default `make_step`'s. `cast`, for mixed
    precision, is applied to every parameter read (see `CastOnRead`).
    """
    t, b, i, hid = shape
    finals = []
    for k, p in enumerate(params):
        if cast is not None:
            p = CastOnRead(p, cast)
        carry = tuple(s[k] for s in state0)
        step = steps[k] if steps is not None else make_step(ops, spec, formulation, p, hid)
        seq = hoist(ops, xs, p, (t, b, i if k == 0 else hid)) if formulation == "hoisted" else xs
        carry, xs = ops.scan(step, carry, seq)
        finals.append(carry)
    return xs, finals
