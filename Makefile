# The two commands a newcomer needs: `make bench` and `make test`.
# Both create .venv once (re-installing only when pyproject.toml changes).
# `make test-fast` is the edit loop: lint and the tests not marked slow; `make test` stays the gate.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_DIRS := rnnbench tests scripts $(wildcard benchmarks)
SHELL_SCRIPTS := $(wildcard scripts/*.sh scripts/slurm/*.sh scripts/slurm/*.sbatch)

.PHONY: bench test test-fast test-stress lint typecheck pytest verify clean chromium slurm gpu-check gpu-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/rnnbench run --preset quick

verify: $(STAMP)
	$(BIN)/rnnbench verify

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/lint-imports
	$(BIN)/actionlint .github/workflows/*.yml
	$(BIN)/shellcheck $(SHELL_SCRIPTS)

typecheck: $(STAMP)
	$(BIN)/mypy

# the report tests open the generated site in a headless browser (Debian's chromium)
chromium:
	test -x /usr/bin/chromium || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

# the pipeline test runs scripts/slurm/*.sbatch on a one-node SLURM it starts (Debian's slurm-wlm and munge)
slurm:
	command -v slurmctld >/dev/null && command -v munged >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge)

# pytest in TEST_WORKERS processes (pytest-xdist): much of the suite's time is spent waiting on subprocesses
# (worker sweeps, asv, the nightly scripts, SLURM, a fresh venv's install), which overlap even on 2 cores.
# Each test writes only below its own tmp_path (HOME too, for asv and the nightly scripts), and none asserts
# a timing outcome, so a test on the other worker cannot change what one decides. --durations=15: the
# slowest tests, to keep `make test` inside its time budget (issue 21: 12 minutes on the 2-core VM).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=15

pytest: $(STAMP) chromium slurm
	RNNBENCH_REQUIRE_BROWSER=1 RNNBENCH_REQUIRE_SLURM=1 $(PYTEST)

test: lint typecheck pytest

# `make test-stress` (not part of `make test`): the same pytest with one core kept busy by a spinning process,
# as another job on a shared VM would. A test whose outcome hangs on the machine's mood fails here first; the
# tests feed controlled inputs instead (injected samples, fake clocks, stub workers), so this passes too.
# The spinner is a background job of a non-interactive shell, so a Ctrl-C does not reach it: the trap ends it.
test-stress: SHELL := /bin/bash
test-stress: $(STAMP) chromium slurm
	$(BIN)/python -c 'while True: pass' & spinner=$$!; \
	trap 'kill $$spinner 2>/dev/null' EXIT INT TERM; \
	RNNBENCH_REQUIRE_BROWSER=1 RNNBENCH_REQUIRE_SLURM=1 $(PYTEST)

# no browser or SLURM needed: without chromium or slurm-wlm their tests skip here (make test requires them)
test-fast: lint
	$(PYTEST) -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

# -- GPU machines (docs/gpu.md) ----------------------------------------------------------------------
# `make gpu-check`: scripts/gpu-check.sh with the machine's own interpreter (GPU_PY): nothing is
# installed and no network is needed; each stage is stopped in time by the GPU_MINUTES deadline.
# What comes back lands in $OUT (a lent machine) or gpu-check-out/; `scripts/gpu-check.sh --file DIR`
# files it under results/. GPU_CHECK_ARGS: more flags (--rehearse, --stages, --commit).
# `make gpu-venv` is the route for a GPU box of our own with a network: a separate environment with
# the CUDA builds of every framework (.venv-gpu, so the CPU pins of .venv are never mixed in); then
# `make gpu-check GPU_PY=.venv-gpu/bin/python`.
GPU_PY ?= python3
GPU_MINUTES ?= 6
GPU_CHECK_ARGS ?=
GPU_VENV ?= .venv-gpu
GPU_BIN := $(GPU_VENV)/bin
GPU_STAMP := $(GPU_VENV)/.installed
TORCH_CUDA_INDEX ?= https://download.pytorch.org/whl/cu128

gpu-check:
	scripts/gpu-check.sh --python $(GPU_PY) --minutes $(GPU_MINUTES) $(GPU_CHECK_ARGS)

gpu-venv: $(GPU_STAMP)

$(GPU_STAMP): pyproject.toml
	test -x $(GPU_BIN)/python || $(PY) -m venv $(GPU_VENV)
	$(GPU_BIN)/python -m pip install -q --upgrade pip
	$(GPU_BIN)/python -m pip install -q torch --index-url $(TORCH_CUDA_INDEX)
	$(GPU_BIN)/python -m pip install -q "tensorflow[and-cuda]" "jax[cuda12]" "flax>=0.12" ml_dtypes
	$(GPU_BIN)/python -m pip install -q -e ".[report,gpu]" pytest pytest-benchmark pytest-timeout hypothesis
	touch $(GPU_STAMP)
