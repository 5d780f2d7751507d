"""The night's verdicts document and everything rendered from it: verdicts.json, the landing page,
regressions.txt, the job summary and the Atom feed.

Every night here is a synthetic document (tests/synthetic_runs.py) with known samples, so each verdict has a
known right answer: a planted effect is 3x (a paired interval on 3 rounds of 15 samples at 3% noise cannot
straddle it), an unchanged night differs from its history only by sampling noise, and a noisy history moves
whole nights by 10-20% so its band is wider than any threshold a test asks for. No test reads a real timing.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from rnnbench.analysis.frame import load
from rnnbench.analysis.verdicts import NO_LOCK, NOTHING_CHANGED, PAIRED, build_verdicts, read_verdicts
from rnnbench.cli.main import main
from rnnbench.errors import UsageError
from rnnbench.judge.published import Published, judge_history
from rnnbench.report.landing import last_night, render
from rnnbench.report.verdicts import render_atom, render_markdown, render_text
from tests import synthetic_runs as S

FIRST = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
A, B = "aa" * 20, "bb" * 20
CASES = S.cases(frameworks=("torch",), cells=("rnn", "gru"), batches=(1, 16), hiddens=(64,), seq_lens=(16,))


def _rounds(doc: dict[str, Any], k: int = 3) -> dict[str, Any]:
    """`doc` with each record's samples split into `k` rounds, as the runner records them."""
    for r in doc["records"]:
        if r["status"] == "ok":
            s = r["samples_s"]
            n = len(s) // k
            r["round_samples_s"] = [s[i * n : (i + 1) * n] for i in range(k - 1)] + [s[(k - 1) * n :]]
    return doc


def _night(i: int, commit: str = A, scale: Any = lambda c: 1.0, noise: float = 0.03, lock: str | None = "1" * 16,
           seed: int | None = None, **machine: Any) -> dict[str, Any]:  # fmt: skip
    doc = S.document(CASES, commit=commit, created=FIRST + timedelta(days=i), seed=i if seed is None else seed,
                     scale=scale, noise=noise)  # fmt: skip
    if lock:
        doc["machine"]["lock_digest"] = lock
        doc["machine"]["packages"] = {"numpy": "2.4.6", "torch": "2.13.0+cpu"}
    doc["machine"].update(machine)
    return _rounds(doc)


def _history(root: Path, nights: int, **kw: Any) -> list[Path]:
    return [S.write(_night(i, **kw), root) for i in range(nights)]


def _concat(c: Any) -> float:
    return 3.0 if c.formulation == "concat" else 1.0


def _paired(tmp: Path) -> tuple[Path, Path, Path]:
    """Five unchanged nights on commit A, then a paired night: BASE (A re-measured) and NEW (commit B, concat 3x)."""
    history = tmp / "history"
    _history(history, 5)
    new = S.write(_night(5, commit=B, scale=_concat, lock="2" * 16), history)
    base_doc = _night(5, seed=99)
    base = tmp / "paired" / "base.json"
    base.parent.mkdir(parents=True)
    base.write_text(json.dumps(base_doc))
    return history, base, new


