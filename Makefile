# The two commands a newcomer needs: `make bench` and `make test`.
# Both create .venv once (re-installing only when pyproject.toml changes).
# `make test-fast` is the edit loop: lint and the tests not marked slow; `make test` stays the gate.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_DIRS := rnnbench tests scripts $(wildcard benchmarks)
SHELL_SCRIPTS := $(wildcard scripts/*.sh scripts/slurm/*.sh scripts/slurm/*.sbatch)

.PHONY: bench test test-fast lint typecheck pytest verify clean chromium slurm gpu-check

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

pytest: $(STAMP) chromium slurm
	RNNBENCH_REQUIRE_BROWSER=1 RNNBENCH_REQUIRE_SLURM=1 $(BIN)/python -m pytest -q

test: lint typecheck pytest

# no browser or SLURM needed: without chromium or slurm-wlm their tests skip here (make test requires them)
test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

# -- GPU machines (docs/gpu.md) ----------------------------------------------------------------------
# `make gpu-check`: a separate environment with the CUDA builds of every framework (.venv-gpu, so the
# CPU pins of .venv are never mixed in), then the CUDA tests (every framework, formulation, mode and
# dtype; the probes; the NVML fingerprint), then a short nightly-gpu shard. Everything it writes lands
# under results/: the run document in results/runs/<machine>/ and the check's own files (fingerprint,
# test log and JUnit XML, shard log, summary) in results/gpu-check/<machine>/<UTC stamp>-<commit8>/.
GPU_VENV ?= .venv-gpu
GPU_BIN := $(GPU_VENV)/bin
GPU_STAMP := $(GPU_VENV)/.installed
TORCH_CUDA_INDEX ?= https://download.pytorch.org/whl/cu128
GPU_SHARD ?= 1/64

$(GPU_STAMP): pyproject.toml
	test -x $(GPU_BIN)/python || $(PY) -m venv $(GPU_VENV)
	$(GPU_BIN)/python -m pip install -q --upgrade pip
	$(GPU_BIN)/python -m pip install -q torch --index-url $(TORCH_CUDA_INDEX)
	$(GPU_BIN)/python -m pip install -q "tensorflow[and-cuda]" "jax[cuda12]" "flax>=0.12" ml_dtypes
	$(GPU_BIN)/python -m pip install -q -e ".[report,gpu]" pytest pytest-benchmark pytest-timeout hypothesis
	touch $(GPU_STAMP)

gpu-check: SHELL := /bin/bash
gpu-check: $(GPU_STAMP)
	set -u; \
	$(GPU_BIN)/python -c "import sys; from rnnbench.measure.machine import gpu_info; \
	  sys.exit(0 if gpu_info()['gpu_name'] else 'gpu-check: no NVIDIA GPU visible to NVML or nvidia-smi')" || exit 2; \
	machine=$$($(GPU_BIN)/python -c "from rnnbench.measure.machine import machine_name; print(machine_name())"); \
	out=results/gpu-check/$$machine/$$(date -u +%Y%m%dT%H%M%SZ)-$$(git rev-parse --short=8 HEAD); \
	mkdir -p $$out; \
	$(GPU_BIN)/rnnbench env --json > $$out/fingerprint.json; \
	RNNBENCH_REQUIRE_CUDA=1 $(GPU_BIN)/python -m pytest -q -m cuda -p no:cacheprovider \
	  --junitxml=$$out/cuda-tests.xml tests 2>&1 | tee $$out/cuda-tests.txt; tests=$${PIPESTATUS[0]}; \
	$(GPU_BIN)/rnnbench run --preset nightly-gpu --shard $(GPU_SHARD) --no-progress --results results \
	  2>&1 | tee $$out/nightly-gpu-shard.txt; shard=$${PIPESTATUS[0]}; \
	{ echo "machine: $$machine"; echo "commit: $$(git rev-parse HEAD)"; \
	  echo "cuda tests: exit $$tests ($$out/cuda-tests.txt)"; \
	  echo "nightly-gpu shard $(GPU_SHARD): exit $$shard (run document under results/runs/$$machine/)"; } \
	  | tee $$out/summary.txt; \
	echo "commit it: git add results/gpu-check/$$machine results/runs/$$machine"; \
	test $$tests -eq 0 -a $$shard -eq 0
