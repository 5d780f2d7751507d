"""Shared fixtures: which frameworks and devices this machine has, and the cuda skip."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from tests.hardware import HAS_CUDA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `make gpu-check` sets RNNBENCH_REQUIRE_CUDA: there a CUDA test without a GPU fails instead of skipping
    if os.environ.get("RNNBENCH_REQUIRE_CUDA"):
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not HAS_CUDA:
            item.add_marker(skip)
