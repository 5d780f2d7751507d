"""Property tests: random small shapes, every custom formulation equals the reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnbench import backends
from rnnbench.case import Case
from rnnbench.measure.verify import make_inputs, verify_kernel
from rnnbench.sweep.grid import CELL_VARIANTS

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw, framework, mode, train):
    spec = CELL_VARIANTS[draw(st.sampled_from(sorted(CELL_VARIANTS)))]
    return Case(
        framework=framework, mode=mode, pass_="train" if train else "forward",
        cell=spec.cell, nonlinearity=spec.nonlinearity, gru_update=spec.gru_update, gru_reset=spec.gru_reset,
        formulation=draw(st.sampled_from(["separate", "concat", "hoisted"])),
        batch=draw(st.integers(1, 5)), input_size=draw(st.integers(1, 7)), hidden=draw(st.integers(1, 7)),
        seq_len=draw(st.integers(1, 6)), layers=draw(st.integers(1, 3)),
    )  # fmt: skip


def _check(case, seed):
    weights, x, state0 = make_inputs(case, seed=seed)
    check = verify_kernel(backends.get(case.framework).build(case, weights, x, state0), weights, x, state0)
    assert check.ok, (case.key, check.worst, check.max_rel_error)
    assert np.isfinite(check.max_abs_error)


@SETTINGS
@given(cases("numpy", "eager", False), st.integers(0, 1000))
def test_numpy_forward(case, seed):
    _check(case, seed)


@SETTINGS
@given(cases("torch", "eager", True), st.integers(0, 1000))
def test_torch_train(case, seed):
    _check(case, seed)


@pytest.mark.slow  # a jit compile per example
@settings(max_examples=10, deadline=None)
@given(cases("jax", "compiled", True), st.integers(0, 1000))
def test_jax_train(case, seed):
    _check(case, seed)


@settings(max_examples=200, deadline=None)
@given(
    rounds=st.lists(st.lists(st.floats(1e-6, 1.0, allow_nan=False), min_size=1, max_size=30), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_the_bootstraps_row_medians_are_numpys_nanmedian(rounds: list[list[float]], seed: int) -> None:
    from rnnbench.judge import bootstrap

    rng = np.random.default_rng(seed)
    arrays = [np.asarray(r) for r in rounds]
    picks = rng.integers(0, len(arrays), (40, len(arrays)))
    values = bootstrap._resample(*bootstrap._padded(arrays), picks, rng)  # (40, rounds, longest), NaN-padded
    flat = values.reshape(40, -1)
    assert np.allclose(bootstrap._nanmedian_rows(flat), np.nanmedian(flat, axis=1), rtol=1e-12, atol=0)
    per_round = values.reshape(-1, values.shape[2])
    assert np.allclose(bootstrap._nanmedian_rows(per_round), np.nanmedian(per_round, axis=1), rtol=1e-12, atol=0)