def test_a_paired_night_publishes_every_concat_case_as_a_regression_naming_both_commits(tmp_path: Path) -> None:
    history, base, new = _paired(tmp_path)
    out = tmp_path / "site" / "verdicts.json"
    assert main(["verdicts", str(history), "--out", str(out), "--paired", str(base), str(new)]) == 0
    doc = read_verdicts(out)
    concat = {c.key for c in CASES if c.formulation == "concat"}
    regressions = {c["key"]: c for c in doc["cases"] if c["verdict"] == "regression"}
    assert set(regressions) == concat
    for c in regressions.values():
        assert c["method"] == "paired" and 1 < c["ci_low"] <= c["ratio"] <= c["ci_high"]
        assert 2.5 < c["ratio"] < 3.5
        assert c["base"]["commit"] == A and c["new"]["commit"] == B
        assert c["base"]["lock_digest"] == "1" * 16 and c["new"]["lock_digest"] == "2" * 16
        assert c["history"]["verdict"] in {str(p) for p in Published}  # the drift verdict is kept alongside
    assert all(c["method"] == "paired" for c in doc["cases"]) and len(doc["cases"]) == len(CASES)
    assert doc["pairing"]["paired"] and f"commit {A[:12]} -> {B[:12]}" in doc["pairing"]["changes"]
    assert doc["pairing"]["reason"] == PAIRED
    assert doc["counts"]["regression"] == len(concat)
    assert doc["bisect"]["cases"] == sorted(concat)
    command = doc["bisect"]["command"]
    assert command.startswith(f"rnnbench bisect {A[:12]} {B[:12]} --preset quick") and "--formulation concat" in command
    assert all(k in command for k in concat)


def test_unchanged_nights_publish_nothing_and_say_only_drift_is_judged(tmp_path: Path) -> None:
    _history(tmp_path, 7, noise=0.01)
    doc = build_verdicts(load(tmp_path))
    assert doc["pairing"] == {"paired": False, "reason": NOTHING_CHANGED, "base": None, "changes": []}
    assert not [c for c in doc["cases"] if c["verdict"] in ("regression", "improvement")]
    assert all(c["method"] == "history" for c in doc["cases"]) and len(doc["cases"]) == len(CASES)
    assert doc["night"]["commit"] == A and doc["previous"]["commit"] == A and doc["bisect"] is None


def test_a_noisy_history_is_too_noisy_to_judge_even_where_the_night_lies_outside(tmp_path: Path) -> None:
    # whole nights wander by 10-20% (a shared VM's between-night noise), then one night is 1.6x: outside any
    # band the previous nights give, but their band is far wider than 5%, so nothing is published
    levels = [1.0, 1.2, 0.9, 1.15, 0.85, 1.6]
    for i, level in enumerate(levels):
        S.write(_night(i, scale=lambda c, lv=level: lv), tmp_path)
    doc = build_verdicts(load(tmp_path))
    assert {c["verdict"] for c in doc["cases"]} == {"too noisy to judge from history"}
    assert all(c["mde"] > 0.05 for c in doc["cases"])
    assert "regression" not in doc["counts"]
    # and `regressions --baseline` applies the same rule: nothing to fail on
    assert main(["regressions", str(tmp_path), "--baseline", "5", "--fail-on-regression"]) == 0


def test_the_history_rule_names_its_mde_and_reads_the_direction() -> None:
    quiet = [1.0, 1.001, 0.999, 1.0, 1.0005]
    assert judge_history(quiet, 1.3).verdict == Published.REGRESSION
    assert judge_history(quiet, 1.3, direction="higher").verdict == Published.IMPROVEMENT
    assert judge_history(quiet, 1.01).verdict == Published.WITHIN
    assert judge_history(quiet, 1.3).mde == pytest.approx(0.05)  # the floor: a quiet history resolves 5%
    noisy = judge_history([1.0, 1.1, 0.92, 1.08, 0.95], 3.0)
    assert noisy.verdict == Published.TOO_NOISY_HISTORY and noisy.outside and noisy.mde > 0.05


def test_a_previous_night_without_a_lock_is_paired_by_commit_only(tmp_path: Path) -> None:
    history = tmp_path / "history"
    _history(history, 3, lock=None)
    new = S.write(_night(3, commit=B, lock="2" * 16), history)
    base = tmp_path / "base.json"
    base.write_text(json.dumps(_night(3, lock=None, seed=7)))
    out = tmp_path / "verdicts.json"
    assert main(["verdicts", str(history), "--out", str(out), "--paired", str(base), str(new)]) == 0
    assert read_verdicts(out)["pairing"]["reason"] == NO_LOCK


# -- what is rendered from it -----------------------------------------------------------------------


