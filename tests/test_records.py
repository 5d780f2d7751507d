"""The typed record model: statistics against numpy, rounds kept apart and merged, every written version read,
malformed records refused with the field named, and the readers, `--resume`, `compare`, `regressions` and
`export` surviving them."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rnnbench.analysis.frame import SkippedRecordWarning, load
from rnnbench.case import Case
from rnnbench.cli import main
from rnnbench.measure.timing import Measurement
from rnnbench.sweep.records import KIND, DocumentError, Record, RecordError, RunDocument, Samples
from rnnbench.sweep.runner import merge_round
from rnnbench.sweep.store import done_keys, read_run
from rnnbench.sweep.worker import make_record
from tests import synthetic_runs as S

LEGACY_RUNS = Path(__file__).parent / "data" / "runs-legacy"
CASE = Case("numpy", "cpu", "lstm", "concat", "eager", "forward", 4, 8, 8, 5)


def test_statistics_match_numpy() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(-7, 0.1, 17), rng.lognormal(-7, 0.1, 12)
    s = Samples.of(a, b)
    flat = np.concatenate([a, b])
    q25, q75 = np.percentile(flat, [25, 75])
    assert s.median_s == pytest.approx(np.median(flat), rel=1e-12)
    assert s.quartiles_s == pytest.approx((q25, q75), rel=1e-12)
    assert s.iqr_s == pytest.approx(q75 - q25, rel=1e-9) and s.mean_s == pytest.approx(flat.mean(), rel=1e-12)
    assert s.round_medians_s == pytest.approx((np.median(a), np.median(b)), rel=1e-12)
    assert Samples.of([2.0]).iqr_s == 0.0


def test_worker_record_and_rounds_merge_keep_every_round_apart() -> None:
    r1 = make_record(CASE, "ok", threads=1, m=Measurement((3e-3, 1e-3, 2e-3), 10, 0.5, 5, timed_s=0.1))
    r2 = make_record(CASE, "ok", threads=1, m=Measurement((4e-3, 6e-3), 10, 0.0, 5, timed_s=0.2))
    j1 = r1.to_json()
    assert j1["round_samples_s"] == [[3e-3, 1e-3, 2e-3]] and j1["median_s"] == 2e-3 and j1["rounds"] == 1
    merged_record = merge_round(r1, r2)
    merged = merged_record.to_json()
    assert merged["round_samples_s"] == [[3e-3, 1e-3, 2e-3], [4e-3, 6e-3]]
    assert Record.from_json(merged).samples == Samples.of(j1["samples_s"], r2.to_json()["samples_s"])
    assert merged["samples_s"] == [3e-3, 1e-3, 2e-3, 4e-3, 6e-3] and merged["rounds"] == 2
    assert merged["median_s"] == 3e-3 and merged["round_medians_s"] == [2e-3, 5e-3]
    assert merged["gflops"] == pytest.approx(CASE.flops / 3e-3 / 1e9) and merged["compile_s"] == 0.5
    assert merged["timed_s"] == pytest.approx(0.3)
    # a later round that failed fails the case: the earlier samples stay, marked by the round that failed
    failed = merge_round(merged_record, make_record(CASE, "failed", threads=1, error="worker died")).to_json()
    assert failed["samples_s"] == merged["samples_s"] and failed["error"] == "round 3: worker died"
    assert failed["status"] == "failed" and failed["failed_round"] == 3
    assert Record.from_json(failed).to_json() == failed
    # the stored form reads back to the same record
    assert Record.from_json(json.loads(json.dumps(merged))).to_json() == merged


def test_unusable_samples_from_the_engine_fail_the_case_not_the_worker() -> None:
    rec = make_record(CASE, "ok", threads=1, m=Measurement((1e-3, 0.0), 1, 0.0, 1)).to_json()
    assert rec["status"] == "failed" and "samples_s" in rec["error"] and rec["samples_s"] == []


def test_every_document_older_rnnbench_wrote_still_loads_with_its_rounds() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one record of a real older document may be refused
        docs = {p.name.split("-")[1]: read_run(p) for p in sorted(LEGACY_RUNS.glob("runs/*/*.json"))}
    assert set(docs) == {"d0fb6cfe", "6d14750b"}
    for commit, doc in docs.items():
        raw = json.loads(next(LEGACY_RUNS.glob(f"runs/*/*-{commit}-*.json")).read_text())
        assert len(doc.records) == len(raw["records"]) == 5
        for rec, stored in zip(doc.records, raw["records"]):
            if stored["status"] != "ok":
                assert rec.samples is None
                continue
            assert rec.samples is not None and list(rec.samples.flat) == stored["samples_s"]
            assert rec.median_s == stored["median_s"] and rec.gflops == pytest.approx(stored["gflops"], rel=1e-12)
            if commit == "d0fb6cfe":  # written before rounds: one round
                assert len(rec.samples.rounds) == 1
            else:  # two rounds, recovered from round_medians_s
                assert list(rec.samples.round_medians_s) == stored["round_medians_s"]
                assert len(rec.samples.rounds) == 2 == stored["rounds"]
            again = rec.to_json()  # nothing written is lost on the way back
            assert {k: again[k] for k in stored} == stored


def _put(doc: dict[str, Any], root: Path, name: str) -> Path:
    """Write any document (well-formed or not) where the runner keeps its runs."""
    path = root / "runs" / "box" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _doc(n: int = 3, **kw: Any) -> dict[str, Any]:
    cases = S.cases(frameworks=("numpy",), cells=("rnn",), batches=(2,), hiddens=(8,), seq_lens=(4,))[:n]
    return S.document(cases, **kw)


# (where, value, field the warning must name); where = a record field, or "machine.<field>" for the document
BAD_RECORDS = [
    ("samples_s", "0.001,0.002", "samples_s"),
    ("samples_s", 0.001, "samples_s"),
    ("samples_s", [0.001, None, 0.002], "samples_s"),
    ("samples_s", [0.001, float("inf"), 0.002], "samples_s"),
    ("samples_s", [-0.001, -0.002, -0.003], "samples_s"),
    ("samples_s", [0.0, 0.0, 0.0], "samples_s"),
    ("samples_s", [], "samples_s"),
    ("median_s", "fast", "median_s"),
    ("median_s", float("inf"), "median_s"),
    ("median_s", float("nan"), "median_s"),
    ("median_s", -1.0, "median_s"),
    ("median_s", 1e9, "median_s"),  # disagrees with the samples
    ("batch", "four", "batch"),
    ("hidden", 0, "hidden"),
    ("hidden", True, "hidden"),
    ("layers", 2.5, "layers"),
    ("framework", "cobol", "case"),
    ("key", "numpy/cpu/rnn/<b>", "key"),
    ("status", "fine", "status"),
    ("timestamp", "yesterday", "timestamp"),
    ("round_samples_s", [[1e-3]], "round_samples_s"),
    ("round_samples_s", [[1e-3], "x"], "round_samples_s"),
    ("gflops", 1e12, "gflops"),
    ("noisy", "no", "noisy"),
]


@pytest.mark.parametrize(("field", "value", "named"), BAD_RECORDS, ids=[f"{f}={v!r}" for f, v, _ in BAD_RECORDS])
def test_a_malformed_record_is_skipped_naming_file_and_field(
    field: str, value: object, named: str, tmp_path: Path
) -> None:
    doc = _doc()
    doc["records"][1][field] = value
    path = S.write(doc, tmp_path)
    with pytest.warns(SkippedRecordWarning) as caught:
        frame = load(tmp_path)
    messages = [str(w.message) for w in caught if issubclass(w.category, SkippedRecordWarning)]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert str(path) in messages[0] and "record 1" in messages[0] and f"field {named!r}" in messages[0]
    assert sorted(frame["key"]) == sorted([doc["records"][0]["key"], doc["records"][2]["key"]])


BAD_DOCUMENTS = [
    ("machine.git_commit", 12345678, "machine.git_commit"),
    ("machine.machine", None, "machine.machine"),
    ("machine", "a string", "machine"),
    ("records", {"a": 1}, "records"),
    ("api_version", 2, "api_version"),
    ("api_version", True, "api_version"),
    ("created", 5, "created"),
    ("run_id", None, "run_id"),
]


@pytest.mark.parametrize(("where", "value", "named"), BAD_DOCUMENTS, ids=[f"{w}={v!r}" for w, v, _ in BAD_DOCUMENTS])
def test_a_malformed_document_is_skipped_and_the_others_read(
    where: str, value: object, named: str, tmp_path: Path
) -> None:
    good, bad = _doc(seed=1, commit="aa" * 20), _doc(seed=2, commit="bb" * 20)
    target = bad["machine"] if where.startswith("machine.") else bad
    target[where.split(".")[-1]] = value
    _put(good, tmp_path, "good.json")
    path = _put(bad, tmp_path, "bad.json")
    with pytest.warns(UserWarning) as caught:
        frame = load(tmp_path)
    text = " ".join(str(w.message) for w in caught)
    assert str(path) in text and repr(named) in text
    assert set(frame["commit"]) == {"aa" * 20}
    with pytest.raises(DocumentError):
        RunDocument.from_json(json.loads(path.read_text()))


def test_resume_skips_bad_records_instead_of_crashing(tmp_path: Path) -> None:
    """The crash of `run --resume` was `KeyError: 'machine'`; bad records are now measured again."""
    doc = _doc(commit="cc" * 20)
    del doc["records"][0]["key"]
    _put(doc, tmp_path, "one.json")
    broken = _doc(seed=3, commit="cc" * 20)
    del broken["machine"]["machine"]
    _put(broken, tmp_path, "two.json")
    with pytest.warns(UserWarning):
        keys = done_keys(tmp_path, "synth-box", "cc" * 20)
    assert keys == {r["key"] for r in doc["records"][1:]}


def test_rejections_name_the_field() -> None:
    rec = _doc()["records"][0]
    for field, value in (("samples_s", "x"), ("median_s", "fast"), ("batch", "four"), ("hidden", 0)):
        bad = copy.deepcopy(rec) | {field: value}
        with pytest.raises(RecordError) as info:
            Record.from_json(bad)
        assert info.value.field == field
    assert Record.from_json(rec).to_json()["samples_s"] == rec["samples_s"]
    assert RunDocument.from_json(_doc())[1] == []
    with pytest.raises(DocumentError):
        RunDocument.from_json({"kind": KIND, "api_version": 1})


def test_commands_with_nothing_to_compare_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _doc(commit="aa" * 20)
    b = S.document(S.cases(frameworks=("numpy",), cells=("gru",), batches=(2,), hiddens=(8,), seq_lens=(4,))[:3])
    S.write(a, tmp_path / "a")
    S.write(b, tmp_path / "b")
    garbage = tmp_path / "garbage"
    bad = _doc()
    for r in bad["records"]:
        r["median_s"] = "fast"
    S.write(bad, garbage)
    (tmp_path / "empty").mkdir()
    for argv in (
        ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-on-regression"],  # no case in common
        ["compare", str(garbage), str(tmp_path / "a")],
        ["regressions", str(tmp_path / "empty")],
        ["regressions", str(garbage)],
        ["export", str(garbage), "--out", str(tmp_path / "x.csv")],
        ["export", str(tmp_path / "empty"), "--out", str(tmp_path / "x.csv")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.splitlines()[-1].startswith("rnnbench: error: "), argv
        assert "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()
    # a history too short for a step is not an error: a nightly's first night has nothing to judge yet
    assert main(["regressions", str(tmp_path / "a")]) == 0
    assert capsys.readouterr().out.startswith("0 step changes")


EVIL = "<img src=x onerror=alert(1)> *bold* [link](http://x) `code` | pipe \x1b[31mred"


def test_compare_output_escapes_text_from_result_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = S.cases(frameworks=("numpy",), cells=("rnn",), batches=(2,), hiddens=(8,), seq_lens=(4,))[:2]
    for side, seed in (("a", 1), ("b", 2)):
        S.write(S.document(cases, seed=seed, machine_name=EVIL), tmp_path / side)
        S.write(S.document(cases, seed=seed, machine_name="other"), tmp_path / side)
        # a case only one side has, so its label (key @ machine) is listed below the table
        S.write(S.document([cases[0].replace(hidden=16)], seed=seed, machine_name=EVIL), tmp_path / "a")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert EVIL.split(" ")[0] not in md and "<img" not in md and "\x1b" not in md
    assert "&lt;img src=x onerror=alert(1)&gt; \\*bold\\* \\[link\\](http://x) \\`code\\` \\| pipe" in md
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    table = capsys.readouterr().out
    assert "\x1b" not in table and "\\x1b[31mred" in table


def test_read_document_leaves_out_malformed_records_for_every_dict_reader(tmp_path: Path) -> None:
    """`merge` and the landing page read documents as JSON: they get the well-formed records only."""
    from rnnbench.sweep.store import read_document

    doc = _doc()
    doc["records"][0]["samples_s"] = "broken"
    doc["peaks"][1]["gflops"] = -5
    path = _put(doc, tmp_path, "run.json")
    with pytest.warns(UserWarning) as caught:
        got = read_document(path)
    assert [r["key"] for r in got["records"]] == [r["key"] for r in doc["records"][1:]]
    assert got["peaks"] == doc["peaks"][:1] and len(caught) == 2
    assert "record 0: field 'samples_s'" in str(caught[0].message) and "peak 1: field 'gflops'" in str(
        caught[1].message
    )


def test_many_malformed_records_print_a_few_lines_and_a_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A document whose every record is malformed (a hand edit gone wrong) is named in a few lines, not one per record."""
    from rnnbench.cli.inputs import RECORD_WARNINGS_SHOWN, load_results

    doc = _doc()
    good = doc["records"][0]
    doc["records"] = [dict(good, key=f"{good['key']}-{i}", gflops=1e12) for i in range(40)] + [good]
    path = S.write(doc, tmp_path)
    frame = load_results([str(tmp_path)])
    assert list(frame["key"]) == [good["key"]]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == RECORD_WARNINGS_SHOWN + 1, lines
    assert all(str(path) in line for line in lines)
    assert lines[-1].endswith(f"{40 - RECORD_WARNINGS_SHOWN} more malformed records (left out)")


