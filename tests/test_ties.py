"""Ties: the report's winner maps and the run summary name a winner only when its lead is resolved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnbench.case import Case
from rnnbench.report import charts
from rnnbench.report.build import _cell_winners
from rnnbench.sweep.records import Record, Samples
from rnnbench.sweep.runner import summary_rows


def _samples(rng: np.random.Generator, scale: float) -> list[float]:
    return list(1e-3 * scale * rng.lognormal(0.0, 0.02, 20))


def _record(form: str, samples: list[float], batch: int = 4) -> Record:
    case = Case("numpy", formulation=form, batch=batch, input_size=16, hidden=16, seq_len=4)
    return Record(case, "ok", samples=Samples.of(samples))


def test_run_summary_names_a_resolved_winner_and_otherwise_a_tie() -> None:
    rng = np.random.default_rng(1)
    records = [
        _record("concat", _samples(rng, 1.0), batch=4),
        _record("separate", _samples(rng, 1.3), batch=4),
        _record("concat", _samples(rng, 1.0), batch=8),
        _record("separate", _samples(rng, 1.004), batch=8),
    ]
    headers, rows = summary_rows(records)
    winners = {row[headers.index("shape")]: row[headers.index("winner")] for row in rows}
    assert winners["B4 H16 T4 L1"] == "concat"
    assert winners["B8 H16 T4 L1"] in ("tie: concat, separate", "tie: separate, concat")


def test_report_cells_tie_within_the_noise_and_the_map_draws_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rows = [
        {"batch": b, "hidden": 16, "formulation": f, "samples_s": s, "median_s": float(np.median(s))}
        for b, scales in ((4, {"concat": 1.0, "separate": 1.3}), (8, {"concat": 1.0, "separate": 1.003}))
        for f, sc in scales.items()
        for s in [_samples(rng, sc)]
    ]
    verdicts = _cell_winners(pd.DataFrame(rows))
    assert verdicts[(4, 16)].winner == "concat"
    assert verdicts[(8, 16)].winner is None and set(verdicts[(8, 16)].tied) == {"concat", "separate"}
    times = {
        f: pd.DataFrame([[r["median_s"]] for r in rows if r["formulation"] == f], index=[4, 8], columns=[16])
        for f in ("concat", "separate")
    }
    labels = pd.DataFrame([[verdicts[(4, 16)].label], [verdicts[(8, 16)].label]], index=[4, 8], columns=[16])
    out = charts.winner_maps(times["concat"] / times["separate"], times, "ties", tmp_path / "w.png", labels)
    assert out.stat().st_size > 1000


def test_the_landing_page_names_a_winner_change_only_when_both_are_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    from rnnbench.report import landing

    rng = np.random.default_rng(3)

    def night(concat: float, separate: float) -> list[dict[str, object]]:
        return [
            r.to_json()
            for r in (_record("concat", _samples(rng, concat)), _record("separate", _samples(rng, separate)))
        ]

    concat_wins, separate_wins, tie = night(1.0, 1.3), night(1.3, 1.0), night(1.0, 1.004)
    (change,) = landing.winner_changes(concat_wins, separate_wins)
    assert (change.before, change.after) == ("concat", "separate") and change.lead == pytest.approx(1.3, rel=0.05)
    assert landing.winner_changes(concat_wins, tie) == []  # the fastest moved, but within a tie: no change
    # the same fastest on both nights is no change, and is not bootstrapped (thousands of groups a night)
    calls: list[object] = []
    monkeypatch.setattr(landing, "resolve_winner", lambda rounds: calls.append(rounds))
    assert landing.winner_changes(concat_wins, night(1.0, 1.3)) == [] and calls == []
