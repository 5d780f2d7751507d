"""`rnnbench verify` as a person runs it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rnnbench", *args], capture_output=True, text=True, timeout=600)


def test_verify_numpy_passes():
    p = run("verify", "--framework", "numpy", "--cell", "gru*")
    assert p.returncode == 0, p.stderr
    assert " 0 failed" in p.stdout
    assert "gru[take_new,before]" in p.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--framework", "caffe"],
        ["verify", "--cell", "transformer"],
        ["verify", "--formulation", "fused"],
        ["verify", "--hidden", "-4"],
        ["verify", "--batch", "two"],
        ["verify", "--framework", "numpy", "--device", "cuda"],
        ["verify", "--preset", "huge"],
        ["harness", "--threads", "0"],
        ["run", "--rounds", "0"],
        ["nonsense"],
    ],
)
def test_bad_input_one_line_exit_2(args):
    if "cuda" in args:
        from tests.hardware import HAS_CUDA

        if HAS_CUDA:
            pytest.skip("this machine has a GPU")
    p = run(*args)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rnnbench: error:"), p.stderr