# -- the write path --------------------------------------------------------------------------------------


def test_one_noise_rule_for_the_engine_the_records_and_ab() -> None:
    """`timing.is_noisy` is the rule `Measurement.noisy` and `Samples.noisy` give (and `ab._quiet` uses);
    the quartiles are numpy's inclusive ones, an independent oracle."""
    from rnnbench.measure.timing import iqr, is_noisy
    from rnnbench.sweep.ab import _quiet

    rng = np.random.default_rng(3)
    for spread in (0.001, 0.03, 0.2):
        samples = tuple(float(x) for x in rng.lognormal(-7, spread, 25))
        q25, q75 = np.percentile(samples, [25, 75])
        assert iqr(samples) == pytest.approx(q75 - q25, rel=1e-9)
        want = (q75 - q25) / np.median(samples) > 0.05
        assert is_noisy(samples, 0.05) == want
        assert Measurement(samples, 1, 0.0, 0, 0.05).noisy == want == Samples.of(samples).noisy(0.05)
        assert _quiet(samples, 0.05) == (not want)
    assert is_noisy((1.0, 0.0, 0.0), 0.05)  # no positive median: never quiet


def test_every_preset_grid_survives_the_run_header_and_a_bad_one_is_named() -> None:
    from rnnbench.errors import UsageError
    from rnnbench.sweep.grid import PRESETS, Grid

    for grid in PRESETS.values():
        assert Grid.from_json(json.loads(json.dumps(grid.to_json()))) == grid
    good = PRESETS["quick"].to_json()
    for bad, field in ((good | {"axes": []}, "axes"), (good | {"cells": ["lstm", "elman"]}, "elman"),
                       (good | {"shapes": [[1, 2, 3]]}, "shapes"), (good | {"layers": [0]}, "layer")):  # fmt: skip
        with pytest.raises(UsageError, match=field):
            Grid.from_json(bad)


