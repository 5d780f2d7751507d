"""doctor: runs end to end on a tiny budget, reports rates that mean something, and writes documents compare reads.

The first test measures the real numpy kernel set: its verdicts depend on how
busy the machine is, so it checks only what holds on any machine (the rates
parse, lie in [0, 1], partition the comparisons, and the saved documents
compare). The second replaces each kernel's timed samples with seeded synthetic
ones (3% noise, no drift), so doctor's own bookkeeping (which comparison is A/A,
which is slowed, the rates, the saved documents) can be held to its targets:
the injected slowdown is caught in the concat cases and nowhere else, and A/A
alarms stay rare. (Busy-wait kernels were tried instead: on a loaded 2-core
machine they were as noisy as the real ones.)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnbench.analysis import doctor
from rnnbench.analysis.doctor import KERNEL_SET
from rnnbench.case import Case
from rnnbench.cli import main

ROUNDS = 2
N_CONCAT = sum(c.formulation == "concat" for c in KERNEL_SET)
PCT = r"(\d+(?:\.\d+)?)%"


def rates(out: str, slowdown: str) -> tuple[list[float], float, float]:
    """(A/A [slower, faster, too noisy, same], concat detection, others flagged) parsed from doctor's report."""
    aa = re.search(
        rf"A/A \((\d+) comparisons .*?: {PCT} flagged slower, {PCT} faster, {PCT} too noisy, {PCT} same", out
    )
    assert aa, out
    assert int(aa[1]) == ROUNDS * len(KERNEL_SET)
    aa_rates = [float(g) / 100 for g in aa.groups()[1:]]
    assert all(0 <= r <= 1 for r in aa_rates)
    assert sum(aa_rates) == pytest.approx(1, abs=0.005)  # the four verdicts partition the comparisons
    inj = re.search(
        rf"injected {slowdown} slowdown into concat: {PCT} of (\d+) concat comparisons flagged slower; "
        rf"{PCT} of (\d+) other comparisons flagged",
        out,
    )
    assert inj, out
    assert (int(inj[2]), int(inj[4])) == (ROUNDS * N_CONCAT, ROUNDS * (len(KERNEL_SET) - N_CONCAT))
    detected, other = float(inj[1]) / 100, float(inj[3]) / 100
    assert 0 <= detected <= 1 and 0 <= other <= 1
    return aa_rates, detected, other


def compare_json(capsys: pytest.CaptureFixture[str], base: Path, new: Path) -> dict[str, Any]:
    assert main(["compare", str(base), str(new), "--format", "json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert len(result["cases"]) == len(KERNEL_SET) and sum(result["counts"].values()) == len(KERNEL_SET)
    return result


def test_doctor_measures_and_saves_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["doctor", "--rounds", str(ROUNDS), "--samples", "5", "--sample-time", "0.0005"]
    assert main([*args, "--save", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for needle in ("timer: perf_counter", "noise at 1 BLAS thread", "advice:"):
        assert needle in out
    rates(out, "20%")
    compare_json(capsys, tmp_path / "base.json", tmp_path / "slow.json")


def _synthetic_samples(noise: float) -> Callable[..., list[float]]:
    """A stand-in for `sample_kernel`: seeded log-normal samples around a per-case level, times (1 + slowdown)."""
    rng = np.random.default_rng(7)
    level = {c: 1e-4 * (1 + i / 10) for i, c in enumerate(KERNEL_SET)}

    def sample_kernel(case: Case, call: Callable[[], Any], n_samples: int, number: int, slowdown: float) -> list[float]:
        return (level[case] * (1 + slowdown) * rng.lognormal(0, noise, n_samples)).tolist()

    return sample_kernel


def test_doctor_catches_the_injected_slowdown_and_nothing_else(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """doctor's targets, on a machine with 3% noise and no drift between sets (what an idle, pinned host gives)."""
    monkeypatch.setattr(doctor, "sample_kernel", _synthetic_samples(noise=0.03))
    args = ["doctor", "--rounds", str(ROUNDS), "--samples", "15", "--sample-time", "0.0005"]
    assert main([*args, "--save", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    aa, detected, other = rates(out, "20%")
    # at most one A/A alarm in 36, at least 95% of the slowed cases caught, at most one other case in 24 flagged
    assert aa[0] <= 1 / 36 and detected >= 0.95 and other <= 1 / 24, out

    cases = compare_json(capsys, tmp_path / "base.json", tmp_path / "slow.json")["cases"]
    concat = [c for c in cases if "/concat/" in c["key"]]
    assert len(concat) == N_CONCAT
    assert all(1.1 < c["ratio"] < 1.3 and c["verdict"] == "slower" for c in concat), concat
    assert all(0.95 < c["ratio"] < 1.05 for c in cases if c not in concat), cases


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


@pytest.mark.parametrize("flag, compare_s, ab_s", [([], 0.6, 1.0), (["--budget", "0.3"], 0.3, 0.3)])
def test_doctor_calibrates_with_the_budgets_of_run_and_ab(
    flag: list[str], compare_s: float, ab_s: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compare sweeps stand for `run`, the ab sides for `ab`: without --budget each takes that command's default."""
    seen: list[doctor.CalibrationOptions] = []
    monkeypatch.setattr(doctor, "calibrate", lambda cases, opts: seen.append(opts) or [])
    monkeypatch.setattr(doctor, "format_calibration", lambda rates, opts, n: "")
    argv = ["doctor", "--preset", "quick", "--framework", "numpy", "--cell", "rnn", "--batch", "4", "--hidden", "16",
            "--seq-len", "4", *flag, "--results", str(tmp_path), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    (opts,) = seen
    assert (opts.budget_s, opts.ab_budget_s, opts.warmup_budget_s) == (compare_s, ab_s, 0.25)
