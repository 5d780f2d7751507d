# The two commands a newcomer needs: `make bench` and `make test`.
# Both create .venv once (re-installing only when pyproject.toml changes).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_DIRS := rnnbench tests scripts $(wildcard benchmarks)
SHELL_SCRIPTS := $(wildcard scripts/*.sh scripts/slurm/*.sh scripts/slurm/*.sbatch)

.PHONY: bench test lint typecheck pytest verify clean chromium slurm

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
