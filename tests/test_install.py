"""The extras are what the commands need: `pip install '.[torch]'` alone, in a fresh virtualenv, runs a torch
sweep through its summary.

`make` installs everything (`.[test]`), so the rest of the suite cannot see a
module that a command imports but its extra does not install: the run's
summary once needed scipy (the `report` extra) after the sweep had measured.
Here pip installs a copy of the package (pyproject, README and `rnnbench/`, so
no build files land in the checkout) from the same indexes and wheel cache as
`make`, and the run's own `rnnbench` script is the one that runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a fresh virtualenv with torch in it: a minute or more
def test_the_torch_extra_alone_runs_a_torch_sweep_to_its_summary(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "rnnbench", source / "rnnbench", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    # --without-pip, and this suite's pip installs into the venv (`pip --python`): seeding the venv with a pip of
    # its own is half of this test's time otherwise, and pip is no part of what the `torch` extra must bring
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    # nothing of this suite's environment may leak in: the fresh interpreter must find only what pip gave it
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    # --no-compile: byte-compiling every module of torch up front is install time this test does not need
    # (the run compiles the modules it imports)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-compile",
         f"{source}[torch]"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-4000:]
    results = tmp_path / "results"
    run = subprocess.run(
        [str(venv / "bin" / "rnnbench"), "run", "--framework", "torch", "--cell", "rnn", "--batch", "2",
         "--hidden", "8", "--seq-len", "3", "--pass", "forward", "--budget", "0.05", "--threads", "1",
         "--no-progress", "--results", str(results)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "Traceback" not in run.stderr, run.stderr[-4000:]
    (path,) = results.glob("runs/*/*.json")
    records = json.loads(path.read_text())["records"]
    ok = [r for r in records if r["status"] == "ok"]
    # the venv holds only what the extra brought: nothing of this suite's (the report extra's scipy, pytest)
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "list", "--format", "json"],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    installed = {d["name"].lower() for d in json.loads(listed.stdout)}
    assert {"rnnbench", "torch", "numpy"} <= installed and not installed & {"scipy", "pandas", "pytest"}, installed
    assert ok and {r["framework"] for r in ok} == {"torch"}
    # the summary printed to its last line: the table, then the counts and where the results went
    assert f"{len(ok)} measured, 0 failed, 0 inaccurate" in run.stdout and str(path) in run.stdout, run.stdout
