"""The `mixed` precision policy means the same arithmetic contract in every framework (issue 21, item 7).

`mixed` keeps float32 master weights, casts them to the low dtype where a step
reads them, and sums each weight's per-step gradients over the sequence in
float32 (docs/formulations.md, "Precision"). Each test compares a framework's
gradients with the float64 numpy reference, the independent oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnbench import backends
from rnnbench.case import Case
from rnnbench.measure.verify import make_inputs, verify_kernel

# Every framework's formulations and native layer, in the mode its mixed train pass is usually run. JAX's
# compile and TensorFlow's 1024 eager steps take seconds: they run in `make test`, torch in `make test-fast` too.
EVERY_PATH = [
    ("torch", "eager", "separate"),
    ("torch", "eager", "concat"),
    ("torch", "eager", "hoisted"),
    ("torch", "eager", "native"),
    *(
        pytest.param(*path, marks=pytest.mark.slow)
        for path in (
            ("jax", "compiled", "separate"),
            ("jax", "compiled", "native"),
            ("tensorflow", "eager", "separate"),
            ("tensorflow", "eager", "native"),
        )
    ),
]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("framework,mode,formulation", EVERY_PATH)
def test_mixed_sums_per_step_weight_gradients_in_float32(framework, mode, formulation, device):
    """A planted sum that a bfloat16 accumulator cannot hold, so the check cannot flake either way.

    With W = U = 0 and constant biases, every step of a tanh RNN has the same
    state h and error signal d, so dU = sum over 1024 steps of the same term
    d*h (about 0.38). A bf16 running sum (8 significant bits) stops growing once
    its spacing exceeds twice the term (at 128), a third of the true 390: the
    error is ~67%, against the 0.1 tolerance. Summed in float32, the only error
    is bf16 rounding of each term and of the inputs, well under 1%. torch's
    autocast with its weight-cast cache on did the former (one bf16 copy of U
    shared by every step, its gradient summed in bf16). On CUDA (`make gpu-check`) the
    same holds for the GPU nightly's libraries (cuBLAS GEMMs, cuDNN and Keras layers).
    """
    case = Case(framework=framework, device=device, mode=mode, formulation=formulation, cell="rnn", pass_="train",
                dtype="bfloat16", seq_len=1024, batch=1, input_size=4, hidden=4)  # fmt: skip
    assert case.precision == "mixed"
    weights, x, state0 = make_inputs(case)
    for name in ("weight_ih_l0", "weight_hh_l0"):
        weights[name] = np.zeros_like(weights[name])
    weights["bias_ih_l0"] = np.full_like(weights["bias_ih_l0"], 0.5)
    weights["bias_hh_l0"] = np.full_like(weights["bias_hh_l0"], 0.25)
    check = verify_kernel(backends.get(framework).build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.worst_rel_error:.3g} > {check.tolerance}"


# The shape of the issue's `rnnbench verify ... --seq-len 375 --batch 4 --hidden 32` (input size from the
# verify preset), two layers: the eager torch paths that failed it on dweight_hh / dbias_hh
ISSUE_SHAPE = dict(pass_="train", dtype="bfloat16", seq_len=375, batch=4, input_size=6, hidden=32, layers=2)


@pytest.mark.slow  # seconds each on a busy 2-core machine; the planted test above is the fast tier's check
@pytest.mark.parametrize(
    "cell,formulation", [("lstm", "separate"), ("lstm", "hoisted"), ("gru", "concat"), ("gru", "native")]
)
def test_torch_mixed_bfloat16_passes_the_issue_shape(cell, formulation):
    case = Case(framework="torch", mode="eager", cell=cell, formulation=formulation, **ISSUE_SHAPE)
    weights, x, state0 = make_inputs(case)
    check = verify_kernel(backends.get("torch").build(case, weights, x, state0), weights, x, state0)
    assert check.ok, f"{check.worst}: rel error {check.worst_rel_error:.3g} > {check.tolerance}"
