"""The tidy frame: runner documents and real asv results in one table, metrics apart; debris is skipped with a warning."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rnnbench.analysis.frame import COLUMNS, SkippedFileWarning, export, load
from rnnbench.case import Case
from rnnbench.cli import main
from tests import synthetic_runs as S

ASV_DATA = Path(__file__).parent / "data" / "asv"  # today's suite (scripts/make_asv_test_data.sh)
ASV_LEGACY = Path(__file__).parent / "data" / "asv-legacy"  # an older suite's naming


def test_runner_documents_become_one_row_per_case(tmp_path: Path) -> None:
    cases = S.cases(frameworks=("numpy",), cells=("lstm",), batches=(2,), hiddens=(8, 16), seq_lens=(4,))
    doc = S.document(cases, failures={cases[0].key: "boom"})
    S.write(doc, tmp_path)
    frame = load(tmp_path)
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == len(cases)
    row = frame.set_index("key").loc[cases[1].key]
    rec = doc["records"][1]
    assert row["median_s"] == rec["median_s"] and list(row["samples_s"]) == rec["samples_s"]
    assert row["machine"] == "synth-box" and row["commit"] == "ab" * 20 and row["commit8"] == "abababab"
    assert row["framework_version"] == "2.4.6" and row["source"] == "run"
    assert row["date"] == pd.Timestamp("2026-01-01", tz="UTC")
    assert frame.set_index("key").loc[cases[0].key, "error"] == "boom"
    # runner rows are the time metric; one round holding every sample
    assert (frame["metric"] == "time").all() and (frame["unit"] == "s").all() and (frame["direction"] == "lower").all()
    assert (
        row["value"] == row["median_s"] and row["rounds"] == 1 and list(row["round_samples_s"][0]) == rec["samples_s"]
    )


def test_legacy_asv_results_are_read_with_case_keys_and_stats() -> None:
    frame = load(ASV_LEGACY)
    assert len(frame) == 6 * 2 * 3 * 2  # commits x benchmarks x formulations x shapes
    assert frame["commit"].nunique() == 6 and set(frame["machine"]) == {"asv-tiny"}
    key = Case("numpy", "cpu", "gru", "concat", "eager", "forward", 16, 32, 32, 8).key
    rows = frame[frame["key"] == key]
    assert len(rows) == 6 and rows["benchmark"].eq("bench_cells.GRU.time_forward").all()
    assert (rows["n_samples"] == 10).all() and (rows["q25_s"] <= rows["median_s"]).all()
    assert (rows["median_s"] <= rows["q75_s"]).all()
    assert rows["date"].min() == pd.Timestamp("2026-01-01 12:00", tz="UTC")


def test_debris_is_skipped_with_a_warning_naming_the_file(tmp_path: Path) -> None:
    S.write(
        S.document(S.cases(frameworks=("numpy",), cells=("rnn",), batches=(1,), hiddens=(8,), seq_lens=(2,))), tmp_path
    )
    (tmp_path / "broken.json").write_text("{nope")
    (tmp_path / "other.json").write_text(json.dumps({"hello": "world"}))
    (tmp_path / "future.json").write_text(json.dumps({"kind": "rnnbench-run", "api_version": 99}))
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.warns(SkippedFileWarning) as caught:
        frame = load(tmp_path)
    assert len(frame) == 3
    named = " ".join(str(w.message) for w in caught)
    for name in ("broken.json", "other.json", "future.json", "binary.json", "deep.json"):
        assert name in named


def test_export_csv_and_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    S.write(
        S.document(S.cases(frameworks=("numpy",), cells=("gru",), batches=(1,), hiddens=(8,), seq_lens=(2,))),
        tmp_path / "r",
    )
    frame = load([tmp_path / "r", ASV_DATA])
    back = pd.read_parquet(export(frame, tmp_path / "all.parquet"))
    assert len(back) == len(frame) and list(back["samples_s"].iloc[0]) == list(frame["samples_s"].iloc[0])
    assert main(["export", str(tmp_path / "r"), str(ASV_DATA), "--out", str(tmp_path / "all.csv")]) == 0
    csv = pd.read_csv(tmp_path / "all.csv")
    assert len(csv) == len(frame) and json.loads(csv["samples_s"].iloc[0]) == list(frame["samples_s"].iloc[0])
    assert main(["export", str(tmp_path / "r"), "--out", str(tmp_path / "all.xlsx")]) == 2
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "--out: must end in .csv or .parquet" in err and "no such file or directory" in err


def test_asv_skips_are_skipped_and_failures_failed(tmp_path: Path) -> None:
    """asv writes NaN for a tuple skipped in setup and null for one that failed."""
    import json
    import shutil

    dst = tmp_path / "asv"
    shutil.copytree(ASV_LEGACY, dst)
    path = next((dst / "asv-tiny").glob("*-existing-*.json"))
    doc = json.loads(path.read_text())
    bench = next(iter(doc["results"]))
    values = doc["results"][bench][0]
    values[0], values[1] = float("nan"), None
    path.write_text(json.dumps(doc))
    frame = load([dst])
    counts = frame["status"].value_counts().to_dict()
    assert counts.get("skipped") == 1 and counts.get("failed") == 1
    assert set(frame.loc[frame["status"] == "skipped", "error"]) == {
        "skipped by asv (setup raised NotImplementedError)"
    }


def test_todays_asv_results_read_their_labels_types_and_units() -> None:
    """A real `asv run` of the current suite: shape labels like 'B16 I64 H64 T32', and metrics kept apart."""
    frame = load(ASV_DATA)
    assert set(frame["source"]) == {"asv"} and frame["commit"].nunique() == 1
    by = {m: g for m, g in frame.groupby("metric")}
    assert set(by) == {"time", "gflops", "concat_over_separate", "peakmem"}
    times = by["time"]
    assert (times["unit"] == "s").all() and (times["direction"] == "lower").all()
    ok = times[times["status"] == "ok"]
    assert len(ok) > 10 and (ok["value"] == ok["median_s"]).all() and (ok["n_samples"] >= 1).all()
    # every case of the cell and layer sweeps is rebuilt from its labels: the suite's shape, not Case's default
    cells = times[times["benchmark"].str.startswith(("bench_cells.", "bench_layers."))]
    assert not cells["key"].str.startswith("asv/").any()
    assert set(zip(cells["batch"], cells["input_size"], cells["hidden"], cells["seq_len"])) == {(16, 64, 64, 32)}
    layers = cells[cells["benchmark"].str.startswith("bench_layers.")]
    assert set(layers["layers"]) == {2} and set(layers["cell"]) == {"lstm"} and set(layers["pass"]) == {"train"}
    # the other metrics never fill the time columns
    for metric, unit, direction in (
        ("gflops", "GFLOP/s", "higher"),
        ("peakmem", "bytes", "lower"),
        ("concat_over_separate", "time ratio concat/separate", None),
    ):
        g = by[metric]
        assert (g["unit"] == unit).all(), metric
        assert (g["direction"].isna() if direction is None else g["direction"].eq(direction)).all(), metric
        assert g["median_s"].isna().all() and g["n_samples"].eq(0).all(), metric
        assert (g.loc[g["status"] == "ok", "value"] > 0).all(), metric
    rates = by["gflops"]
    assert (
        rates.loc[rates["benchmark"] == "bench_rates.GFlops.track_gflops", "key"]
        .str.contains("/b16/i64/h64/t32/")
        .all()
    )
    # (key, metric, benchmark) names one row: a GFLOP/s row never stands in for the time of the same case
    assert not frame.duplicated(["key", "metric", "benchmark"]).any()


def _bench_classes() -> list[tuple[str, type]]:
    import importlib
    import inspect

    out = []
    for name in ("bench_cells", "bench_layers", "bench_rates", "bench_gemm"):
        module = importlib.reload(importlib.import_module(f"benchmarks.{name}"))
        out += [(f"{name}.{n}", c) for n, c in inspect.getmembers(module, inspect.isclass)
                if c.__module__ == module.__name__ and hasattr(c, "params")]  # fmt: skip
    return out


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["default-grid", "full-grid"])
def test_every_label_the_suite_emits_parses_back_to_its_case(full: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Round trip: each parameter tuple, written as asv writes it (repr), parses back to the case setup builds."""
    import itertools
    from types import SimpleNamespace

    from rnnbench import asvsuite
    from rnnbench.analysis.frame import _asv_case, _asv_fields, _literal

    for var in (asvsuite.ENV_FRAMEWORKS, asvsuite.ENV_FORMULATIONS, asvsuite.ENV_DEVICES):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(asvsuite.ENV_FULL, "1" if full else "0")
    built: list[Case] = []
    # setup builds its cases through verified_kernel; a stub records them instead of building
    monkeypatch.setattr(asvsuite, "verified_kernel", lambda case: built.append(case) or SimpleNamespace(case=case))
    monkeypatch.setattr(asvsuite, "gemm_call", lambda *a: lambda: None)
    monkeypatch.setattr(asvsuite, "unsupported", lambda case: None)  # skipped tuples still carry labels
    checked = 0
    try:
        for qualname, cls in _bench_classes():
            methods = [m for m in dir(cls) if m.startswith(("time_", "track_", "peakmem_"))]
            for combo in itertools.product(*cls.params):
                written = {n: _literal(repr(v)) for n, v in zip(cls.param_names, combo)}
                built.clear()
                cls().setup(*combo)
                for method in methods:
                    bench = f"{qualname}.{method}"
                    case = _asv_case(bench, written)
                    if not built:  # the GEMM: no case to rebuild
                        assert case is None, bench
                        continue
                    fields = _asv_fields(bench, written)
                    if "formulation" not in fields:  # the concat/separate ratio: a pair of cases, not one
                        assert case is None and {c.replace(formulation="concat") for c in built} == {
                            Case.from_dict({**built[0].to_dict(), **{k: v for k, v in fields.items() if k != "pass_"},
                                            "pass": fields["pass_"], "formulation": "concat"})
                        }, bench  # fmt: skip
                        continue
                    want = [c for c in built if c.pass_ == (case.pass_ if case else None)]
                    assert case is not None and want == [case], (bench, combo, case, built)
                    checked += 1
    finally:
        monkeypatch.setenv(asvsuite.ENV_FULL, "0")
        _bench_classes()  # leave the modules as the default grid defines them
    assert checked >= (1000 if full else 20)