def test_the_header_grid_is_written_only_when_known_and_read_back(tmp_path: Path) -> None:
    from rnnbench.sweep.grid import PRESETS
    from rnnbench.sweep.store import RunWriter, new_document, read_document

    machine = {"machine": "m", "git_commit": None}
    plain = new_document(machine, command=["rnnbench", "run"], preset="quick", shard=None).to_json()
    assert "grid" not in plain  # a document without one is written as before
    writer = RunWriter(tmp_path, machine, command=["rnnbench", "run"], preset="quick", shard="1/2",
                       grid=PRESETS["quick"])  # fmt: skip
    try:
        writer.set_order_seed(7)
        writer.add(make_record(CASE, "ok", threads=1, m=Measurement((2e-3, 1e-3, 3e-3), 1, 0.0, 0)))
        writer.add(make_record(CASE, "skipped", threads=1, error="n/a"))
        writer.sort_records(0, lambda r: r.status != "skipped")
    finally:
        writer.close()
    doc, problems = RunDocument.from_json(read_document(writer.path))
    assert not problems and doc.grid == PRESETS["quick"].to_json() and doc.extra["order_seed"] == 7
    assert [r.status for r in doc.records] == ["skipped", "ok"] == [r.status for r in writer.records]
    assert doc.to_json() == read_document(writer.path) == json.loads(writer.dumps()) == writer.document().to_json()


def test_annotations_cannot_overwrite_what_the_record_derives() -> None:
    rec = make_record(CASE, "ok", threads=1, m=Measurement((2e-3, 1e-3), 1, 0.0, 0))
    assert rec.annotated({"load_avg": 0.5}).to_json()["load_avg"] == 0.5
    with pytest.raises(ValueError, match="median_s"):
        rec.annotated({"median_s": 1.0})
