"""The tidy frame: runner documents and real asv results in one table; debris is skipped with a warning."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rnnbench.analysis.frame import COLUMNS, SkippedFileWarning, export, load
from rnnbench.case import Case
from rnnbench.cli import main
from tests import synthetic_runs as S

ASV_DATA = Path(__file__).parent / "data" / "asv"


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


def test_real_asv_results_are_read_with_case_keys_and_stats() -> None:
    frame = load(ASV_DATA)
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
    with pytest.warns(SkippedFileWarning) as caught:
        frame = load(tmp_path)
    assert len(frame) == 3
    named = " ".join(str(w.message) for w in caught)
    for name in ("broken.json", "other.json", "future.json", "binary.json"):
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

    src = Path(__file__).parent / "data" / "asv"
    dst = tmp_path / "asv"
    shutil.copytree(src, dst)
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
