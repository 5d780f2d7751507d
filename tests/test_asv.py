"""The asv suite and its configuration as people use them: `asv check`, a quick run, a real run over two commits.

asv runs in subprocesses with HOME pointing into tmp_path (its machine file
lives in ~/.asv-machine.json, which these tests must not touch) and with
results, html and environments in tmp_path. ASV_PYTHONPATH puts this
checkout's `rnnbench` first for the `--python=same` runs (asv removes plain
PYTHONPATH entries from its benchmark processes).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rnnbench import asvsuite, backends
from rnnbench.errors import UsageError
from rnnbench.measure.verify import Check

ROOT = Path(__file__).resolve().parents[1]
MACHINE = "pytest-asv"


def asv_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(tmp_path / "home"),
        ASV_PYTHONPATH=str(ROOT),
        TF_CPP_MIN_LOG_LEVEL="3",
        # the committed grid is meant for real runs; tests narrow it
        **extra,
    )
    for var in (asvsuite.ENV_FULL, asvsuite.ENV_DEVICES):
        env.pop(var, None)
    return env


def asv(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [sys.executable, "-m", "asv", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    return p


def add_machine(cwd: Path, env: dict[str, str]) -> None:
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    p = asv(["machine", "--yes", "--machine", MACHINE], cwd, env)
    assert p.returncode == 0, p.stdout + p.stderr


def write_conf(path: Path, **changes: Any) -> Path:
    conf = json.loads((ROOT / "asv.conf.json").read_text())
    conf.update(changes)
    path.write_text(json.dumps(conf, indent=4))
    return path


def result_files(results: Path) -> list[Path]:
    return [p for p in (results / MACHINE).glob("*.json") if p.name != "machine.json"]


def numbers(result_file: Path) -> dict[str, list[float]]:
    """benchmark name -> its finite results (nan: skipped, None: failed) from one asv results file."""
    doc = json.loads(result_file.read_text())
    columns = doc["result_columns"]
    out: dict[str, list[float]] = {}
    for name, row in doc["results"].items():
        values = dict(zip(columns, row))["result"] or []
        out[name] = [v for v in values if v is not None and not math.isnan(v)]
    return out


def failed(result_file: Path) -> list[str]:
    doc = json.loads(result_file.read_text())
    columns = doc["result_columns"]
    bad = []
    for name, row in doc["results"].items():
        values = dict(zip(columns, row))["result"]
        if values is None or any(v is None for v in values):
            bad.append(name)
    return bad


@pytest.mark.slow  # asv in a subprocess
def test_asv_check(tmp_path: Path) -> None:
    p = asv(["check", "--python=same"], ROOT, asv_env(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No problems found" in p.stdout


def _names(requirements: list[str]) -> set[str]:
    """Distribution names of PEP 508 requirement strings (`torch==2.13.0` -> `torch`), normalised."""
    import re

    return {re.split(r"[\s\[<>=!~;]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_the_committed_matrix_installs_what_the_benchmarks_import() -> None:
    """asv builds its environments from the matrix alone (the wheel is built with --no-deps): a package the
    package or a framework's extra needs but the matrix lacks makes asv skip those rows (flax: every JAX
    `native` row, "flax is not installed") while `rnnbench run` times them."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    needed = _names(project["dependencies"]) | _names([r for x in ("torch", "tensorflow", "jax") for r in extras[x]])
    matrix = json.loads((ROOT / "asv.conf.json").read_text())["matrix"]["req"]
    assert needed - _names(list(matrix)) == set(), "asv.conf.json's matrix misses these"
    # the torch pin is the one the extra names: a looser spec pulls several GB of CUDA packages
    (torch_req,) = [r for r in extras["torch"] if r.startswith("torch")]
    assert matrix["torch"] == torch_req.split("==")[1]


