"""The columnar history: every committed result round-trips exactly; reads narrow by machine and night;
older nights drop their samples only; a corrupt night is named and skipped; bad input writes nothing."""

from __future__ import annotations

import json
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rnnbench.analysis import columnar
from rnnbench.analysis.frame import COLUMNS, SkippedFileWarning, load
from rnnbench.cli import main
from tests import synthetic_runs as S

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = [ROOT / "results", ROOT / "tests" / "data"]  # every committed run document and asv result
ORDER = ["file", "key", "metric", "benchmark", "params"]


def _same(u: Any, v: Any) -> bool:
    if isinstance(u, (list, np.ndarray)) or isinstance(v, (list, np.ndarray)):
        nested = lambda x: [list(r) if isinstance(r, (list, np.ndarray)) else r for r in x]  # noqa: E731
        return nested(u) == nested(v)
    return bool(pd.isna(u) and pd.isna(v)) or u == v


def _assert_frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) == list(COLUMNS)
    a = a.sort_values(ORDER, na_position="first").reset_index(drop=True)
    b = b.sort_values(ORDER, na_position="first").reset_index(drop=True)
    assert len(a) == len(b)
    for column in a.columns:
        bad = [i for i, (u, v) in enumerate(zip(a[column], b[column])) if not _same(u, v)]
        assert not bad, f"{column}: row {bad[0]}: {a[column][bad[0]]!r} != {b[column][bad[0]]!r}"


def _history(
    tmp_path: Path, n: int, keep: int = 30, machines: tuple[str, ...] = ("box-a",), last_slower: float = 1.0
) -> Path:
    """`n` synthetic nights per machine as documents under tmp_path/docs, imported into tmp_path/history;
    the last night's rnn cases `last_slower` times as slow."""
    docs = tmp_path / "docs"
    cases = S.cases(frameworks=("numpy",), cells=("rnn", "gru"), batches=(2,), hiddens=(8,), seq_lens=(4,))
    first = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for machine in machines:
        for night in range(n):
            slow = last_slower if night == n - 1 else 1.0
            scale = lambda c, slow=slow: slow if c.cell == "rnn" else 1.0  # noqa: E731
            S.write(S.nightly(cases, night, first, machine_name=machine, scale=scale), docs)
    out = tmp_path / "history"
    assert main(["history", "import", str(docs), "--out", str(out), "--keep-samples", str(keep), "--no-progress"]) == 0
    return out


def test_every_committed_result_round_trips_through_the_store(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)  # tests/data holds debris on purpose; both sides skip it
        before = load(COMMITTED)
        assert main(["history", "import", *map(str, COMMITTED), "--out", str(tmp_path / "h"), "--no-progress"]) == 0
        after = load(tmp_path / "h")
    assert len(before) > 1000 and set(before["source"]) == {"run", "asv"}
    _assert_frames_equal(before, after)


def test_reads_narrow_to_machines_and_the_last_nights(tmp_path: Path) -> None:
    history = _history(tmp_path, 5, machines=("box-a", "box-b"))
    frame = load(history)
    assert frame["file"].nunique() == 10
    last2 = load(history, machines=["box-a"], last=2)
    assert set(last2["machine"]) == {"box-a"}
    assert sorted(last2["commit8"].unique()) == ["03030303", "04040404"]  # nights 3 and 4 of 0..4
    since = load(history, since="2026-01-04")
    assert sorted(since["commit8"].unique()) == ["03030303", "04040404"] and set(since["machine"]) == {"box-a", "box-b"}
    # documents narrow the same way, so a folder of documents and its history answer alike
    _assert_frames_equal(load(tmp_path / "docs", machines=["box-a"], last=2), last2)


def test_older_nights_keep_their_statistics_but_not_their_samples(tmp_path: Path) -> None:
    history = _history(tmp_path, 4, keep=2)
    assert len(list((history / "samples" / "box-a").glob("*.parquet"))) == 2
    full = load(tmp_path / "docs")
    kept = load(history)
    for (_, a), (_, b) in zip(
        full.sort_values(ORDER).groupby("commit8", sort=True), kept.sort_values(ORDER).groupby("commit8", sort=True)
    ):
        assert list(a["median_s"]) == list(b["median_s"]) and list(a["iqr_s"]) == list(b["iqr_s"])
        if a["commit8"].iloc[0] in ("02020202", "03030303"):
            assert [list(s) for s in a["samples_s"]] == [list(s) for s in b["samples_s"]]
        else:
            assert all(len(s) == 0 for s in b["samples_s"])


