"""`rnnbench ab`: bad input exits 2 writing nothing; a real interleaved run stores two linked documents and
finds a slowdown injected through the worker's self-test switch; a revision side runs its own checkout.

Verdicts and extra rounds are held to their targets on stub sides (tests/stub_side.py), whose samples are
drawn around a planted level: on real samples they would depend on how busy the machine is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from rnnbench.case import Case
from rnnbench.cli import main
from rnnbench.errors import UsageError
from rnnbench.judge.cases import judge_records
from rnnbench.measure.timing import TimingConfig
from rnnbench.sweep.ab import EXTRA_ROUNDS, ABOptions, resolve_side, run_ab
from tests.stub_side import NOISE_ENV, SEED_ENV, stub_interpreter

TINY = ["--framework", "numpy", "--cell", "rnn", "--batch", "4", "--hidden", "16", "--seq-len", "4"]


def _one_error_line(capsys: pytest.CaptureFixture[str], needle: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("rnnbench: error: ") and needle in err and err.count("\n") == 1, err


def test_missing_interpreter_and_unknown_revision_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    assert main(["ab", "--base", str(tmp_path / "no" / "python"), "--new", sys.executable, *TINY,
                 "--results", str(out)]) == 2  # fmt: skip
    _one_error_line(capsys, "no such interpreter")
    assert main(["ab", "--base", sys.executable, "--new", "no-such-revision-xyz", *TINY, "--results", str(out)]) == 2
    _one_error_line(capsys, "neither an interpreter path nor a git revision")
    assert not out.exists()


def test_an_environment_without_rnnbench_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # or the bare interpreter would find ours through it
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the workers' working directories go
    out = tmp_path / "results"
    assert main(["ab", "--base", str(bare / "bin" / "python"), "--new", sys.executable, *TINY,
                 "--results", str(out)]) == 2  # fmt: skip
    _one_error_line(capsys, "this environment has no rnnbench")
    assert not out.exists()
    assert not list(scratch.iterdir())  # the worker that could not start left no directory behind


def test_a_revision_resolves_to_its_commit() -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    if not head:
        pytest.skip("not a git checkout")  # an installed copy has no revisions to run
    side = resolve_side("HEAD")
    assert side.revision == head and side.python == sys.executable
    with pytest.raises(UsageError, match="directory"):
        resolve_side(str(Path(sys.executable).parent))


# A planted 10x on concat. The real worker's samples depend on the machine: a stalled round of ~100 µs
# calls once moved a planted 3x to 1.74 on a loaded 2-core VM. For concat's ratio to fall below 3, or
# an unslowed case's to rise above it, the geometric mean of three paired rounds would have to move
# 3.3x: every round's median inflated that much on one side only, though the sides alternate in turns
# of 50 ms. The verdicts themselves are held to their targets on controlled samples (the stub side below).
PLANTED = 10.0


@pytest.mark.slow
def test_ab_interleaves_stores_both_sides_and_catches_an_injected_slowdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [Case("numpy", "cpu", "rnn", f, batch=4, input_size=16, hidden=16, seq_len=4)
             for f in ("separate", "concat", "hoisted")]  # fmt: skip
    opts = ABOptions(
        base=sys.executable, new=sys.executable, results_dir=tmp_path, threads=1,
        timing=TimingConfig(budget_s=0.1, min_samples=5), rounds=3, progress=False,
        new_env={"RNNBENCH_SELFTEST_SLOWDOWN": f"concat:{PLANTED:g}"},  # the worker's self-test switch
    )  # fmt: skip
    result = run_ab(cases, 1, opts)
    docs = [json.loads(p.read_text()) for p in (result.base_path, result.new_path)]
    assert [d["ab"]["side"] for d in docs] == ["base", "new"]
    assert docs[0]["ab"]["other_run_id"] == docs[1]["run_id"] and docs[1]["ab"]["selftest"]
    for d in docs:
        assert {r["key"] for r in d["records"]} == {c.key for c in cases}
        # 3 rounds, and up to EXTRA_ROUNDS more where the first could not decide (see the tests below)
        assert all(3 <= r["rounds"] == len(r["round_samples_s"]) <= 3 + EXTRA_ROUNDS for r in d["records"])
        assert d["ab"]["interleave"] == "turn"
        assert d["ab"]["idle_env"] == {"OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "4")}
    # the switch reached NEW's worker, for concat only, and never BASE's
    slowed = {r["key"].split("/")[3]: r.get("selftest_slowdown") for r in docs[1]["records"]}
    assert slowed == {"separate": None, "concat": PLANTED, "hoisted": None}
    assert not any("selftest_slowdown" in r for r in docs[0]["records"])
    # in turns: every round of a case has as many BASE samples as NEW ones (equal turns, taken alternately)
    new_by_key = {r["key"]: r for r in docs[1]["records"]}
    for rb in docs[0]["records"]:
        assert [len(x) for x in rb["round_samples_s"]] == [len(x) for x in new_by_key[rb["key"]]["round_samples_s"]]
    by = {c.key.split("/")[3]: c for c in result.comparison.cases}
    assert by["concat"].ratio > 3 and max(by["separate"].ratio, by["hoisted"].ratio) < 3  # see PLANTED
    assert result.comparison.method.startswith("ratio = geometric mean over rounds")
    # both documents are ordinary runs: compare reads them, and judges the pair paired again, as ab did
    assert main(["compare", str(result.base_path), str(result.new_path), "--format", "json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["method"] == result.comparison.method
    assert {c["key"]: c["verdict"] for c in again["cases"]} == {c.key: c.verdict for c in result.comparison.cases}
    # the same documents in the other order are not an ab pair (BASE must be the base side): unpaired
    assert main(["compare", str(result.new_path), str(result.base_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["method"].startswith("ratio = median(NEW) / median(BASE)")


def _stub_options(tmp_path: Path, name: str, noise: float, new_env: dict[str, str], **kw: Any) -> ABOptions:
    """Both sides stub workers (tests/stub_side.py): drawn samples at `noise`, NEW slowed as `new_env` says."""
    python = stub_interpreter(tmp_path / f"stub-python-{name}")
    env = {NOISE_ENV: str(noise)}
    return ABOptions(
        base=python, new=python, results_dir=tmp_path / name, threads=1, progress=False,
        base_env={**env, SEED_ENV: "1"}, new_env={**env, SEED_ENV: "2", **new_env}, **kw,
    )  # fmt: skip


@pytest.mark.slow  # an A/B run of stub sides: worker processes
def test_ab_on_controlled_samples_calls_a_planted_slowdown_and_nothing_else(tmp_path: Path) -> None:
    # stub sides: every sample is 100 µs x the planted factor x 0.2% log-normal noise, whatever the machine
    # does, so a round's paired ratio is known to about 0.1% and the verdicts below cannot flake
    cases = [Case("numpy", "cpu", "rnn", f, batch=4, input_size=16, hidden=16, seq_len=4)
             for f in ("separate", "concat", "hoisted")]  # fmt: skip
    opts = _stub_options(
        tmp_path, "planted", 0.002, {"RNNBENCH_SELFTEST_SLOWDOWN": "concat:1.2"},
        timing=TimingConfig(budget_s=0.1, min_samples=5), rounds=3,
    )  # fmt: skip
    result = run_ab(cases, 1, opts)
    by = {c.key.split("/")[3]: c for c in result.comparison.cases}
    assert {k: c.verdict for k, c in by.items()} == {"separate": "same", "concat": "slower", "hoisted": "same"}
    assert by["concat"].ratio == pytest.approx(1.2, rel=0.01)
    assert by["separate"].ratio == pytest.approx(1.0, abs=0.01) and by["hoisted"].ratio == pytest.approx(1.0, abs=0.01)
    assert all(c.ci_low <= c.ratio <= c.ci_high for c in by.values())
    # decided in the first rounds: no case took an extra one
    assert all(r.to_json()["rounds"] == 3 for r in (*result.base_doc.records, *result.new_doc.records))


@pytest.mark.slow  # two A/B runs of stub sides: four worker processes each
def test_extra_rounds_go_to_the_undecided_cases_only(tmp_path: Path) -> None:
    from rnnbench.judge.rules import CONFIDENCE, compare_rounds, stall_flagged

    cases = [Case("numpy", "cpu", "rnn", f, batch=4, input_size=16, hidden=16, seq_len=4)
             for f in ("separate", "concat")]  # fmt: skip

    def ab(threshold: float, extra: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        # stub sides (1% noise, concat planted 2x slower on NEW): the verdicts follow from the samples the
        # stub draws, not from the machine (on real samples a busy moment once made the +-50% case undecided)
        opts = _stub_options(
            tmp_path, str(threshold), 0.01, {"RNNBENCH_SELFTEST_SLOWDOWN": "concat:2"},
            timing=TimingConfig(budget_s=0.03, min_samples=5), rounds=2, extra_rounds=extra, threshold=threshold,
        )  # fmt: skip
        result = run_ab(cases, 1, opts)
        assert result.base_doc.extra["ab"]["extra_rounds"] == extra
        base, new = ([r.to_json() for r in d.records] for d in (result.base_doc, result.new_doc))
        return list(zip(base, new, strict=True))

    # a band of +-50%: both cases are decided (`same`, `slower`) after the 2 rounds, so none takes more
    assert all(rb["rounds"] == rn["rounds"] == 2 for rb, rn in ab(0.5, 3))
    # a band of +-0.01%: no A/A interval fits inside it, so separate goes on until an interval clears it
    # or the extra rounds run out, each round it took taken while it was still `too noisy`; concat, 2x
    # slower, is decided `slower` after its 2 rounds and takes none
    for rb, rn in ab(1e-4, 3):
        k = int(rb["rounds"])
        assert rn["rounds"] == k and 2 <= k <= 5
        assert not stall_flagged(rb) and not stall_flagged(rn)  # drawn samples have no stalls
        verdicts = [
            compare_rounds(rb["round_samples_s"][:j], rn["round_samples_s"][:j], 1e-4, CONFIDENCE, paired=True).verdict
            for j in range(2, k + 1)
        ]
        if "/concat/" in rb["key"]:
            assert (k, verdicts) == (2, ["slower"])
        else:
            assert all(v == "too noisy" for v in verdicts[:-1]), verdicts
            assert k == 5 or verdicts[-1] != "too noisy", verdicts


@pytest.mark.slow
def test_cli_ab_prints_a_verdict_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_before = dict(os.environ)
    assert main(["ab", "--base", sys.executable, "--new", sys.executable, *TINY, "--formulation", "concat",
                 "--budget", "0.05", "--rounds", "2", "--extra-rounds", "0", "--threads", "1",
                 "--results", str(tmp_path), "--no-progress", "--format", "markdown"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "common-mode shift" in out and "| verdict |" in out and "paired hierarchical bootstrap" in out
    assert len(list((tmp_path / "runs").glob("*/*.json"))) == 2
    assert dict(os.environ) == env_before


@pytest.mark.slow
def test_a_revision_side_runs_its_own_checkout_and_leaves_no_worktree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "HEAD")
    if not head:
        pytest.skip("not a git checkout")
    # this run's checkout goes below its own temporary folder, so the worktree list is read for this run's
    # worktrees only: other runs on this checkout (another test worker, another `ab`) add and remove their own
    mine = tmp_path / "tmp"
    mine.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(mine))
    cases = [Case("numpy", "cpu", "rnn", "concat", batch=4, input_size=16, hidden=16, seq_len=4)]
    opts = ABOptions(
        base="HEAD", new=sys.executable, results_dir=tmp_path, threads=1,
        timing=TimingConfig(budget_s=0.1, min_samples=5), rounds=3, extra_rounds=0, progress=False,
    )  # fmt: skip
    result = run_ab(cases, 1, opts)
    assert result.base_doc.extra["ab"]["revision"] == head
    assert result.base_doc.machine["git_commit"] == head  # the fingerprint came from the checkout itself
    assert result.base_doc.records[0].status == "ok"
    assert [p.name for p in mine.iterdir()] == [], "the checkout's folder was left behind"
    assert str(mine) not in git("worktree", "list", "--porcelain"), "the checkout is still a worktree"


# the last commit whose worker cannot hold a case open (no `worker.open_case`): `ab` must still run it
ROUND_ONLY_REVISION = "5b72ad55"


@pytest.mark.slow
def test_a_side_without_stepping_falls_back_to_round_by_round(tmp_path: Path) -> None:
    found = subprocess.run(["git", "cat-file", "-e", f"{ROUND_ONLY_REVISION}^{{commit}}"], capture_output=True,
                           check=False)  # fmt: skip
    if found.returncode != 0:
        pytest.skip("not a git checkout with this project's history")
    cases = [Case("numpy", "cpu", "rnn", "concat", batch=4, input_size=16, hidden=16, seq_len=4)]
    opts = ABOptions(
        base=ROUND_ONLY_REVISION, new=sys.executable, results_dir=tmp_path, threads=1,
        timing=TimingConfig(budget_s=0.1, min_samples=5), rounds=2, extra_rounds=0, progress=False,
    )  # fmt: skip
    result = run_ab(cases, 1, opts)
    assert result.base_doc.extra["ab"]["interleave"] == result.new_doc.extra["ab"]["interleave"] == "round"
    assert [r.status for r in (*result.base_doc.records, *result.new_doc.records)] == ["ok", "ok"]
    assert len(result.comparison.cases) == 1


def test_judge_refuses_a_busy_case_not_a_preempted_one() -> None:
    import numpy as np

    from rnnbench.measure.timing import stall_count

    rng = np.random.default_rng(3)

    def record(key: str, scale: float, tail: list[float]) -> dict[str, object]:
        rounds = [[*(scale * 1e-3 * rng.lognormal(0.0, 0.01, 200 - len(tail))), *tail] for _ in range(3)]
        flat = [v for r in rounds for v in r]
        return {"key": key, "status": "ok", "median_s": float(np.median(flat)), "samples_s": flat,
                "round_samples_s": rounds, "stalls": stall_count(flat)}  # fmt: skip

    base = [record("preempted", 1.0, [4e-3]), record("busy", 1.0, [0.5])]
    new = [record("preempted", 1.0, []), record("busy", 1.0, [])]
    by = {c.key: c for c in judge_records(base, new, 0.05).cases}
    # 3 stalls in 600 samples are a quiet machine's background: the case keeps its verdict
    assert base[0]["stalls"] == 3 and by["preempted"].verdict == "same"
    # a 500x stall is another process: no verdict
    assert by["busy"].verdict == "too noisy" and "busy machine" in by["busy"].note


def test_a_paired_case_drops_its_busy_rounds_on_both_sides_and_keeps_its_verdict() -> None:
    import numpy as np

    from rnnbench.judge.cases import paired_rounds
    from rnnbench.sweep.ab import _undecided

    rng = np.random.default_rng(5)

    def record(scale: float, stalled: set[int], n_rounds: int = 5) -> dict[str, object]:
        # drawn samples (1% spread around a planted level), a 500x stall planted in the rounds named
        rounds = [[*(scale * 1e-3 * rng.lognormal(0.0, 0.01, 30))] for _ in range(n_rounds)]
        for i in stalled:
            rounds[i][7] = 0.5
        flat = [v for r in rounds for v in r]
        return {"key": "k", "status": "ok", "median_s": float(np.median(flat)), "samples_s": flat,
                "round_samples_s": rounds, "stalls": len(stalled)}  # fmt: skip

    # a stall in round 1 of BASE and round 3 of NEW: both rounds go on both sides, three quiet pairs judge
    base, new = record(1.0, {1}), record(1.3, {3})
    rounds = paired_rounds(base, new)
    assert rounds.dropped == 2 and not rounds.busy and len(rounds.base) == len(rounds.new) == 3
    assert rounds.base[0] == base["round_samples_s"][0] and rounds.new[1] == new["round_samples_s"][2]  # type: ignore[index]
    (case,) = judge_records([base], [new], 0.05).cases
    assert case.verdict == "slower" and case.note == "2 busy rounds dropped" and case.ci_low > 1.2
    assert not _undecided({"base": [base], "new": [new]}, 0, 0.05)  # decided: no extra round for it
    # four of five rounds busy: one quiet pair is too few to judge, so no verdict, and extra rounds may help
    base, new = record(1.0, {0, 1}), record(1.3, {2, 3})
    (case,) = judge_records([base], [new], 0.05).cases
    assert paired_rounds(base, new).busy and case.verdict == "too noisy" and "busy machine" in case.note
    assert _undecided({"base": [base], "new": [new]}, 0, 0.05)


def test_workers_idle_blas_threads_sleep_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from rnnbench.sweep.ab import Side, _checkout

    side = Side("python", sys.executable)
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    with _checkout(side) as env:
        assert env["OPENBLAS_THREAD_TIMEOUT"] == "4"
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "28")  # the user's setting wins
    with _checkout(side) as env:
        assert env["OPENBLAS_THREAD_TIMEOUT"] == "28"
