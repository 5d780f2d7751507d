"""`compare`: verdicts on samples with known shifts, the listing of unpaired cases, and the CLI contract."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from rnnbench.analysis.comparison import compare_frames
from rnnbench.analysis.frame import load
from rnnbench.analysis.render import format_comparison
from rnnbench.cli import main
from rnnbench.judge.bootstrap import pooled_noise
from rnnbench.judge.rules import compare_rounds, compare_samples, resolve_winner
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


def test_same_is_an_equivalence_test_on_the_narrower_interval() -> None:
    # five paired rounds whose ratios wander 0.98-1.06: the 99% interval reaches past 1.05, the 90% one
    # (two one-sided tests at 5%) does not, so the case is `same`, and the note gives that interval
    base = [[1.0] * 10 for _ in range(5)]
    new = [[m * (1 + 0.001 * i) for i in range(-5, 5)] for m in (1.0, 1.06, 0.98, 1.06, 1.0)]
    v = compare_rounds(base, new, paired=True)
    assert v.ci_high > 1.05  # the reported (99%) interval straddles the edge...
    assert v.verdict == "same" and v.note.startswith("equivalent: 90% interval")
    lo, hi = (float(x) for x in v.note.split()[-1].split("-"))
    assert v.ci_low < lo < hi < 1.05 < v.ci_high
    # ...so with the equivalence test at 99% too, the same rounds are `too noisy`
    assert compare_rounds(base, new, paired=True, same_confidence=0.99).verdict == "too noisy"
    # a wider wander is too noisy either way, and no interval turns a clear change into `same`
    wide = [[m] * 10 for m in (1.0, 1.08, 0.97, 1.08, 1.0)]
    assert compare_rounds(base, wide, paired=True).verdict == "too noisy"
    assert compare_rounds(base, [[1.2 * m] * 10 for m in (1.0, 1.01, 0.99, 1.0, 1.0)], paired=True).verdict == "slower"


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


# -- rounds, pairing, direction, common mode, hardware, stalls, ties -----------------------------------


def _flat(rounds: list[list[float]]) -> list[float]:
    return [s for r in rounds for s in r]


def _rounds(rng: np.random.Generator, levels: list[float], noise: float = 0.01, n: int = 10) -> list[list[float]]:
    """One round per level: samples around 1 ms x level (between-round drift = the spread of the levels)."""
    return [list(1e-3 * lv * rng.lognormal(0.0, noise, n)) for lv in levels]


def test_hierarchical_bootstrap_keeps_between_round_drift_from_becoming_false_alarms() -> None:
    """A/A with 10% drift between rounds: flat samples often call a change, rounds-then-samples (almost) never."""
    rng = np.random.default_rng(5)
    flat, nested = Counter(), Counter()
    for i in range(60):
        base = _rounds(rng, list(rng.lognormal(0.0, 0.10, 3)))
        new = _rounds(rng, list(rng.lognormal(0.0, 0.10, 3)))
        flat[compare_samples(_flat(base), _flat(new), seed=i).verdict] += 1
        nested[compare_rounds(base, new, seed=i).verdict] += 1
    assert nested["slower"] + nested["faster"] <= 1
    assert flat["slower"] + flat["faster"] >= 5  # the flat interval is far too narrow: the case for nesting


def test_between_round_spread_that_hides_the_threshold_is_too_noisy_and_says_so() -> None:
    rng = np.random.default_rng(6)
    v = compare_rounds(_rounds(rng, [1.0, 1.15, 0.9]), _rounds(rng, [1.05, 1.2, 0.95]))
    assert v.verdict == "too noisy" and "rounds differ by" in v.note


def test_a_large_change_still_clears_round_drift() -> None:
    rng = np.random.default_rng(8)
    v = compare_rounds(_rounds(rng, [1.0, 1.01, 0.99, 1.0]), _rounds(rng, [1.3, 1.31, 1.29, 1.3]))
    assert v.verdict == "slower" and 1.25 < v.ratio < 1.35


def test_paired_rounds_cancel_drift_that_hits_both_sides() -> None:
    """Drift shared by BASE and NEW in each round (as `ab` interleaves them) cancels in the paired statistics."""
    rng = np.random.default_rng(9)
    levels = [1.0, 1.12, 0.9, 1.05]
    base, same, slow = _rounds(rng, levels), _rounds(rng, levels), _rounds(rng, [1.2 * x for x in levels])
    assert compare_rounds(base, same).verdict == "too noisy"  # unpaired, the drift hides everything
    assert compare_rounds(base, same, paired=True).verdict == "same"
    v = compare_rounds(base, slow, paired=True)
    assert v.verdict == "slower" and abs(v.ratio - 1.2) < 0.02


@pytest.mark.parametrize(
    ("direction", "time_like", "scale", "verdict"),
    [
        ("higher", True, 1.3, "faster"),  # GFLOP/s up: faster, never a regression
        ("higher", True, 0.7, "slower"),
        ("lower", False, 1.3, "worse"),  # bytes up
        ("lower", False, 0.7, "better"),
        (None, False, 1.3, "changed"),  # a neutral ratio has no direction
        (None, False, 1.0, "same"),
    ],
)
def test_verdicts_follow_the_metric_direction(
    direction: str | None, time_like: bool, scale: float, verdict: str
) -> None:
    rng = np.random.default_rng(12)
    v = compare_rounds([_draw(rng)], [_draw(rng, scale)], direction=direction, time_like=time_like)
    assert v.verdict == verdict


def _frame_rows(rng: np.random.Generator, scale: float, **extra: object) -> list[dict[str, object]]:
    rows = []
    for key in ("a", "b", "c", "d"):
        s = _draw(rng, scale)
        rows.append(
            {"machine": "m", "key": key, "date": None, "status": "ok", "samples_s": s, "median_s": float(np.median(s)),
             "cpu_model": "CPU X", "gpu_name": None, "cpu_cores": 2, **extra}
        )  # fmt: skip
    return rows


def _metric_rows(rng: np.random.Generator, gflops: float, peakmem: float) -> list[dict[str, object]]:
    """One side of the metric test: the timed cases, then a GFLOP/s track and a peak-memory reading of case a
    (their draws from `rng` come after the timed cases', so both sides see the same stream)."""
    return [*_frame_rows(rng, 1.0),
        {"machine": "m", "key": "a", "metric": "gflops", "unit": "GFLOP/s", "direction": "higher", "value": gflops,
         "status": "ok", "samples_s": list(rng.normal(gflops, 0.1, 20)), "median_s": None, "date": None},
        {"machine": "m", "key": "a", "metric": "peakmem", "unit": "bytes", "direction": "lower", "value": peakmem,
         "status": "ok", "samples_s": [], "median_s": None, "date": None},
    ]  # fmt: skip


def test_metric_columns_units_and_direction_in_compare_frames() -> None:
    import pandas as pd

    rng = np.random.default_rng(13)
    base = pd.DataFrame(_metric_rows(rng, gflops=30.0, peakmem=2.0**20))
    new = pd.DataFrame(_metric_rows(rng, gflops=40.0, peakmem=2.0**21))
    cmp = compare_frames(base, new)
    by = {(c.key, c.metric): c for c in cmp.cases}
    assert by[("a", "gflops")].verdict == "faster" and by[("a", "gflops")].unit == "GFLOP/s"
    assert by[("a", "peakmem")].ratio == 2.0 and by[("a", "peakmem")].verdict == "too noisy"  # no samples
    assert cmp.regressions == 0
    text = format_comparison(cmp)
    assert "40 GFLOP/s" in text and "2 MiB" in text and "[gflops]" in text


def test_common_mode_shift_is_reported_in_every_format() -> None:
    import pandas as pd

    rng = np.random.default_rng(14)
    cmp = compare_frames(pd.DataFrame(_frame_rows(rng, 1.0)), pd.DataFrame(_frame_rows(rng, 1.1)))
    shift, n = cmp.common_mode
    assert n == 4 and abs(shift - 1.1) < 0.02
    assert f"common-mode shift: median NEW/BASE time ratio {shift:.3f}" in format_comparison(cmp, "table")
    assert "common-mode shift" in format_comparison(cmp, "markdown")
    doc = json.loads(format_comparison(cmp, "json"))
    assert doc["common_mode"]["cases"] == 4 and abs(doc["common_mode"]["ratio"] - 1.1) < 0.02


def test_compare_warns_when_hardware_differs_naming_both() -> None:
    import pandas as pd

    rng = np.random.default_rng(15)
    base = pd.DataFrame(_frame_rows(rng, 1.0))
    new = pd.DataFrame(_frame_rows(rng, 1.0)).assign(cpu_model="CPU Y", cpu_cores=8)
    cmp = compare_frames(base, new)
    assert len(cmp.warnings) == 1 and "CPU X" in cmp.warnings[0] and "CPU Y" in cmp.warnings[0]
    assert "warning: BASE and NEW ran on different hardware" in format_comparison(cmp)
    assert compare_frames(base, base).warnings == []


def test_a_stall_count_is_weighed_against_its_samples() -> None:
    from rnnbench.judge.rules import stall_flagged

    rng = np.random.default_rng(17)
    quiet = list(1e-3 * rng.lognormal(0.0, 0.03, 398))
    # two preemptions in 400 samples: a quiet machine's background, the verdict stands
    assert not stall_flagged({"stalls": 2, "samples_s": [*quiet, 3e-3, 4e-3]})
    assert stall_flagged({"stalls": 12, "samples_s": [*quiet[:-10], *[3e-3] * 12]})
    assert stall_flagged({"stalls": 1})  # a count without its samples cannot be weighed: it flags
    assert not stall_flagged({"stalls": 0}) and not stall_flagged({"busy": False})
    assert stall_flagged({"stalled": True})


def test_stall_flagged_cases_get_no_verdict() -> None:
    import pandas as pd

    rng = np.random.default_rng(16)
    base = pd.DataFrame(_frame_rows(rng, 1.0, stalled=False))
    new = pd.DataFrame(_frame_rows(rng, 2.0, stalled=False))
    new.loc[new["key"] == "a", "stalled"] = True
    cmp = compare_frames(base, new)
    by = {c.key: c for c in cmp.cases}
    assert by["a"].verdict == "too noisy" and "stall" in by["a"].note
    assert all(by[k].verdict == "slower" for k in "bcd")
    assert any("busy machine" in w for w in cmp.warnings)


def test_round_samples_column_drives_the_hierarchical_interval() -> None:
    import pandas as pd

    rng = np.random.default_rng(17)
    rb, rn = _rounds(rng, [1.0, 1.15, 0.9]), _rounds(rng, [1.05, 1.2, 0.95])

    def frame(rounds: list[list[float]], with_rounds: bool) -> pd.DataFrame:
        flat = _flat(rounds)
        row = {"machine": "m", "key": "a", "date": None, "status": "ok", "samples_s": flat,
               "median_s": float(np.median(flat))}  # fmt: skip
        if with_rounds:
            row["round_samples_s"] = rounds
        return pd.DataFrame([row])

    nested = compare_frames(frame(rb, True), frame(rn, True)).cases[0]
    flat = compare_frames(frame(rb, False), frame(rn, False)).cases[0]
    assert (nested.rounds_base, flat.rounds_base) == (3, 1)
    assert nested.ci_high - nested.ci_low > 1.5 * (flat.ci_high - flat.ci_low)


def test_a_winner_is_named_only_when_its_lead_is_resolved() -> None:
    rng = np.random.default_rng(18)
    clear = resolve_winner({"concat": [_draw(rng)], "separate": [_draw(rng, 1.3)], "hoisted": [_draw(rng, 1.5)]})
    assert clear.winner == "concat" and clear.label == "concat" and clear.ci_low > 1
    close = resolve_winner({"concat": [_draw(rng)], "separate": [_draw(rng, 1.005)], "hoisted": [_draw(rng, 1.5)]})
    assert close.winner is None and set(close.tied) == {"concat", "separate"}
    assert close.label.startswith("tie: ") and "hoisted" not in close.label
    few = resolve_winner({"concat": [[1.0, 1.1]], "separate": [[2.0, 2.1]]})
    assert few.winner is None  # two samples resolve nothing


def _sweep(rng: np.random.Generator, cases: int, round_sd: float, run_sd: float = 0.0) -> list[list[list[float]]]:
    """`cases` cases of 3 rounds: each case at its own level, shifted per run by `run_sd` and per round by `round_sd`."""
    return [_rounds(rng, list(np.exp(rng.normal(0.0, run_sd) + rng.normal(0.0, round_sd, 3)))) for _ in range(cases)]


def test_the_moderated_floor_keeps_aa_quiet_and_a_real_change_visible() -> None:
    """300 cases of 3 rounds with 5% between-round noise: with the floor at most 1% of A/A cases are called
    either way, and a 25% change is still caught in most cases (the floor is no blanket `too noisy`)."""
    rng = np.random.default_rng(21)
    base, new = _sweep(rng, 300, 0.05), _sweep(rng, 300, 0.05)
    noise = pooled_noise(list(zip(base, new)))
    assert noise is not None and 0.6 * 0.05**2 < noise.round_var < 1.6 * 0.05**2
    floor = Counter(compare_rounds(b, n, seed=i, noise=noise).verdict for i, (b, n) in enumerate(zip(base, new)))
    assert floor["slower"] <= 3 and floor["faster"] <= 3
    slowed = [[[1.25 * s for s in r] for r in rounds] for rounds in new[:40]]
    caught = [compare_rounds(b, n, noise=noise).verdict for b, n in zip(base[:40], slowed)]
    assert caught.count("slower") >= 24


def test_between_run_scatter_joins_the_interval_of_separate_runs() -> None:
    """Two separate runs whose cases each drift 8% between runs while their rounds agree within 1%: only the
    cross-case scatter shows it: the rounds-only interval calls many of them, with the scatter in the interval
    the A/A stays quiet, and a 60% change (well beyond 8% x sqrt 2 of run drift) still shows."""
    rng = np.random.default_rng(22)
    base, new = _sweep(rng, 200, 0.01, run_sd=0.08), _sweep(rng, 200, 0.01, run_sd=0.08)
    noise = pooled_noise(list(zip(base, new)))
    assert noise is not None and noise.run_var > 4 * noise.round_var
    own = Counter(compare_rounds(b, n, seed=i).verdict for i, (b, n) in enumerate(zip(base, new)))
    assert own["slower"] + own["faster"] >= 20  # the rounds agree, the runs do not: the case for the floor
    verdicts = Counter(compare_rounds(b, n, seed=i, noise=noise).verdict for i, (b, n) in enumerate(zip(base, new)))
    assert verdicts["slower"] <= 2 and verdicts["faster"] <= 2
    slowed = [[[1.6 * s for s in r] for r in rounds] for rounds in new[:20]]
    caught = [compare_rounds(b, n, noise=noise).verdict for b, n in zip(base[:20], slowed)]
    assert caught.count("slower") >= 15
    no_scatter = pooled_noise(list(zip(base, new))[:5])  # too few cases to tell scatter from change
    assert no_scatter is not None and no_scatter.run_var == 0.0
