"""pytest-benchmark over the kernels the asv suite times: one benchmark per case and formulation, grouped by case.

Each group (framework / cell / pass / shape) holds the four formulations, so
pytest-benchmark's table compares them side by side. Every kernel is verified
against the numpy reference before it is timed. `make test` runs this file
with `--benchmark-disable` (in pyproject's addopts): each benchmark then runs
once, as a test. Time for real with `--benchmark-enable` (see docs/asv.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from rnnbench import asvsuite, backends
from rnnbench.case import FORMULATIONS, FRAMEWORKS, PASSES

# 75 kernels built, verified and run once each: part of `make test`, not of `make test-fast`
pytestmark = pytest.mark.slow

SHAPE = asvsuite.shapes()[0]


# Only combinations a backend can build: numpy has no train pass and no native
# layer, JAX's native (flax) has no GRU, so those are not benchmarks at all (not skips).
COMBOS = [
    (framework, cell, pass_, formulation)
    for framework in FRAMEWORKS
    for cell in ("rnn", "gru", "lstm")
    for pass_ in PASSES
    for formulation in FORMULATIONS
    if not asvsuite.unsupported(asvsuite.make_case(framework, formulation, "cpu", SHAPE, cell=cell, pass_=pass_))
]


@pytest.mark.parametrize(("framework", "cell", "pass_", "formulation"), COMBOS, ids=["/".join(c) for c in COMBOS])
def test_formulation(benchmark: Any, framework: str, cell: str, pass_: str, formulation: str) -> None:
    case = asvsuite.make_case(framework, formulation, "cpu", SHAPE, cell=cell, pass_=pass_)
    assert framework in backends.available(), f"{framework} is not installed (make test installs every framework)"
    kernel = asvsuite.verified_kernel(case)  # AssertionError if it does not match the reference
    benchmark.group = f"{framework}/{case.spec.label}/{pass_}/{SHAPE}"
    benchmark.extra_info["gflop"] = case.flops / 1e9
    benchmark(kernel.call)
