"""`compare`: verdicts on samples with known shifts, the listing of unpaired cases, and the CLI contract."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from rnnbench.analysis.compare import compare_frames, compare_samples
from rnnbench.analysis.frame import load
from rnnbench.cli import main
from tests import synthetic_runs as S


def _draw(rng: np.random.Generator, scale: float = 1.0, noise: float = 0.02, n: int = 20) -> list[float]:
    return list(1e-3 * scale * rng.lognormal(0.0, noise, n))


@pytest.mark.parametrize(
    ("scale", "verdict"), [(1.2, "slower"), (1 / 1.2, "faster"), (1.0, "same"), (1.5, "slower"), (0.5, "faster")]
)
def test_known_shifts_get_the_right_verdict(scale: float, verdict: str) -> None:
    rng = np.random.default_rng(7)
    v = compare_samples(_draw(rng), _draw(rng, scale))
    assert v.verdict == verdict
    assert v.ci_low <= v.ratio <= v.ci_high
    assert abs(v.ratio - scale) < 0.05 * scale


def test_identical_inputs_are_the_same_even_when_noisy() -> None:
    samples = _draw(np.random.default_rng(1), noise=0.3)
    v = compare_samples(samples, list(reversed(samples)))
    assert (v.verdict, v.ratio) == ("same", 1.0)


def test_noise_larger_than_the_threshold_is_too_noisy() -> None:
    rng = np.random.default_rng(3)
    v = compare_samples(_draw(rng, noise=0.3, n=8), _draw(rng, 1.03, noise=0.3, n=8))
    assert v.verdict == "too noisy"
    assert v.mde > 0.05


def test_a_small_real_change_below_the_threshold_is_not_a_regression() -> None:
    rng = np.random.default_rng(4)
    v = compare_samples(_draw(rng, noise=0.005, n=40), _draw(rng, 1.02, noise=0.005, n=40))
    assert v.verdict == "same"


def test_error_rates_on_synthetic_aa_and_a_20_percent_slowdown() -> None:
    """The statistical contract: <= 1% false 'slower' on A/A, >= 95% detection of 20% at 3% noise."""
    rng = np.random.default_rng(11)
    aa = Counter(compare_samples(_draw(rng, noise=0.03), _draw(rng, noise=0.03), seed=i).verdict for i in range(150))
    slow = Counter(
        compare_samples(_draw(rng, noise=0.03), _draw(rng, 1.2, noise=0.03), seed=i).verdict for i in range(150)
    )
    assert aa["slower"] <= 1 and aa["faster"] <= 1
    assert slow["slower"] >= 0.95 * 150


def test_too_few_samples_are_too_noisy() -> None:
    v = compare_samples([1.0, 1.1], [2.0, 2.1])
    assert v.verdict == "too noisy" and "fewer than" in v.note


def _store(root: Path) -> tuple[Path, Path]:
    cases = S.cases(frameworks=("numpy",), cells=("rnn", "gru"), batches=(4, 16), hiddens=(32,), seq_lens=(8,))
    base = S.write(S.document(cases[:-1], commit="a" * 40, seed=1), root)
    new = S.write(
        S.document(
            cases[1:],
            commit="b" * 40,
            seed=2,
            created=datetime(2026, 1, 2, tzinfo=timezone.utc),
            scale=lambda c: 1.25 if c.formulation == "concat" else 1.0,
            noise=0.01,
            failures={cases[2].key: "boom"},
        ),
        root,
    )
    return base, new


def test_compare_frames_pairs_cases_and_lists_the_rest(tmp_path: Path) -> None:
    base, new = _store(tmp_path)
    cmp = compare_frames(load([base]), load([new]))
    keys = [c.key for c in cmp.cases]
    frame = load([tmp_path])
    all_keys = sorted(set(frame["key"]))
    assert cmp.only_base == sorted(set(load([base])["key"]) - set(load([new])["key"]))
    assert cmp.only_new == sorted(set(load([new])["key"]) - set(load([base])["key"]))
    assert len(cmp.only_base) == 1 and len(cmp.only_new) == 1
    assert [k for k, _, _ in cmp.not_ok] and cmp.not_ok[0][2] == "failed"
    assert len(keys) + 2 + len(cmp.not_ok) == len(all_keys)
    for c in cmp.cases:
        assert c.verdict == ("slower" if "/concat/" in c.key else "same"), c


def test_cli_compare_files_formats_and_fail_on_regression(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, new = _store(tmp_path)
    assert main(["compare", str(base), str(new)]) == 0
    out = capsys.readouterr().out
    assert "bootstrap" in out and "slower" in out and "only in BASE (1)" in out and "only in NEW (1)" in out
    assert main(["compare", str(base), str(new), "--fail-on-regression"]) == 1
    capsys.readouterr()
    assert main(["compare", str(base), str(new), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"]["slower"] == sum(c["verdict"] == "slower" for c in doc["cases"]) > 0
    assert "bootstrap" in doc["method"] and len(doc["only_base"]) == 1
    assert main(["compare", str(base), str(new), "--format", "markdown", "--threshold", "50%"]) == 0
    md = capsys.readouterr().out
    assert "| verdict |" in md and "threshold 50%" in md and "slower" not in md.split("|---|")[1]
    assert main(["compare", str(base), str(base), "--fail-on-regression"]) == 0


def test_cli_compare_by_commit_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(tmp_path)
    assert main(["compare", "aaaaaaa", "bbbbbbb", "--results", str(tmp_path)]) == 0
    assert "slower" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no/such/file.json", "also/missing"], "is not a file, a directory or a commit prefix"),
        (["cafe1234", "cafe1234"], "no results for commit 'cafe1234'"),
    ],
)
def test_cli_compare_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    _store(tmp_path)
    assert main(["compare", *args, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnbench: error: ") and message in err and err.count("\n") == 1


def test_cases_skipped_on_both_sides_are_counted_not_listed() -> None:
    import pandas as pd

    def frame(status_b: str) -> pd.DataFrame:
        rows = [
            {"machine": "m", "key": "a", "date": None, "status": "skipped", "samples_s": [], "median_s": None},
            {"machine": "m", "key": "b", "date": None, "status": status_b, "samples_s": [], "median_s": None},
        ]
        return pd.DataFrame(rows)

    cmp = compare_frames(frame("skipped"), frame("failed"))
    assert cmp.both_skipped == 1
    assert cmp.not_ok == [("b", "skipped", "failed")]
