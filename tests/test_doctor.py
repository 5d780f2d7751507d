"""doctor: runs end to end on a tiny budget, measures real kernels, and writes documents compare can read."""

from __future__ import annotations

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
