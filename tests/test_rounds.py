"""Rounds without warm-up bias: a warm-up pass, chunked rounds in a seeded random order; the reference cache;
the busy-machine fields and warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnbench.case import Case
from rnnbench.measure import load
from rnnbench.measure.machine import fingerprint
from rnnbench.measure.timing import TimingConfig
from rnnbench.measure.verify import ReferenceCache, make_inputs, reference
from rnnbench.sweep.records import Record, Samples
from rnnbench.sweep.runner import RunOptions, run_cases
from rnnbench.sweep.store import read_document
from rnnbench.sweep.worker import measure_case
from tests.order_worker import LOG_ENV, order_worker

FAST = TimingConfig(budget_s=0.01, warmup_budget_s=0.01, min_samples=3)


def _case(hidden: int, formulation: str = "separate", **kw) -> Case:
    return Case(framework="numpy", formulation=formulation, hidden=hidden, input_size=4, batch=2, seq_len=3, **kw)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cases: list[Case], seed: int, name: str):
    log = tmp_path / f"{name}.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    opts = RunOptions(tmp_path / name, threads=1, timing=FAST, peak_timing=FAST, timeout_s=60, progress=False,
                      rounds=3, chunk_size=4, seed=seed, worker_target=order_worker)  # fmt: skip
    writer = run_cases(cases, fingerprint(1), opts)
    return read_document(writer.path), [line.split() for line in log.read_text().splitlines()]


def test_warm_up_pass_then_seeded_random_rounds_per_chunk(tmp_path, monkeypatch):
    cases = [_case(h) for h in (5, 6, 7, 8, 9, 10)]
    keys = [c.key for c in cases]
    doc, log = _run(tmp_path, monkeypatch, cases, seed=7, name="a")
    assert doc["order_seed"] == 7
    # chunk 1 (4 cases): warm-up pass in grid order, then 3 rounds each visiting every case once; then chunk 2
    chunks = [keys[:4], keys[4:]]
    at = 0
    orders = []
    for chunk in chunks:
        assert log[at : at + len(chunk)] == [["prepare", k] for k in chunk]
        at += len(chunk)
        for _ in range(3):
            ops, order = zip(*log[at : at + len(chunk)])
            assert set(ops) == {"case"} and sorted(order) == sorted(chunk)
            orders.append(list(order))
            at += len(chunk)
    assert at == len(log)
    assert any(o != keys[:4] for o in orders[:3])  # the rounds are shuffled (3 grid-order rounds: p = 1/13824)
    # same seed, same orders; records listed in grid order; every round's samples merged
    _, log_b = _run(tmp_path, monkeypatch, cases, seed=7, name="b")
    assert log_b == log
    recs = doc["records"]
    assert [r["key"] for r in recs] == keys
    for r in recs:
        assert r["status"] == "ok" and r["rounds"] == 3 and len(r["round_medians_s"]) == 3
        assert r["compile_s"] is not None  # from the warm-up pass, which built the kernel
        assert r["stalls"] >= 0 and r["clock"] == "host" and r["launch_s"] is None
        assert "load_avg" in r and "cpu_steal" in r


def test_failed_case_is_recorded_in_the_warm_up_pass_and_never_timed(tmp_path, monkeypatch):
    cases = [_case(5), _case(6, cell="lstm", formulation="native")]  # numpy has no native layer: skipped
    doc, log = _run(tmp_path, monkeypatch, cases, seed=1, name="c")
    assert [r["status"] for r in doc["records"]] == ["ok", "skipped"]
    assert ["case", cases[1].key] not in log and ["prepare", cases[1].key] in log


def test_reference_cache_is_shared_by_cases_with_the_same_math():
    cache = ReferenceCache()
    a = _case(8, "separate")
    ref_a, _ = cache.get(a)
    ref_b, _ = cache.get(_case(8, "concat"))  # another formulation of the same math: a hit
    ref_c, _ = cache.get(_case(8, "hoisted", mode="eager"))
    assert (cache.hits, cache.misses) == (2, 1)
    assert ref_b is ref_a and ref_c is ref_a
    cache.get(_case(9))  # another shape: a miss
    cache.get(Case(framework="torch", formulation="separate", hidden=8, input_size=4, batch=2, seq_len=3))
    assert (cache.hits, cache.misses) == (3, 2)
    # and it is the reference
    expected = reference(a, *make_inputs(a))
    assert (ref_a.y == expected.y).all()


def test_reference_cache_evicts_beyond_its_byte_budget():
    one = ReferenceCache().get(_case(8))[0]
    cache = ReferenceCache(max_bytes=int(1.5 * (one.y.nbytes + sum(s.nbytes for s in one.state))))
    cache.get(_case(8))
    cache.get(_case(9))
    assert len(cache.entries) == 1
    cache.get(_case(8))
    assert cache.misses == 3


def test_worker_verifies_against_the_cached_reference():
    refs = ReferenceCache()
    for form in ("separate", "concat", "hoisted"):
        rec = measure_case(_case(8, form), FAST, 1, None, cache={}, references=refs)
        assert rec.status == "ok" and rec.max_rel_error is not None and rec.max_rel_error < 1e-4
    assert (refs.hits, refs.misses) == (2, 1)


def test_load_fields_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 0 0 0 50 0 0\ncpu0 1 2 3\n")
    before = load.sample(stat)
    stat.write_text("cpu  200 0 100 1600 0 0 0 100 0 0\ncpu0 1 2 3\n")
    after = load.sample(stat)
    fields = load.load_fields(before, after)
    assert fields["cpu_steal"] == pytest.approx(50 / 1000)
    assert fields["load_avg"] is None or fields["load_avg"] >= 0
    missing = load.sample(tmp_path / "absent")
    assert load.load_fields(missing, missing)["cpu_steal"] is None


def test_busy_warning_when_load_leaves_too_few_cores():
    assert load.busy_warning(2, cores=2, load1=0.1) is None
    assert load.busy_warning(1, cores=2, load1=0.9) is None
    text = load.busy_warning(2, cores=2, load1=1.5)
    assert text is not None and "1.50" in text and "0 free" in text
    assert load.busy_warning(1, cores=4, load1=3.4) is None and load.busy_warning(2, cores=4, load1=2.6) is not None


def test_busy_cores_reads_what_runs_now_not_the_lagging_load_average(tmp_path, monkeypatch):
    """Two /proc/stat readings around the window: the busy share of the jiffies between them, times the cores."""
    import os

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")
    # the window passes while another process works: 100 of the 200 jiffies in it busy (user+system)
    monkeypatch.setattr("time.sleep", lambda s: stat.write_text("cpu  175 0 125 900 0 0 0 0 0 0\n"))
    busy = load.busy_cores(0.3, stat)
    assert busy is not None and abs(busy - 0.5 * (os.cpu_count() or 1)) < 1e-9
    assert load.busy_cores(0.0, tmp_path / "missing") is None


def test_round_bias_is_later_rounds_over_the_first_per_case():
    from rnnbench.sweep.harness import round_bias

    def rec(*medians: float, status: str = "ok") -> Record:
        # one sample per round: each round's median is that sample
        return Record(_case(8), status, samples=Samples(tuple((m,) for m in medians)) if medians else None)

    recs = [
        rec(2.0, 1.0, 1.0),  # first round twice as slow: 0.5
        rec(1.0, 1.0, 1.2),  # median of later rounds 1.1
        rec(1.0, 1.0),
        rec(1.0),  # one round: no ratio
        rec(status="failed"),
    ]
    bias = round_bias(recs)
    assert bias["cases"] == 3
    assert bias["median"] == pytest.approx(1.0) and bias["p5"] == pytest.approx(0.5)
    assert bias["p95"] == pytest.approx(1.1)


def test_harness_needs_two_rounds_for_the_bias(capsys):
    from rnnbench.cli import main

    assert main(["harness", "--rounds", "1", "--skip-torch", "--skip-quick"]) == 2
    assert "--rounds" in capsys.readouterr().err


def test_open_case_times_sample_by_sample_and_keeps_the_kernel_for_later_rounds():
    from rnnbench.sweep.worker import SteppedCase, open_case

    case = Case("numpy", "cpu", "rnn", "concat", batch=4, input_size=16, hidden=16, seq_len=4)
    cache: dict = {}
    cfg = TimingConfig(budget_s=0.05, warmup_budget_s=0.01, min_samples=3)
    held = open_case(case, cfg, 1, cache)
    assert isinstance(held, SteppedCase) and case.key in cache
    for _ in range(4):
        assert held.sample(held.number) > 0
    first = held.record()
    assert first.status == "ok" and first.samples is not None and len(first.samples.flat) == 4  # only those asked for
    assert first.compile_s is not None and first.max_rel_error is not None
    again = open_case(case, cfg, 1, cache)  # a later round: the cached kernel, re-warmed, not rebuilt
    assert isinstance(again, SteppedCase) and again.kernel is held.kernel
    again.sample()
    assert again.record().compile_s is None
    # a case that cannot be timed is its record, as measure_case writes it
    bad = open_case(Case("numpy", "cuda", "rnn", "concat", batch=4, input_size=16, hidden=16, seq_len=4), cfg, 1, {})
    assert isinstance(bad, Record) and bad.status in ("skipped", "failed")
