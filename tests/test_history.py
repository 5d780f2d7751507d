"""Step detection on histories: real asv results with an injected regression, synthetic steps and flat noise."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from rnnbench.analysis.frame import load
from rnnbench.analysis.history import detect
from rnnbench.cli import main
from tests import synthetic_runs as S

ASV_DATA = Path(__file__).parent / "data" / "asv-legacy"


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
            S.document(
                cases,
                seed=i,
                commit=f"{i:02x}" * 20,
                created=datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(days=i),
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
