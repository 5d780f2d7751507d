"""doctor: runs end to end on a tiny budget, measures real kernels, and writes documents compare can read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rnnbench.cli import main


def test_doctor_measures_and_saves_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--rounds", "1", "--samples", "5", "--sample-time", "0.0005", "--save", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for needle in (
        "timer: perf_counter",
        "noise at 1 BLAS thread",
        "A/A (18 comparisons",
        "injected 20% slowdown",
        "advice:",
    ):
        assert needle in out
    assert main(["compare", str(tmp_path / "base.json"), str(tmp_path / "slow.json"), "--format", "json"]) == 0
    assert '"verdict"' in capsys.readouterr().out


@pytest.mark.slow
def test_doctor_calibrates_compare_and_ab_on_a_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Three separate sweeps for compare, two interleaved runs for ab, a 3x slowdown on concat that both catch."""
    argv = ["doctor", "--preset", "quick", "--framework", "numpy", "--cell", "rnn", "--batch", "4", "--hidden", "16",
            "--seq-len", "4", "--budget", "0.05", "--threads", "1", "--slowdown", "0.99", "--results", str(tmp_path),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("A/A false-alarm rate:") == 2 and out.count("A/B slowed cases caught:") == 2
    assert "compare (separate sweeps):" in out and "ab (interleaved, paired):" in out
    assert "RNNBENCH_SELFTEST_SLOWDOWN=concat:1.99" in out
    docs = list((tmp_path / "runs").glob("*/*.json"))
    assert len(docs) == 3 + 4  # A, A', B; ab A/A and A/B, two sides each
    assert "RNNBENCH_SELFTEST_SLOWDOWN" not in os.environ  # restored after the slowed sweep


def test_doctor_calibration_needs_the_slowed_formulation_and_a_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--preset", "quick", "--framework", "numpy", "--formulation", "separate"]) == 2
    assert "nothing to slow down" in capsys.readouterr().err
    assert main(["doctor", "--hidden", "16"]) == 2
    assert "--hidden selects a calibration grid: it needs --preset" in capsys.readouterr().err
