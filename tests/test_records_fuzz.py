"""Property-based: valid run documents mutated at random never crash a reader, `compare`, `regressions` or the
report, and a record that a mutation made invalid never yields a verdict.

Each example changes one thing in one small document (a field of a record, one sample, a field of the
machine fingerprint or of the header, a peak; a value of the wrong type, a non-finite or negative number,
hostile text, or a deletion) and reads it back the way the commands do. 1,000 mutations in all
(`READ_EXAMPLES` + `VERDICT_EXAMPLES`), plus a few through the HTML report.

The oracle is independent of `sweep.records`: a mutated record may take part in a verdict only if every
field the verdicts depend on (the case fields behind its key, its status, its samples and median) is the
value, and the JSON type, it was before the mutation.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnbench.analysis.comparison import compare_frames
from rnnbench.analysis.frame import load
from rnnbench.analysis.history import detect, format_steps
from rnnbench.analysis.render import format_comparison
from rnnbench.judge.rules import VERDICTS
from tests import synthetic_runs as S

READ_EXAMPLES = 800
VERDICT_EXAMPLES = 200
REPORT_EXAMPLES = 3
SETTINGS = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}

CASES = S.cases(frameworks=("numpy",), cells=("rnn",), batches=(2,), hiddens=(8,), seq_lens=(4,))[:2]
# the fields a verdict depends on: a change to any of them must keep the record out of every verdict
VERDICT_FIELDS = ("key", "framework", "device", "cell", "formulation", "mode", "pass", "batch", "input_size",
                  "hidden", "seq_len", "layers", "dtype", "status", "samples_s", "median_s")  # fmt: skip
RECORD_FIELDS = (*VERDICT_FIELDS, "variant", "nonlinearity", "gru_update", "gru_reset", "iqr_s", "mean_s", "number",
                 "compile_s", "flops", "gflops", "peak_gflops", "peak_fraction", "max_abs_error", "max_rel_error",
                 "noisy", "error", "threads", "timestamp", "round_samples_s", "round_medians_s", "rounds")  # fmt: skip
MACHINE_FIELDS = ("machine", "git_commit", "git_dirty", "threads", "cpu_cores", "frameworks", "cpu_model", "hostname")
HEADER_FIELDS = ("api_version", "kind", "run_id", "created", "finished", "command", "preset", "shard", "records",
                 "machine", "peaks")  # fmt: skip
HOSTILE_TEXT = ["fast", "four", "", "<script>alert(1)</script>", "*x* [a](b) | `c`", "\x1b[2J", "1e-3", "NaN", "ok"]
DELETE = object()


@functools.cache
def _cached_document(seed: int, day: int) -> str:
    return json.dumps(_make_document(seed, day))


def _document(seed: int, day: int) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_cached_document(seed, day))
    return result


def _make_document(seed: int, day: int) -> dict[str, Any]:
    doc = S.document(
        CASES,
        seed=seed,
        commit=f"{day + 1:x}" * 40,
        created=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=day),
    )
    for r in doc["records"]:  # small documents keep each example fast; statistics stay consistent
        r.update(S.record(_case_of(r), np.random.default_rng(seed), n=5, when=datetime.fromisoformat(r["timestamp"])))
    return doc


def _case_of(record: dict[str, Any]) -> Any:
    from rnnbench.case import Case

    return Case.from_dict(record)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e-300, 1e308, float("inf"), float("-inf"), float("nan"), -1e-3]),
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=12),
    st.lists(st.one_of(st.floats(allow_nan=True), st.none(), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(DELETE),
)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, int, str, Any]:
    """(target, index, field, new value): target 'record', 'sample', 'machine', 'header' or 'peak'."""
    target = draw(st.sampled_from(["record", "record", "record", "sample", "machine", "header", "peak"]))
    index = draw(st.integers(min_value=0, max_value=len(CASES) - 1))
    fields = {
        "record": RECORD_FIELDS,
        "sample": ("samples_s",),
        "machine": MACHINE_FIELDS,
        "header": HEADER_FIELDS,
        "peak": ("framework", "n", "median_s", "gflops"),
    }[target]
    field = draw(st.sampled_from(fields))
    if target == "sample":
        field = str(draw(st.integers(min_value=0, max_value=4)))
    return target, index, field, draw(values)


def _apply(doc: dict[str, Any], mutation: tuple[str, int, str, Any]) -> dict[str, Any]:
    target, index, field, value = mutation
    doc = copy.deepcopy(doc)
    where: Any = {
        "record": lambda: doc["records"][index],
        "sample": lambda: doc["records"][index]["samples_s"],
        "machine": lambda: doc["machine"],
        "header": lambda: doc,
        "peak": lambda: doc["peaks"][index],
    }[target]()
    key: Any = int(field) if target == "sample" else field
    if value is DELETE:
        if target == "sample":
            del where[key]
        else:
            where.pop(key, None)
    else:
        where[key] = value
    return doc


def _same(a: Any, b: Any) -> bool:
    """Equal in value and in JSON type (2 is not 2.0, True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _may_judge(original: dict[str, Any], mutated: dict[str, Any], index: int) -> bool:
    """The oracle: may record `index` of the mutated document take part in a verdict?"""
    if not isinstance(mutated.get("records"), list) or index >= len(mutated["records"]):
        return False
    before, after = original["records"][index], mutated["records"][index]
    if not isinstance(after, dict):
        return False
    return all(f in after and _same(before[f], after[f]) for f in VERDICT_FIELDS)


def _write(doc: dict[str, Any], root: Path, name: str) -> None:
    path = root / "runs" / "box" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, allow_nan=True))