@pytest.mark.slow  # every benchmark through asv, one process per parameter tuple: minutes
def test_quick_run_every_benchmark_same_python(tmp_path: Path) -> None:
    """Every benchmark runs with no failure on a narrowed grid, and results are written."""
    env = asv_env(tmp_path, RNNBENCH_ASV_FRAMEWORKS="numpy,jax", RNNBENCH_ASV_FORMULATIONS="separate,concat")
    if "jax" not in backends.available():
        env[asvsuite.ENV_FRAMEWORKS] = "numpy"
    conf = write_conf(
        tmp_path / "asv.conf.json",
        repo=str(ROOT),
        benchmark_dir=str(ROOT / "benchmarks"),
        results_dir=str(tmp_path / "results"),
        html_dir=str(tmp_path / "html"),
        env_dir=str(tmp_path / "env"),
    )
    add_machine(ROOT, env)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    p = asv(
        ["run", "--config", str(conf), "--python=same", "--quick", "--machine", MACHINE,
         "--set-commit-hash", head.stdout.strip(), "--show-stderr"],
        ROOT, env,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    files = result_files(tmp_path / "results")
    assert len(files) == 1, files
    got = numbers(files[0])
    assert not failed(files[0])
    expected = {
        "bench_cells.RNNCell.time_forward", "bench_cells.RNNCell.time_train",
        "bench_cells.GRUCell.time_forward", "bench_cells.GRUCell.time_train",
        "bench_cells.LSTMCell.time_forward", "bench_cells.LSTMCell.time_train",
        "bench_rates.GFlops.track_gflops", "bench_rates.ConcatVsSeparate.track_concat_over_separate",
        "bench_layers.StackedLayers.time_train", "bench_layers.StackedLayers.peakmem_train",
        "bench_gemm.PeakGEMM.time_matmul", "bench_gemm.PeakGEMM.track_gflops",
    }  # fmt: skip
    assert set(got) == expected
    needs_autograd = {name for name in expected if "train" in name or "StackedLayers" in name}
    # every benchmark, PeakGEMM included, must produce numbers (numpy has no train pass)
    must_have_numbers = expected - (needs_autograd if env[asvsuite.ENV_FRAMEWORKS] == "numpy" else set())
    empty = sorted(name for name in must_have_numbers if not got[name])
    assert not empty, f"benchmarks that produced no number: {empty}"
    assert all(v > 0 for values in got.values() for v in values)


def _copy_worktree(dest: Path) -> None:
    """This checkout's files as git sees them (tracked and untracked, not ignored) into `dest`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.mark.slow
def test_history_in_virtualenv_and_publish(tmp_path: Path) -> None:
    """asv builds and installs two commits of a project clone into a virtualenv, runs both, publishes a site."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_worktree(repo)
    git = ["git", "-c", "user.name=rnnbench tests", "-c", "user.email=tests@rnnbench.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], cwd=repo, check=True)
    (repo / "CHANGES").write_text("a second commit for asv to build\n")
    subprocess.run([*git, "add", "CHANGES"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "second"], cwd=repo, check=True)
    hashes = subprocess.run(
        ["git", "rev-list", "main"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(hashes) == 2
    (tmp_path / "hashes").write_text("\n".join(hashes) + "\n")

    # The committed matrix installs torch, TensorFlow and JAX; numpy is enough
    # to prove that asv builds, installs and benchmarks each commit, and one
    # benchmark enough to show each commit's results and the published graph:
    # every benchmark runs in the same-python quick run above. Here asv times
    # each benchmark for real (its own repeats, per parameter), so the whole
    # suite would cost many times this one for nothing the test asserts.
    write_conf(
        repo / "asv.test.conf.json",
        matrix={"req": {"numpy": "", "tqdm": "", "threadpoolctl": ""}},
        env_dir=str(tmp_path / "env"),
        results_dir=str(tmp_path / "results"),
        html_dir=str(tmp_path / "html"),
    )
    env = asv_env(tmp_path, RNNBENCH_ASV_FRAMEWORKS="numpy")
    env.pop("ASV_PYTHONPATH")  # the environment must import the rnnbench it built, nothing else
    add_machine(repo, env)
    p = asv(
        ["run", "--config", "asv.test.conf.json", "--machine", MACHINE, "--bench", r"LSTMCell\.time_forward",
         f"HASHFILE:{tmp_path / 'hashes'}"],
        repo, env, timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    files = result_files(tmp_path / "results")
    assert sorted(json.loads(f.read_text())["commit_hash"] for f in files) == sorted(hashes)
    for f in files:
        assert "virtualenv" in f.name
        assert not failed(f)
        assert numbers(f)["bench_cells.LSTMCell.time_forward"], f"no LSTM forward timings in {f.name}"

    p = asv(["publish", "--config", "asv.test.conf.json"], repo, env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "html" / "index.html").is_file()
    graphs = list((tmp_path / "html" / "graphs").rglob("bench_cells.LSTMCell.time_forward.json"))
    assert graphs, "asv publish wrote no graph for the LSTM forward sweep"


def test_pytest_benchmark_suite_collects_every_formulation() -> None:
    # read in-process: this suite collects tests/bench itself (a collection error there fails the session),
    # so a second pytest process importing every framework again (tens of seconds) proved nothing more
    from tests.bench.test_bench_formulations import COMBOS, test_formulation

    (mark,) = [m for m in getattr(test_formulation, "pytestmark", []) if m.name == "parametrize"]
    assert mark.args[0] == ("framework", "cell", "pass_", "formulation") and list(mark.args[1]) == COMBOS
    ids = list(mark.kwargs["ids"])
    assert ids == ["/".join(c) for c in COMBOS] and len(set(ids)) == len(ids)
    for formulation in ("separate", "concat", "hoisted", "native"):
        assert any(i.endswith(f"/{formulation}") for i in ids), f"no {formulation} benchmark collected"
    # torch and TF: 4 formulations x 3 cells x 2 passes; JAX: 3 x 3 x 2 plus flax native for rnn and lstm
    # (flax's GRUCell has no b_hn, so JAX has no native gru); numpy: 3 x 3 forward only
    assert len(ids) == 2 * 4 * 3 * 2 + (3 * 3 * 2 + 2 * 2) + 3 * 3
    assert "torch/gru/train/native" in ids and "jax/lstm/train/native" in ids
    assert "jax/gru/forward/native" not in ids


def test_grid_env_vars_narrow_and_widen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(asvsuite.ENV_FULL, raising=False)
    monkeypatch.delenv(asvsuite.ENV_DEVICES, raising=False)
    monkeypatch.setenv(asvsuite.ENV_FRAMEWORKS, "torch,numpy")
    assert asvsuite.frameworks() == ["numpy", "torch"]
    assert asvsuite.devices() == ["cpu"]
    small = len(asvsuite.shapes())
    monkeypatch.setenv(asvsuite.ENV_FULL, "1")
    assert asvsuite.frameworks() == ["numpy", "torch", "torch:compiled"]
    assert asvsuite.frameworks(modes=False) == ["numpy", "torch"]
    assert asvsuite.devices() == ["cpu", "cuda"]
    assert len(asvsuite.shapes()) > small
    assert "gru[keep_old,before]" in asvsuite.cell_variants("gru")
    monkeypatch.setenv(asvsuite.ENV_FORMULATIONS, "fused")
    with pytest.raises(UsageError, match="fused"):
        asvsuite.formulations()


def test_parameter_values_become_cases() -> None:
    case = asvsuite.make_case(
        "torch:compiled", "hoisted", "cpu", "B2 I3 H4 T5", cell="gru[take_new,before]", pass_="train"
    )
    assert (case.framework, case.mode, case.formulation, case.pass_) == ("torch", "compiled", "hoisted", "train")
    assert (case.batch, case.input_size, case.hidden, case.seq_len) == (2, 3, 4, 5)
    assert (case.gru_update, case.gru_reset) == ("take_new", "before")
    assert asvsuite.make_case("jax", "concat", "cpu", "B2 I3 H4 T5", cell="lstm", pass_="forward").mode == "compiled"
    with pytest.raises(UsageError):
        asvsuite.parse_shape("16x64")


def test_skips_and_verification() -> None:
    numpy_train = asvsuite.make_case("numpy", "concat", "cpu", "B2 I3 H4 T5", cell="rnn", pass_="train")
    assert asvsuite.unsupported(numpy_train)
    with pytest.raises(NotImplementedError):
        asvsuite.verified_kernel(numpy_train)
    kernel = asvsuite.verified_kernel(numpy_train.replace(pass_="forward"))
    (seconds,) = asvsuite.median_seconds(kernel.call, repeats=3)
    assert seconds > 0


@pytest.mark.parametrize("framework", backends.available())
def test_gemm_call_is_the_product_of_two_n_by_n_matrices(framework: str) -> None:
    """PeakGEMM's call: an (n x n) result, finite, and n^3 work (doubling n makes the values grow like sqrt(n))."""
    import numpy as np

    results = {n: np.asarray(asvsuite.gemm_call(framework, "cpu", "float32", n)(), dtype=np.float64) for n in (64, 256)}
    for n, out in results.items():
        assert out.shape == (n, n) and np.isfinite(out).all()
    # entries of A @ B with standard-normal A, B have variance n: their RMS grows 2x from n=64 to n=256
    rms = {n: float(np.sqrt(np.mean(out**2))) for n, out in results.items()}
    assert 1.6 < rms[256] / rms[64] < 2.4, rms
    with pytest.raises(NotImplementedError):
        asvsuite.gemm_call(framework, "tpu", "float32", 8)


def test_a_kernel_that_disagrees_with_the_reference_fails_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(kernel: Any, *args: Any) -> Check:
        return Check(kernel.case, 1.0, 1.0, 2e-4, "y")

    monkeypatch.setattr(asvsuite, "verify_kernel", wrong)
    case = asvsuite.make_case("numpy", "separate", "cpu", "B3 I3 H3 T3", cell="lstm", pass_="forward")
    with pytest.raises(AssertionError, match="does not match the reference"):
        asvsuite.verified_kernel(case)
