"""Step detection on histories: real asv results with an injected regression, synthetic steps and flat noise."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rnnbench.analysis.frame import load
from rnnbench.analysis.history import HardwareChangeWarning, baseline, detect, series
from rnnbench.cli import main
from tests import synthetic_runs as S

ASV_DATA = Path(__file__).parent / "data" / "asv-legacy"
FIRST_NIGHT = datetime(2026, 3, 1, tzinfo=timezone.utc)  # of the synthetic histories


def test_the_regression_injected_into_the_asv_project_is_found_and_nothing_else() -> None:
    # tests/data/asv-legacy: six commits; from the fourth (f31f865c) the concat benchmarks call the kernel twice
    steps = detect(load(ASV_DATA))
    assert {(s.kind, s.key.split("/")[3], (s.commit or "")[:8]) for s in steps} == {
        ("regression", "concat", "f31f865c")
    }
    assert len(steps) == 4 and all(1.6 < s.ratio < 2.4 for s in steps)


def _history(root: Path, scale: dict[int, float], n: int = 8, noise: float = 0.02) -> None:
    cases = S.cases(frameworks=("numpy",), cells=("rnn",), batches=(4,), hiddens=(32,), seq_lens=(8,))
    for i in range(n):
        S.write(
            S.nightly(
                cases,
                i,
                FIRST_NIGHT,
                scale=lambda c, i=i: scale.get(i, 1.0) if c.formulation == "separate" else 1.0,
                noise=noise,
            ),
            root,
        )


def test_steps_up_and_down_are_found_at_the_right_commit(tmp_path: Path) -> None:
    _history(tmp_path, {i: 1.3 for i in range(3, 6)})  # slower from run 3, back from run 6
    steps = detect(load(tmp_path))
    found = [(s.kind, s.key.split("/")[3], s.commit) for s in steps]
    assert sorted(found) == [("improvement", "separate", "06" * 20), ("regression", "separate", "03" * 20)]


def test_a_flat_noisy_history_has_no_steps(tmp_path: Path) -> None:
    _history(tmp_path, {}, n=12, noise=0.03)
    assert detect(load(tmp_path)) == []


def test_cli_regressions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["regressions", str(ASV_DATA)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 step changes of at least 5%") and out.count("regression") == 4
    assert main(["regressions", str(ASV_DATA), "--format", "json", "--threshold", "3"]) == 2


# -- baselines, hardware fingerprints, framework versions ---------------------------------------------


def _runs(
    root: Path,
    scales: list[float],
    cpu: list[str] | None = None,
    torch: list[str] | None = None,
    noise: float = 0.02,
) -> None:
    """One run per scale (separate formulation scaled), optionally on changing hardware or torch versions."""
    cases = S.cases(frameworks=("torch",), cells=("rnn",), batches=(4,), hiddens=(32,), seq_lens=(8,))
    for i, sc in enumerate(scales):
        doc = S.nightly(
            cases, i, FIRST_NIGHT, scale=lambda c, sc=sc: sc if c.formulation == "separate" else 1.0, noise=noise
        )
        if cpu:
            doc["machine"]["cpu_model"] = cpu[i]
        if torch:
            doc["machine"]["frameworks"]["torch"] = torch[i]
        S.write(doc, root)


def test_baseline_lists_only_the_case_outside_its_own_spread(tmp_path: Path) -> None:
    _runs(tmp_path, [1.0] * 8 + [1.3])
    verdicts, short = baseline(load(tmp_path), 5)
    outside = [(v.kind, v.key.split("/")[3]) for v in verdicts if v.kind != "within"]
    assert outside == [("regression", "separate")] and short == 0
    assert len(verdicts) == 4 and all(v.runs == 5 for v in verdicts)
    v = next(v for v in verdicts if v.kind == "regression")
    assert 1.2 < v.ratio < 1.4 and v.low < v.center < v.high < v.newest


def test_baseline_of_a_flat_noisy_history_lists_nothing_and_an_improvement_is_not_a_regression(tmp_path: Path) -> None:
    _runs(tmp_path / "flat", [1.0] * 10, noise=0.03)
    assert all(v.kind == "within" for v in baseline(load(tmp_path / "flat"), 6)[0])
    _runs(tmp_path / "up", [1.0] * 6 + [0.7])
    kinds = {v.kind for v in baseline(load(tmp_path / "up"), 5)[0]}
    assert kinds == {"within", "improvement"}


def test_a_history_too_noisy_for_the_threshold_is_never_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # whole runs wander by 10-15% (a shared VM between nights), then one is 2.5x: outside the band, but the
    # band is far wider than 5%, so the history cannot tell a 5% change from the wander and says so
    _runs(tmp_path, [1.0, 1.15, 0.9, 1.1, 0.88, 2.5])
    verdicts, _ = baseline(load(tmp_path), 5)
    noisy = next(v for v in verdicts if v.key.split("/")[3] == "separate")
    assert noisy.kind == "too noisy to judge from history" and noisy.outside and noisy.mde > 0.05
    assert all(v.kind in ("within", "too noisy to judge from history") for v in verdicts)
    assert main(["regressions", str(tmp_path), "--baseline", "5", "--fail-on-regression"]) == 0
    assert "too noisy to judge from history (band wider than +-5%, 1 of them outside it)" in capsys.readouterr().out
    assert main(["regressions", str(tmp_path), "--baseline", "5", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["too_noisy"] >= 1 and all("mde" in c for c in doc["cases"])


def test_a_hardware_change_under_one_machine_name_starts_a_new_series_with_a_warning(tmp_path: Path) -> None:
    _runs(tmp_path, [1.0] * 4 + [1.3] * 4, cpu=["Old CPU"] * 4 + ["New CPU"] * 4)
    with pytest.warns(HardwareChangeWarning, match="Old CPU.*New CPU"):
        frame = load(tmp_path)
        steps = detect(frame)
    assert steps == []  # the 30% jump is the hardware, not a step within either series
    with pytest.warns(HardwareChangeWarning):
        labels = {ident[0] for ident, _ in series(frame)}
    assert len(labels) == 2 and any("New CPU" in x for x in labels) and any("Old CPU" in x for x in labels)


def test_framework_version_changes_are_marked_next_to_steps_and_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 0.2% sample noise: a history quiet enough that a 3-run band is no wider than the 5% threshold
    _runs(tmp_path, [1.0] * 6 + [1.3], torch=["2.12.0"] * 6 + ["2.13.0"], noise=0.002)
    steps = detect(load(tmp_path))
    assert [(s.kind, s.versions) for s in steps] == [("regression", "torch 2.12.0 -> 2.13.0")]
    assert main(["regressions", str(tmp_path)]) == 0
    assert "torch 2.12.0 -> 2.13.0" in capsys.readouterr().out
    assert main(["regressions", str(tmp_path), "--baseline", "3", "--fail-on-regression"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("1 of 4 cases outside their baseline (1 regressions)")
    assert "torch 2.12.0 -> 2.13.0" in out
    assert main(["regressions", str(tmp_path), "--baseline", "3", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outside"] == 1 and doc["judged"] == 4
    assert main(["regressions", str(tmp_path), "--baseline", "1"]) == 2


def test_steps_on_a_rate_metric_follow_its_direction() -> None:
    import pandas as pd

    rows = [
        {"machine": "m", "key": "k", "source": "asv", "status": "ok", "metric": "gflops", "unit": "GFLOP/s",
         "direction": "higher", "value": v, "median_s": None, "iqr_s": None, "commit": f"{i:040x}",
         "date": pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=i), "cpu_model": "c", "gpu_name": None,
         "cpu_cores": 2}
        for i, v in enumerate([30.0, 30.1, 29.9, 30.0, 40.0, 40.1, 39.9])
    ]  # fmt: skip
    steps = detect(pd.DataFrame(rows))
    assert [(s.kind, s.unit) for s in steps] == [("improvement", "GFLOP/s")]