def test_the_landing_page_text_summary_and_feed_say_what_the_verdicts_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history, base, new = _paired(tmp_path)
    site = tmp_path / "site"
    archive = tmp_path / "archive"
    args = ["verdicts", str(history), "--out", str(site / "verdicts.json"), "--archive", str(archive)]
    assert main([*args, "--paired", str(base), str(new)]) == 0
    doc = read_verdicts(site / "verdicts.json")
    assert main(["landing", str(history), "--out", str(site)]) == 0
    page = (site / "index.html").read_text()
    regressions = page.split('id="regressions"')[1].split("</section>")[0]
    concat = sorted(c.key for c in CASES if c.formulation == "concat")
    assert all(k in regressions for k in concat)
    assert not any(c.key in regressions for c in CASES if c.formulation != "concat")
    first = next(c for c in doc["cases"] if c["key"] == concat[0])
    assert f"[{first['ci_low']:.3f}, {first['ci_high']:.3f}]" in regressions
    assert A[:8] in regressions and B[:8] in regressions and "paired" in regressions
    assert "rnnbench bisect " + A[:12] in page and "Paired night" in page
    assert 'href="verdicts.json"' in page and "<script" not in page
    assert f"<td>{concat[0]}</td>" in page.split('id="mde"')[1]  # the per-case MDE table lists every case

    capsys.readouterr()
    text = render_text(doc)
    assert text.count("paired") >= len(concat) and all(k in text for k in concat)
    md = render_markdown(doc, page="https://example.org/site/")
    assert f"#### Regressions ({len(concat)})" in md and "https://example.org/site/" in md
    assert f"`commit {A[:12]} -> {B[:12]}`" in md
    assert main(["verdicts-render", str(site / "verdicts.json"), "--format", "text"]) == 0
    assert capsys.readouterr().out == text

    # a second, unchanged night: the archive then holds one night with regressions and one without
    S.write(_night(6, commit=B, lock="2" * 16), history)
    assert main([*args]) == 0
    # the archive keeps each night gzip-compressed (the results branch grows by it every night), readable as is
    kept = sorted(archive.rglob("*"))
    assert [p.name.endswith(".json.gz") for p in kept if p.is_file()] == [True, True]
    assert read_verdicts(next(p for p in kept if p.is_file()))["kind"] == "rnnbench-verdicts"
    assert main(["verdicts-render", str(archive), "--format", "atom", "--out", str(site / "feed.xml")]) == 0
    feed = ET.parse(site / "feed.xml").getroot()
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert feed.tag == "{http://www.w3.org/2005/Atom}feed" and feed.find("a:id", ns) is not None
    entries = feed.findall("a:entry", ns)
    assert len(entries) == 1
    assert entries[0].find("a:link", ns).get("href") == "index.html"  # type: ignore[union-attr]
    assert doc["night"]["run_id"] in entries[0].findtext("a:id", "", ns)
    assert all(k in entries[0].findtext("a:content", "", ns) for k in concat)
    assert render_atom([]).startswith("<?xml")


