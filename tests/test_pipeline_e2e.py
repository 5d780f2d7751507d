"""The nightly end to end on CPU, exactly as the workflow and the SLURM array run it, on a tiny grid.

Night 1: scripts/nightly.sh for 3 shards (shard 1 also runs a narrowed asv
suite), then scripts/publish.sh (merge, verdicts.json, report, asv
publish, landing page); headless Chromium opens the landing page from disk
and must show the run. Night 2 plants a 10x slowdown of the `concat`
formulation with the worker's self-test switch (RNNBENCH_SELFTEST_SLOWDOWN)
on the same commit: nothing changed, so the page must say only drift is
judged and publish no regression from a one-night history.

The SLURM test starts a one-node cluster (scripts/slurm/local-cluster.sh)
and submits scripts/slurm/submit.sh: nightly.sbatch as a 3-task array and
publish.sbatch with --dependency=afterok. Where slurmd cannot start, it says
why and runs the array tasks' script bodies with SLURM_ARRAY_TASK_ID set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from rnnbench.analysis import columnar

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRE_BROWSER = bool(os.environ.get("RNNBENCH_REQUIRE_BROWSER"))
REQUIRE_SLURM = bool(os.environ.get("RNNBENCH_REQUIRE_SLURM"))
TINY = "--framework numpy --cell rnn,gru --pass forward --batch 4 --hidden 16 --seq-len 8 --budget 0.1 --rounds 1 --threads 1"

pytestmark = pytest.mark.slow


def nightly_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNBENCH_", "SLURM_", "ASV_"))}
    env.update(
        HOME=str(tmp / "home"),  # asv's machine file goes here, not into the user's home
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        PYTHON=sys.executable,
        RNNBENCH=f"{sys.executable} -m rnnbench",
        TF_CPP_MIN_LOG_LEVEL="3",
        RNNBENCH_NIGHTLY_PRESET="quick",
        RNNBENCH_NIGHTLY_ARGS=TINY,
        RNNBENCH_ASV_DEVICES="cpu",
        RNNBENCH_ASV_FRAMEWORKS="numpy",
        RNNBENCH_NIGHTLY_ASV_ARGS="--quick --bench LSTMCell.time_forward",
        RNNBENCH_REPORT_ARGS="--max-charts 2",
        **extra,
    )
    (tmp / "home").mkdir(parents=True, exist_ok=True)
    return env


def sh(args: list[str | Path], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(list(map(str, args)), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def night(tmp: Path, name: str, env: dict[str, str]) -> Path:
    out = tmp / name
    for k in (1, 2, 3):
        sh([SCRIPTS / "nightly.sh", "--shard", f"{k}/3", "--out", out], env)
    sh([SCRIPTS / "publish.sh", "--history", tmp / "history", "--site", tmp / "site",
        *(out / f"shard-{k}" for k in (1, 2, 3))], env)  # fmt: skip
    return tmp / "site" / "index.html"


def dom(page: Path, tmp: Path) -> str:
    """The landing page as headless Chromium renders it from disk."""
    if not Path(CHROMIUM).exists():
        if REQUIRE_BROWSER:
            pytest.fail("chromium is not installed (make chromium)")
        pytest.skip("chromium not installed (make test installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp / 'chromium-profile'}"]  # fmt: skip
    p = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "<body" in p.stdout, p.stderr[-2000:]
    return p.stdout


def section(html: str, name: str) -> str:
    return html.split(f'id="{name}"', 1)[1].split("</section>", 1)[0]


def test_nightly_end_to_end_then_a_planted_regression(tmp_path: Path) -> None:
    env = nightly_env(tmp_path)
    start = time.perf_counter()
    page = night(tmp_path, "night1", env)
    first_night_s = time.perf_counter() - start
    print(f"first night (3 shards, merge, publish): {first_night_s:.0f} s")
    site = tmp_path / "site"
    for built in ("report/index.html", "asv/index.html", "regressions.txt"):
        assert (site / built).is_file(), built
    html = dom(page, tmp_path)
    assert "rnnbench nightly: nightly" in html
    assert "3 shard documents" in html
    assert "This is the first run of this machine class" in html
    assert 'href="report/index.html"' in html and 'href="asv/index.html"' in html
    for k in (1, 2, 3):
        assert f"{k}/3" in section(html, "machine")
    ((_, merged),) = columnar.newest_documents(tmp_path / "history" / "nights")  # no run document in the history
    run_id = merged["run_id"]
    assert f'data-run-id="{run_id}"' in html

    # night 2 runs the same commit and environment with a planted 10x slowdown of `concat` (the worker's
    # self-test switch): nothing changed, so nothing is paired, and one previous night is too short a history
    # to judge drift from; the page says so and publishes no regression (a paired night with a planted
    # regression is the paired-nights test's)
    env2 = nightly_env(tmp_path, RNNBENCH_SELFTEST_SLOWDOWN="concat:10", RNNBENCH_NIGHTLY_ASV="none")
    html2 = dom(night(tmp_path, "night2", env2), tmp_path)
    assert 'data-run-id="' + run_id not in html2  # the page moved on to the second night
    assert "nothing changed since the previous night: only drift is judged" in section(html2, "pairing")
    assert "None published" in section(html2, "regressions")
    verdicts = json.loads((site / "verdicts.json").read_text())
    assert verdicts["kind"] == "rnnbench-verdicts" and not verdicts["pairing"]["paired"]
    assert "regression" not in verdicts["counts"]


def _slurm_reason(cluster: Path, env: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """(None, env with SLURM_CONF) when a local cluster is up, else (why not, env)."""
    if not shutil.which("slurmctld") or not shutil.which("munged"):
        return "slurm-wlm or munge is not installed (make slurm)", env
    p = subprocess.run(
        [str(SCRIPTS / "slurm" / "local-cluster.sh"), "start", str(cluster)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    if p.returncode != 0:
        return f"the local cluster did not start: {p.stderr.strip()[-500:]}", env
    return None, env | {"SLURM_CONF": p.stdout.strip()}


def _job_state(job: str, env: dict[str, str]) -> list[str]:
    p = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, env=env)
    return [w.split("=", 1)[1] for w in p.stdout.split() if w.startswith("JobState=")]


def test_slurm_array_and_dependent_publish(tmp_path: Path) -> None:
    repo_env = nightly_env(
        tmp_path,
        RNNBENCH_NIGHTLY_ASV="none",
        RNNBENCH_NIGHTLY_OUT=str(tmp_path / "out"),
        RNNBENCH_HISTORY=str(tmp_path / "history"),
        RNNBENCH_SITE=str(tmp_path / "site"),
        RNNBENCH_REPO=str(ROOT),
        RNNBENCH_SBATCH_ARGS=f"--cpus-per-task=1 --time=00:20:00 --chdir={tmp_path}",
    )
    cluster = tmp_path / "cluster"
    why, env = _slurm_reason(cluster, repo_env)
    try:
        if why is None:
            print("SLURM: real single-node cluster (slurmctld + slurmd + munged)")
            p = sh([SCRIPTS / "slurm" / "submit.sh", "3"], env)
            array, publish = p.stdout.split()
            deadline = time.monotonic() + 420
            while time.monotonic() < deadline:
                states = _job_state(array, env) + _job_state(publish, env)
                if states and all(s in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") for s in states):
                    break
                time.sleep(2)
            logs = "\n".join(f.read_text()[-1500:] for f in tmp_path.glob("rnnbench-*.out"))
            assert _job_state(array, env) == ["COMPLETED"] * 3, logs
            assert _job_state(publish, env) == ["COMPLETED"], logs
            out = tmp_path / "out" / array
        else:
            if REQUIRE_SLURM and "not installed" in why:
                pytest.fail(why)
            warnings.warn(f"SLURM fallback: {why}; running the array tasks' script bodies", stacklevel=1)
            print(f"SLURM fallback: {why}")
            env = repo_env | {"SLURM_SUBMIT_DIR": str(ROOT), "SLURM_ARRAY_JOB_ID": "42", "RNNBENCH_SHARDS": "3"}
            for task in (0, 1, 2):
                sh(["bash", SCRIPTS / "slurm" / "nightly.sbatch"], env | {"SLURM_ARRAY_TASK_ID": str(task)})
            sh(["bash", SCRIPTS / "slurm" / "publish.sbatch"], env | {"RNNBENCH_NIGHTLY_JOB": "42"})
            out = tmp_path / "out" / "42"
    finally:
        subprocess.run([str(SCRIPTS / "slurm" / "local-cluster.sh"), "stop", str(cluster)], timeout=60)
    assert sorted(p.name for p in out.iterdir()) == ["shard-1", "shard-2", "shard-3"]
    merged = list(columnar.newest_documents(tmp_path / "history" / "nights"))
    assert len(merged) == 1 and not (tmp_path / "history" / "runs").exists()
    assert "3 shard documents" in (tmp_path / "site" / "index.html").read_text()
