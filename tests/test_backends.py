"""Every framework x formulation x mode x cell variant x layers agrees with the numpy reference.

The grid is the `verify` preset (all cell variants, layers 1 and 2, both
modes, forward and train). All four frameworks are installed by `make test`,
so a missing framework is a failure here, not a skip.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnbench
from rnnbench import backends
from rnnbench.case import FRAMEWORKS, Case
from rnnbench.measure.verify import make_inputs, verify_kernel
from rnnbench.reference import negate_update_gate
from rnnbench.sweep.grid import PRESETS, expand

CASES, _ = expand(PRESETS["verify"], installed=FRAMEWORKS)


def test_every_framework_is_installed():
    assert backends.available() == list(FRAMEWORKS)


def test_verify_grid_covers_everything():
    seen = {(c.framework, c.formulation, c.mode, c.spec.label, c.layers, c.pass_) for c in CASES}
    assert ("torch", "native", "compiled", "gru[take_new,after]", 2, "train") in seen
    assert ("tensorflow", "native", "eager", "gru[keep_old,before]", 1, "train") in seen
    assert ("jax", "hoisted", "compiled", "lstm", 2, "train") in seen
    assert ("numpy", "concat", "eager", "rnn[relu]", 2, "forward") in seen
    assert len(CASES) > 500


def _in_fast_tier(case: Case) -> bool:
    """`make test-fast` keeps every framework x formulation x pass of the plain cells at one layer; the cell
    variants, two layers and torch.compile (seconds of compiling per case) run in `make test`."""
    plain = case.layers == 1 and case.spec.label in ("rnn", "gru", "lstm")
    return plain and not (case.framework == "torch" and case.mode == "compiled")


@pytest.mark.parametrize(
    "case", [c if _in_fast_tier(c) else pytest.param(c, marks=pytest.mark.slow) for c in CASES], ids=lambda c: c.key
)
def test_case_matches_reference(case):
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backends.get(case.framework).build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.max_rel_error:.3g} > {check.tolerance}"


def test_a_wrong_kernel_fails_verification():
    """The check can fail: perturb one recurrent weight inside the kernel only."""
    case = Case(framework="torch", cell="gru", formulation="concat", pass_="train", layers=2)
    weights, x, state0 = make_inputs(case)
    bad = dict(weights)
    bad["weight_hh_l1"] = bad["weight_hh_l1"] * 1.01
    check = verify_kernel(backends.get("torch").build(case, bad, x, state0), weights, x, state0)
    assert not check.ok


LOW_PRECISION = [
    Case(framework=fw, cell=cell, formulation=form, mode=mode, pass_=p, dtype=dtype, seq_len=4)
    for fw, mode, forms in (
        ("torch", "eager", ("separate", "concat", "hoisted", "native")),
        ("tensorflow", "compiled", ("separate", "concat", "native")),
        ("jax", "compiled", ("separate", "concat", "hoisted")),
    )
    for form in forms
    for cell in ("gru", "lstm")
    for p in ("forward", "train")
    for dtype in ("bfloat16", "float16")
]


# the train cases (JAX's especially) spend seconds compiling each: slow
@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if c.train else c for c in LOW_PRECISION], ids=lambda c: c.key
)
def test_half_precision_matches_reference(case):
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backends.get(case.framework).build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.max_rel_error:.3g} > {check.tolerance}"


@pytest.mark.parametrize(
    "framework,mode",
    # torch.compile of a two-layer train pass, per formulation and GRU reset: by far the slowest
    [("torch", "eager"), pytest.param("torch", "compiled", marks=pytest.mark.slow), ("tensorflow", "eager"),
     ("jax", "compiled")],
)  # fmt: skip
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_concat_gradients_map_back_onto_separate(framework, mode, cell):
    """dW_m split back into W and U equals separate's dW and dU, in the framework's own precision."""
    for reset in ("after", "before") if cell == "gru" else ("after",):
        case = Case(
            framework=framework, cell=cell, formulation="separate", mode=mode, pass_="train", layers=2, gru_reset=reset
        )
        weights, x, state0 = make_inputs(case)
        b = backends.get(framework)
        grads = {}
        for form in ("separate", "concat"):
            k = b.build(case.replace(formulation=form), weights, x, state0)
            grads[form] = k.fetch(k.call()).grads
        for name in weights:
            np.testing.assert_allclose(
                grads["concat"][name], grads["separate"][name], rtol=1e-4, atol=1e-4, err_msg=name
            )


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("reset", ["after", "before"])
def test_take_new_with_negated_weights_equals_keep_old_in_every_framework(framework, reset):
    weights, x, state0 = make_inputs(Case(cell="gru", layers=2))
    for formulation in ("separate", "concat", "hoisted"):
        keep, _ = rnnbench.forward(x, weights, "gru", formulation, framework, h0=state0[0], gru_reset=reset)
        neg = negate_update_gate(rnnbench.CellSpec("gru"), weights)
        take, _ = rnnbench.forward(
            x, neg, "gru", formulation, framework, h0=state0[0], gru_update="take_new", gru_reset=reset
        )
        np.testing.assert_allclose(take, keep, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("framework", ["torch", "tensorflow", "jax"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_matches_reference(framework, dtype):
    b = backends.get(framework)
    if "cuda" not in b.devices():
        pytest.skip(f"{framework} sees no CUDA device")
    for form in ("separate", "concat", "hoisted", "native"):
        for p in ("forward", "train"):
            case = Case(framework=framework, device="cuda", cell="lstm", formulation=form, pass_=p, dtype=dtype,
                        mode="compiled" if framework == "jax" else "eager")  # fmt: skip
            if b.unsupported(case):
                continue
            weights, x, state0 = make_inputs(case)
            check = verify_kernel(b.build(case, weights, x, state0), weights, x, state0)
            assert check.ok, case.key