def _load(root: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(root)


def _mutated_history(root: Path, mutation: tuple[str, int, str, Any], day: int) -> tuple[list[dict[str, Any]], Any]:
    """Three daily runs of one machine written under `root`, the one of `day` mutated: (the documents, their frame)."""
    history = [_document(seed=i, day=i) for i in range(3)]
    history[day] = _apply(history[day], mutation)
    for i, doc in enumerate(history):
        _write(doc, root, f"run{i}.json")
    return history, _load(root)


def _check_rows(frame: Any) -> None:
    """What every row the reader lets through must be, whatever the file held."""
    rows = frame.itertuples(index=False) if hasattr(frame, "itertuples") else frame
    for row in rows:
        assert row.status in ("ok", "failed", "inaccurate", "skipped")
        assert isinstance(row.machine, str) and row.machine
        assert isinstance(row.commit, str) or pd.isna(row.commit)  # a frame holds a missing commit as NaN
        for size in (row.batch, row.input_size, row.hidden, row.seq_len, row.layers):
            assert int(size) >= 1
        samples = np.asarray(row.samples_s, dtype=float)
        assert np.isfinite(samples).all() and (samples > 0).all()
        assert [s for r in row.round_samples_s for s in r] == list(row.samples_s)
        if row.status == "ok":
            assert len(samples) > 0 and row.median_s == pytest.approx(float(np.median(samples)), rel=1e-9)
            assert row.value == row.median_s and math.isfinite(row.gflops) and row.gflops > 0


BASE = _document(seed=100, day=0)


@pytest.fixture(scope="module")
def base_frame(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("base")
    _write(BASE, root, "base.json")
    return _load(root)


@pytest.mark.slow
@settings(max_examples=READ_EXAMPLES, **SETTINGS)
@given(mutation=mutations())
def test_readers_never_raise_and_let_only_sound_rows_through(mutation: Any, tmp_path_factory: Any) -> None:
    from types import SimpleNamespace

    from rnnbench.analysis.frame import iter_rows
    from rnnbench.sweep.store import done_keys, iter_documents

    root = tmp_path_factory.mktemp("m")
    mutated = _apply(BASE, mutation)
    _write(mutated, root, "run.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = [SimpleNamespace(**r) for r in iter_rows([root])]  # the rows `load` makes its frame of
    _check_rows(rows)
    _, index, _, _ = mutation
    if not _may_judge(BASE, mutated, index):
        assert not any(r.key == BASE["records"][index]["key"] and r.status == "ok" for r in rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keys = done_keys(root, "synth-box", BASE["machine"]["git_commit"])  # what `run --resume` reads
        list(iter_documents(root))
    assert keys <= {r["key"] for r in BASE["records"]}


@pytest.mark.slow
@settings(max_examples=VERDICT_EXAMPLES, **SETTINGS)
@given(mutation=mutations(), day=st.integers(min_value=0, max_value=2))
def test_compare_and_regressions_never_raise_nor_judge_an_invalid_record(
    mutation: Any, day: int, base_frame: Any, tmp_path_factory: Any
) -> None:
    history, frame = _mutated_history(tmp_path_factory.mktemp("h"), mutation, day)
    _check_rows(frame)
    # compare: the mutated run as NEW against an untouched BASE
    new = frame[frame["file"].str.endswith(f"run{day}.json")]
    cmp = compare_frames(base_frame, new)
    for c in cmp.cases:
        assert c.verdict in VERDICTS
        assert math.isfinite(c.base_value) and c.base_value > 0 and math.isfinite(c.new_value) and c.new_value > 0
        assert c.n_base > 0 and c.n_new > 0
    judged = {c.key for c in cmp.cases}
    _, index, _, _ = mutation
    if not _may_judge(_document(seed=day, day=day), history[day], index):
        assert BASE["records"][index]["key"] not in judged
    for fmt in ("table", "markdown", "json"):
        text = format_comparison(cmp, fmt)
        assert "\x1b" not in text  # no terminal control sequence from a file, in any format
        if fmt == "markdown":  # no markup either, where it would render
            assert "<script" not in text
    json.loads(format_comparison(cmp, "json"))
    # regressions: three runs of history, one of them mutated
    steps = detect(frame, 0.05)
    for s in steps:
        assert all(math.isfinite(v) and v > 0 for v in (s.ratio, s.before_s, s.after_s))
    for fmt in ("table", "markdown", "json"):
        format_steps(steps, fmt)


@pytest.mark.slow
@settings(max_examples=REPORT_EXAMPLES, **SETTINGS)
@given(mutation=mutations())
def test_the_report_builds_from_mutated_results(mutation: Any, tmp_path_factory: Any) -> None:
    from rnnbench.report.build import build_report

    root = tmp_path_factory.mktemp("r")
    _, frame = _mutated_history(root, mutation, day=1)
    page = build_report(frame, root / "site", max_charts=1, progress=False)
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