def test_a_night_keeps_its_documents_header_and_an_older_night_rebuilds_one(tmp_path: Path) -> None:
    history = _history(tmp_path, 3, machines=("box-a", "box-b"))
    docs = {json.loads(p.read_text())["run_id"]: json.loads(p.read_text()) for p in (tmp_path / "docs").rglob("*.json")}
    found = list(columnar.newest_documents(history, "box-a"))
    assert [h["created"][:10] for _, h in found] == ["2026-01-03", "2026-01-02", "2026-01-01"]  # newest first
    for _, header in found:  # the whole document but its records: fingerprint, shards, times
        assert header == {k: v for k, v in docs[header["run_id"]].items() if k != "records"}
    # a night stored before headers were kept: its rows say the run, the date and the fingerprint
    night = found[0][0]
    table = pq.read_table(night.summary)
    pq.write_table(table.replace_schema_metadata({k: v for k, v in (table.schema.metadata or {}).items()
                                                  if k != columnar.DOCUMENT_KEY}), night.summary)  # fmt: skip
    rebuilt = columnar.night_document(night)
    original = docs[found[0][1]["run_id"]]
    assert rebuilt is not None and rebuilt["run_id"] == original["run_id"]
    assert rebuilt["machine"]["git_commit"] == original["machine"]["git_commit"]
    assert rebuilt["machine"]["frameworks"] == original["machine"]["frameworks"]
    assert rebuilt["created"] == original["created"] and "packages" not in rebuilt["machine"]


def test_a_corrupt_night_is_named_and_the_others_stay_readable(tmp_path: Path) -> None:
    history = _history(tmp_path, 3)
    victim = sorted((history / "summary" / "box-a").glob("*.parquet"))[1]
    victim.write_bytes(victim.read_bytes()[:100])  # a copy cut short
    with pytest.warns(SkippedFileWarning, match=victim.name):
        frame = load(history)
    assert frame["file"].nunique() == 2
    with pytest.raises(columnar.CorruptNightError, match=victim.name):
        columnar.read_frame(history)
    # the regressions command reads the rest and says which file it skipped
    assert main(["regressions", str(history)]) == 0


def test_a_write_killed_midway_leaves_the_stored_nights_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = _history(tmp_path, 2)
    before = {p: p.read_bytes() for p in history.rglob("*.parquet")}
    night = load(tmp_path / "docs").query("commit8 == '01010101'")

    def killed(self: Any, *_: Any) -> None:
        raise KeyboardInterrupt  # the process dies while writing the file's bytes

    monkeypatch.setattr(os, "fsync", lambda fd: killed(None))
    with pytest.raises(KeyboardInterrupt):
        columnar.write_night(history, night)
    assert {p: p.read_bytes() for p in history.rglob("*.parquet")} == before
    assert not [p for p in history.rglob("*") if p.name.endswith(".tmp")]


def test_commands_read_a_history_as_they_read_a_results_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _history(tmp_path, 6, last_slower=3.0)
    capsys.readouterr()
    assert main(["regressions", str(tmp_path / "docs"), "--baseline", "5"]) == 0
    from_docs = capsys.readouterr().out
    assert "(3 regressions)" in from_docs, from_docs
    assert main(["regressions", str(history), "--baseline", "5"]) == 0
    assert capsys.readouterr().out == from_docs
    out = tmp_path / "all.csv"
    assert main(["export", str(history), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == len(load(tmp_path / "docs")) == 36  # 6 nights of 6 cases


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text('{"hello": 1}')
    out = tmp_path / "history"
    assert main(["history", "import", str(notes), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnbench: error: cannot store") and "notes.json" in err and err.count("\n") == 1, err
    assert not out.exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("not a history")
    S.write(S.document(S.cases(frameworks=("numpy",), cells=("rnn",), batches=(2,), hiddens=(8,), seq_lens=(4,))),
            tmp_path / "docs")  # fmt: skip
    assert main(["history", "import", str(tmp_path / "docs"), "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert "is not an rnnbench history" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in taken.iterdir()) == ["mine.txt"]
