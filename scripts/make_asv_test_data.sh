#!/usr/bin/env bash
# Regenerate tests/data/asv: a real `asv run` of today's suite in benchmarks/, on a tiny grid.
#
# What it runs: `asv run --python=same --quick --record-samples` of every benchmark in
# benchmarks/ (one call per benchmark, in this interpreter's environment), narrowed by the
# suite's own switches to numpy and torch, the concat and separate formulations, the CPU and
# one compute thread, and recorded against the current commit (`--set-commit-hash HEAD`).
# torch is there because numpy has no train pass: without it the peakmem_* and time_train
# benchmarks would all be skipped. The machine is named `asv-test`; asv's machine file goes
# into a throwaway HOME, so ~/.asv-machine.json is left alone.
#
# Usage: scripts/make_asv_test_data.sh [PYTHON]   (default: .venv/bin/python)
# Takes a few minutes on a 2-core machine; the numbers are whatever the machine measured.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-.venv/bin/python}
OUT=tests/data/asv
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# asv.conf.json with its results going to the scratch folder (repo and benchmarks stay this checkout)
"$PYTHON" - "$WORK" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
conf = json.loads(pathlib.Path("asv.conf.json").read_text())
root = pathlib.Path.cwd()
conf.update(repo=str(root), benchmark_dir=str(root / "benchmarks"), results_dir=str(work / "results"),
            html_dir=str(work / "html"), env_dir=str(work / "env"))
(work / "asv.conf.json").write_text(json.dumps(conf, indent=1))
PY

export HOME="$WORK/home" && mkdir -p "$HOME"
# the suite must import this checkout's rnnbench, whatever an installed copy points at
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export RNNBENCH_ASV_FRAMEWORKS=numpy,torch RNNBENCH_ASV_FORMULATIONS=concat,separate
export RNNBENCH_ASV_DEVICES=cpu RNNBENCH_ASV_THREADS=1
unset RNNBENCH_ASV_FULL
"$PYTHON" -m asv machine --config "$WORK/asv.conf.json" --machine asv-test --yes >/dev/null
"$PYTHON" -m asv run --config "$WORK/asv.conf.json" --machine asv-test --python=same --quick --record-samples \
    --set-commit-hash "$(git rev-parse HEAD)" --launch-method spawn --show-stderr

rm -rf "$OUT" && mkdir -p "$OUT"
cp -r "$WORK/results/." "$OUT/"
cat > "$OUT/README.md" <<MD
# A real asv result set of today's suite (test data)

Written by \`scripts/make_asv_test_data.sh\` (asv run --python=same --quick --record-samples,
RNNBENCH_ASV_FRAMEWORKS=$RNNBENCH_ASV_FRAMEWORKS, RNNBENCH_ASV_FORMULATIONS=$RNNBENCH_ASV_FORMULATIONS,
RNNBENCH_ASV_DEVICES=$RNNBENCH_ASV_DEVICES, RNNBENCH_ASV_THREADS=$RNNBENCH_ASV_THREADS) at commit
$(git rev-parse --short=8 HEAD) on $(date -u +%Y-%m-%d), machine name \`asv-test\`. One call per benchmark:
the numbers are whatever that machine measured and mean nothing; the files are here for their format
(parameter labels, \`time\`/\`track\`/\`peakmemory\` types and units in benchmarks.json, skipped tuples as NaN).
Regenerate with the script after the suite changes. tests/data/asv-legacy holds the older naming.
MD
echo "wrote $OUT"