def test_landing_escapes_what_comes_from_results(tmp_path: Path) -> None:
    S.write(_night(0, cpu_model="<script>alert(1)</script>"), tmp_path)
    assert main(["verdicts", str(tmp_path), "--out", str(tmp_path / "site" / "verdicts.json")]) == 0
    assert main(["landing", str(tmp_path), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "This is the first run of this machine class" in page


def test_landing_reads_the_nights_from_a_columnar_history_as_from_their_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    _history(docs, 3)
    # the night: native (the winner in every group) 3x slower, so the winners change, and one case failed
    failed = CASES[0].key
    native = lambda c: 3.0 if c.formulation == "native" else 1.0  # noqa: E731
    doc = S.document(CASES, commit=B, created=FIRST + timedelta(days=3), seed=3, scale=native,
                     failures={failed: "worker died: <boom>"})  # fmt: skip
    doc["machine"] |= {"lock_digest": "1" * 16, "packages": {"numpy": "2.4.6", "torch": "2.13.0+cpu"}}
    S.write(_rounds(doc), docs)
    history = tmp_path / "history"  # the nightly's HISTORY: its columnar history in nights/, no run document
    assert main(["history", "import", str(docs), "--out", str(history / "nights"), "--no-progress"]) == 0
    site = tmp_path / "site"
    assert main(["verdicts", str(history / "nights"), "--out", str(site / "verdicts.json")]) == 0
    verdicts = read_verdicts(site / "verdicts.json")
    from_docs, from_store = last_night(docs, verdicts), last_night(history, verdicts)
    assert from_store.winners == from_docs.winners and from_docs.winners
    assert from_store.failed == from_docs.failed == [(failed, "worker died: <boom>")]
    assert from_store.previous is not None and from_docs.previous is not None
    assert (
        from_store.previous["run_id"]
        == from_docs.previous["run_id"]
        == json.loads(sorted(docs.rglob("*.json"))[2].read_text())["run_id"]
    )
    assert render(from_store, generated="now") == render(from_docs, generated="now")  # the same page
    # the command, with the documents gone: the history folder alone makes the page
    for path in docs.rglob("*.json"):
        path.unlink()
    capsys.readouterr()
    assert main(["landing", str(history / "nights"), "--out", str(site)]) == 0
    page = (site / "index.html").read_text()
    assert f'data-run-id="{doc["run_id"]}"' in page and "worker died: &lt;boom&gt;" in page
    assert "1 failed case" in page and f"{len(from_store.winners)} winner change" in page
    # a run the history does not hold: one line naming the history
    other = verdicts | {"night": {**verdicts["night"], "run_id": "f" * 32}}
    with pytest.raises(UsageError, match="not among the nights in"):
        last_night(history, other)


def test_the_bisect_hint_counts_the_commits_between_base_and_new(tmp_path: Path) -> None:
    import subprocess

    from rnnbench.analysis.verdicts import count_commits
    from rnnbench.report.landing import _bisect

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    shas = []
    for i in range(3):
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", f"c{i}"], check=True)
        shas.append(subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip())
    assert count_commits(shas[0], shas[2], repo) == 2
    assert count_commits(shas[1], shas[2], repo) == 1
    assert count_commits(A, B, repo) is None  # commits the checkout lacks: it cannot say
    hint = {"base": shas[1], "new": shas[2], "cases": ["k"], "command": "rnnbench bisect x y --cases k"}
    assert "is the only commit since BASE" in _bisect(hint | {"commits": 1})
    assert "rnnbench bisect x y" in _bisect(hint | {"commits": 2}) and "2 commits lie" in _bisect(hint | {"commits": 2})
    assert "may lie" in _bisect(hint | {"commits": None})


# -- bad input --------------------------------------------------------------------------------------


def test_bad_verdicts_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    S.write(_night(0), tmp_path / "history")
    not_verdicts = tmp_path / "run.json"
    not_verdicts.write_text(json.dumps({"kind": "rnnbench-run"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for args in (
        ["verdicts-render", str(not_verdicts)],
        ["verdicts-render", str(broken), "--format", "markdown"],
        ["verdicts-render", str(tmp_path / "missing.json")],
        ["landing", str(tmp_path / "history"), "--out", str(tmp_path / "site")],  # no verdicts.json there
        ["landing", str(tmp_path / "history"), "--out", str(tmp_path / "site"), "--verdicts", str(not_verdicts)],
        ["verdicts", str(tmp_path / "history"), "--out", str(tmp_path / "v.json"), "--paired", str(broken),
         str(broken)],
    ):  # fmt: skip
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
    assert not (tmp_path / "site" / "index.html").exists() and not (tmp_path / "v.json").exists()
    with pytest.raises(UsageError, match="not an rnnbench verdicts document"):
        read_verdicts(not_verdicts)
