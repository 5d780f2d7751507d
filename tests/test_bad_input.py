"""Every command refuses bad input the same way: exit 2, exactly one line on stderr, no traceback, nothing written.

The table runs in-process through `rnnbench.cli.main` (a traceback there is an
exception escaping `main`, which fails the test). Paths in the table are
templates filled from a scratch workspace: a valid result folder, a run that
shares no case with it, an empty folder, a garbage file, a plain file, a
folder with someone else's files, and a read-only mount (a small read-only
tmpfs where this machine lets us mount one; otherwise a folder without write
permission, which holds for anyone but root). Before and after each line the
workspace, the working directory and the repository's `results/` are
listed, and must not change.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rnnbench.cli import main
from tests import synthetic_runs

REPO = Path(__file__).resolve().parents[1]
HUGE = "1000000000"  # a hidden size whose weights alone would need exabytes

# one command line a case, split as a shell would ('' is an empty argument); {name} is filled from the workspace
_BAD_LINES: list[str] = [
    # the command itself
    "",
    "nonsense",
    "--bogus",
    # verify
    "verify --framework caffe",
    "verify --cell transformer",
    "verify --formulation fused",
    "verify --hidden -4",
    "verify --batch two",
    "verify --preset huge",
    f"verify --framework numpy --hidden {HUGE}",
    "verify --framework numpy --batch 100000000 --hidden 100000 --seq-len 1000",
    "verify --framework numpy --device cuda",
    "verify --batch 0",
    "verify --seq-len 0",
    "verify --layers 0",
    "verify --input-size 1.5",
    "verify --mode fast",
    "verify --pass backward",
    "verify --dtype float64",
    "verify --framework ''",
    "verify --hidden ,",
    "verify --unknown-flag",
    # run
    "run --framework numpy --results ''",
    "run --framework numpy --results ' '",
    "run --framework numpy --resume --results ''",
    "run --framework numpy --results {tmp}/r --timeout nan",
    "run --framework numpy --results {tmp}/r --timeout inf",
    "run --framework numpy --results {tmp}/r --timeout 0",
    "run --framework numpy --results {tmp}/r --timeout -1",
    "run --framework numpy --results {tmp}/r --budget nan",
    "run --framework numpy --results {tmp}/r --budget 0",
    "run --framework numpy --results {tmp}/r --budget -1",
    "run --framework numpy --results {tmp}/r --budget inf",
    "run --framework numpy --results {tmp}/r --budget 1e9",
    "run --framework numpy --results {tmp}/r --threads 100000",
    "run --framework numpy --results {tmp}/r --threads 0",
    "run --framework numpy --results {tmp}/r --threads -1",
    "run --framework numpy --results {tmp}/r --threads x",
    "run --framework numpy --results {tmp}/r --rounds 0",
    "run --framework numpy --results {tmp}/r --rounds 1000",
    "run --framework numpy --results {tmp}/r --rounds 1.5",
    "run --framework numpy --results {tmp}/r --shard 3/2",
    "run --framework numpy --results {tmp}/r --shard 0/2",
    "run --framework numpy --results {tmp}/r --shard x",
    "run --framework numpy --results {tmp}/r --shard 1/0",
    "run --framework numpy --results /proc/rnnbench-no-such-folder",
    "run --framework numpy --results {file}",
    "run --framework numpy --results {file}/sub",
    "run --framework numpy --results {ro}",
    "run --framework numpy --results {ro}/new",
    f"run --framework numpy --results {{tmp}}/r --hidden {HUGE}",
    "run --framework numpy --results {tmp}/r --preset nope",
    "run --framework numpy --results {tmp}/r --batch 0",
    "run --framework numpy --results {tmp}/r --device cuda",
    "run --framework caffe --results {tmp}/r",
    "run --framework numpy --results {tmp}/r --cell gru --formulation fused",
    # env, list
    "env --threads -5",
    "env --threads 0",
    "env --threads 100000",
    "env --threads abc",
    "env --json extra",
    "list extra",
    "list --devices=yes",
    # harness
    "harness --threads 0",
    "harness --threads 100000",
    "harness --results ''",
    "harness --results {file}",
    "harness --results {ro}",
    # export
    "export {valid}",
    "export {valid} --out {tmp}/x.txt",
    "export {valid} --out ''",
    "export {empty} --out {tmp}/x.csv",
    "export {garbage} --out {tmp}/x.csv",
    "export {valid} --out {file}/x.csv",
    "export {valid} --out /proc/rnnbench-x.csv",
    "export {valid} --out {ro}/x.csv",
    "export {valid} --out {folder_csv}",
    "export {tmp}/no-such-folder --out {tmp}/x.csv",
    "export '' --out {tmp}/x.csv",
    # report
    "report {valid}",
    "report {valid} --out {file}",
    "report {valid} --out {notours}",
    "report {valid} --out /proc/rnnbench-report",
    "report {valid} --out {ro}",
    "report {valid} --out ''",
    "report {valid} --out {tmp}/rep --threshold 0",
    "report {valid} --out {tmp}/rep --threshold 1",
    "report {valid} --out {tmp}/rep --threshold nan",
    "report {valid} --out {tmp}/rep --threshold -5%",
    "report {valid} --out {tmp}/rep --max-charts -1",
    "report {valid} --out {tmp}/rep --max-charts 0",
    "report {valid} --out {tmp}/rep --max-charts 1e9",
    "report {empty} --out {tmp}/rep",
    "report {garbage} --out {tmp}/rep",
    "report {tmp}/no-such-folder --out {tmp}/rep",
    # compare
    "compare",
    "compare {valid}",
    "compare {tmp}/nope1 {tmp}/nope2",
    "compare {valid} {garbage}",
    "compare {valid} {empty}",
    "compare {valid} {other} --fail-on-regression",
    "compare {valid} {other}",
    "compare {valid} {valid} --threshold 0",
    "compare {valid} {valid} --threshold 2",
    "compare {valid} {valid} --threshold inf",
    "compare {valid} {valid} --format xml",
    "compare abc123 def456 --results {tmp}/no-such-store",
    "compare '' {valid}",
    "compare {valid} {valid} --results ''",
    # regressions
    "regressions {valid} --threshold 0",
    "regressions {valid} --threshold nan",
    "regressions {valid} --format xml",
    "regressions {tmp}/no-such-folder",
    "regressions {empty}",
    "regressions {garbage}",
    # doctor
    "doctor --sample-time -1",
    "doctor --sample-time 0",
    "doctor --sample-time nan",
    "doctor --sample-time 1e9",
    "doctor --threads 0",
    "doctor --slowdown=-50%",
    "doctor --slowdown 100%",
    "doctor --rounds 0",
    "doctor --samples 2",
    "doctor --save {file}",
    "doctor --save /proc/rnnbench-doctor",
    "doctor --save {ro}",
    "doctor --save ''",
    # ab
    "ab",
    "ab --base '' --new x",
    "ab --base x --new y --rounds 1",
    "ab --base x --new y --budget nan",
    "ab --base x --new y --timeout inf",
    "ab --base x --new y --results {file}",
    "ab --base x --new y --results {ro}",
    "ab --base x --new y --threads 0",
    f"ab --base x --new y --framework numpy --hidden {HUGE} --results {{tmp}}/ab",
    # merge
    "merge",
    "merge {valid}",
    "merge {tmp}/no-such-shard --out {tmp}/m",
    "merge {valid} --out ''",
    "merge {valid} --out {file}",
    "merge {valid} --out {ro}",
    "merge {empty} --out {tmp}/m",
    "merge {garbage} --out {tmp}/m",
    # landing
    "landing {valid}",
    "landing {tmp}/no-such-history --out {tmp}/site",
    "landing {valid} --out {file}",
    "landing {valid} --out {ro}",
    "landing {valid} --out ''",
    "landing {valid} --out {tmp}/site",  # no verdicts.json in the site
    "landing {valid} --out {tmp}/site --verdicts {garbage}",
    "landing {valid} --out {tmp}/site --verdicts {tmp}/no-such-verdicts.json",
    "landing {valid} --out {tmp}/site --run {tmp}/no-such-run.json",
    # verdicts
    "verdicts {valid}",
    "verdicts {valid} --out {tmp}/verdicts.txt",
    "verdicts {valid} --out {tmp}/v.json --baseline 1",
    "verdicts {valid} --out {tmp}/v.json --threshold 0",
    "verdicts {empty} --out {tmp}/v.json",
    "verdicts {valid} --out {tmp}/v.json --paired {garbage} {garbage}",
    "verdicts {valid} --out {tmp}/v.json --machine no-such-machine",
    "verdicts-render {garbage}",
    "verdicts-render {valid}",
    "verdicts-render {tmp}/no-such-verdicts.json --format atom",
    "verdicts-render {garbage} --format xml",
    "landing {empty} --out {tmp}/site",
    "landing {valid} --out {tmp}/site --report ''",
]
BAD: list[list[str]] = [shlex.split(line) for line in _BAD_LINES]


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    seen = {}
    for root in roots:
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            if ".git" in dirnames:
                dirnames.remove(".git")
            for name in dirnames + filenames:
                p = Path(dirpath, name)
                try:
                    st = p.lstat()
                except OSError:
                    continue
                seen[str(p)] = (st.st_size, st.st_mtime_ns)
    return seen


def _read_only_folder(tmp: Path) -> tuple[Path, str]:
    """A folder nothing can be written into, and how it was made."""
    ro = tmp / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(ro)], capture_output=True)
        if done.returncode == 0:
            return ro, "mount"
    ro.chmod(0o555)
    if not os.access(ro, os.W_OK):
        return ro, "chmod"
    return ro, ""  # root without mount: the read-only lines are left out (see the test)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("bad-input")
    valid, other, empty, notours = tmp / "valid", tmp / "other", tmp / "empty", tmp / "notours"
    for d in (valid, other, empty, notours):
        d.mkdir()
    synthetic_runs.write(synthetic_runs.document(synthetic_runs.cases(("numpy",), ("rnn",), (1,), (64,), (16,))), valid)
    synthetic_runs.write(
        synthetic_runs.document(synthetic_runs.cases(("numpy",), ("gru",), (1,), (64,), (16,)), seed=1), other
    )
    (tmp / "garbage.json").write_text("{not json")
    (tmp / "afile").write_text("a plain file\n")
    (notours / "keep.txt").write_text("someone else's file\n")
    (notours / "img").mkdir()
    (notours / "img" / "chart.png").write_bytes(b"\x89PNG")
    (tmp / "folder.csv").mkdir()
    ro, how = _read_only_folder(tmp)
    fill = {
        "tmp": str(tmp),
        "valid": str(valid),
        "other": str(other),
        "empty": str(empty),
        "notours": str(notours),
        "garbage": str(tmp / "garbage.json"),
        "file": str(tmp / "afile"),
        "folder_csv": str(tmp / "folder.csv"),
        "ro": str(ro),
    }
    yield tmp, fill, how
    if how == "mount":
        subprocess.run(["umount", str(ro)], check=False)
    ro.chmod(0o755)


def test_the_table_is_large_enough():
    assert len(BAD) >= 80
    commands = {argv[0] for argv in BAD if argv and not argv[0].startswith("-")}
    assert commands >= {"verify", "run", "env", "list", "harness", "export", "report", "compare", "regressions"}
    assert {"doctor", "merge", "landing", "ab"} <= commands


@pytest.mark.parametrize("template", BAD, ids=[" ".join(a) or "(none)" for a in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(template, workspace, capsys, monkeypatch, tmp_path):
    tmp, fill, how = workspace
    if any("{ro}" in a for a in template) and not how:
        pytest.fail("no read-only folder could be made here (root, and mount not permitted)")
    if "cuda" in template:
        from tests.hardware import HAS_CUDA

        if HAS_CUDA:
            pytest.skip("this machine has a GPU")
    argv = [a.format(**fill) for a in template]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    watched = (tmp, cwd, REPO / "results")
    before = _snapshot(*watched)
    code = main(argv)
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (argv, code, err)
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("rnnbench: error:"), err
    assert _snapshot(*watched) == before, "something was written"


def test_a_bad_line_through_the_real_entry_point():
    """The same contract through `python -m rnnbench`, where an escaping exception would print a traceback."""
    p = subprocess.run(
        [sys.executable, "-m", "rnnbench", "run", "--framework", "numpy", "--timeout", "nan", "--results", ""],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_report_refuses_a_folder_it_did_not_write_and_reuses_its_own(workspace, tmp_path, capsys):
    _, fill, _ = workspace
    out = tmp_path / "rep"
    assert main(["report", fill["valid"], "--out", str(out), "-q"]) == 0
    assert (out / ".rnnbench-report").is_file() and (out / "index.html").is_file()
    assert main(["report", fill["valid"], "--out", str(out), "-q"]) == 0  # its own earlier folder
    kept = Path(fill["notours"]) / "img" / "chart.png"
    assert main(["report", fill["valid"], "--out", fill["notours"], "-q"]) == 2
    assert kept.exists()
    assert "not empty" in capsys.readouterr().err


def test_compare_with_no_shared_case_is_an_error_not_a_pass(workspace, capsys):
    _, fill, _ = workspace
    assert main(["compare", fill["valid"], fill["other"], "--fail-on-regression"]) == 2
    assert "nothing to compare" in capsys.readouterr().err
    assert main(["compare", fill["valid"], fill["valid"], "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)
