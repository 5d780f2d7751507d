#!/usr/bin/env bash
# After the shards: merge them into the history, check for regressions, build the
# rnnbench report and the asv dashboard, and write one landing page.
#
#   scripts/publish.sh --history DIR --site DIR SHARD_DIR...
#
# --history is the results folder that keeps every night (the `results` branch in
# CI): the merged run lands in DIR/runs/<machine>/, the shards' asv results in
# DIR/asv/, and both in the columnar history DIR/nights/ (docs/history.md) that the
# regression check and the report read. --site receives index.html (the landing page), report/, asv/ and
# regressions.txt; it opens from disk and from GitHub Pages alike.
#
# Environment (all optional):
#   RNNBENCH_PUBLISH_BASELINE     previous runs a case is judged against (default 5)
#   RNNBENCH_PUBLISH_THRESHOLD    smallest change that counts (default 5%)
#   RNNBENCH_REPORT_ARGS          more `rnnbench report` flags (e.g. "--max-charts 6")
#   RNNBENCH_ASV_BRANCHES         branches the asv dashboard draws (default: main)
#   RNNBENCH_FAIL_ON_REGRESSION   1: exit 1 after publishing when a case regressed
#   RNNBENCH, PYTHON              as in nightly.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
history=
site=
shards=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --history) history=${2:?--history needs a folder}; shift 2 ;;
        --site) site=${2:?--site needs a folder}; shift 2 ;;
        -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "publish.sh: unknown option $1" >&2; exit 2 ;;
        *) shards+=("$1"); shift ;;
    esac
done
if [[ -z $history || -z $site || ${#shards[@]} -eq 0 ]]; then
    echo "usage: publish.sh --history DIR --site DIR SHARD_DIR..." >&2
    exit 2
fi

PYTHON=${PYTHON:-python3}
read -r -a rnnbench <<<"${RNNBENCH:-rnnbench}"
read -r -a report_extra <<<"${RNNBENCH_REPORT_ARGS:-}"
baseline=${RNNBENCH_PUBLISH_BASELINE:-5}
threshold=${RNNBENCH_PUBLISH_THRESHOLD:-5%}
mkdir -p "$history" "$site"
history=$(cd "$history" && pwd)
site=$(cd "$site" && pwd)

# 1. one run document from every shard (exit 2 on a missing shard or a duplicated case), merged
# aside first so the night's document alone goes into the columnar history, then kept beside it
merged=$(mktemp -d)
trap 'rm -rf "$merged"' EXIT
"${rnnbench[@]}" merge "${shards[@]}" --out "$merged"
"${rnnbench[@]}" history import "$merged" --out "$history/nights" --no-progress
cp -R "$merged/." "$history/"

# 2. the shards' asv results join the asv history, and the columnar one
for shard in "${shards[@]}"; do
    if [[ -d $shard/asv ]]; then
        mkdir -p "$history/asv"
        cp -R "$shard/asv/." "$history/asv/"
        "${rnnbench[@]}" history import "$shard/asv" --out "$history/nights" --no-progress
    fi
done

# 3. the regression check: the newest night against its last N, read from the columnar history
# (only those nights' files are opened)
"${rnnbench[@]}" regressions "$history/nights" --baseline "$baseline" --threshold "$threshold" >"$site/regressions.txt"

# 4. the rnnbench dashboard (an interactive static site, docs/dashboard.md), from the columnar history,
# its bands drawn with the regression check's baseline and threshold
"${rnnbench[@]}" report "$history/nights" --out "$site/report" --baseline "$baseline" --threshold "$threshold" \
    --quiet "${report_extra[@]}"

# 5. the asv dashboard (needs the repository's git history for commit dates)
if [[ -f $history/asv/benchmarks.json ]]; then
    conf=$site/.asv.conf.json
    "$PYTHON" "$repo/scripts/asv_conf.py" "$conf" "results_dir=$history/asv" "html_dir=$site/asv" \
        "branches=${RNNBENCH_ASV_BRANCHES:-main}"
    (cd "$repo" && "$PYTHON" -m asv publish --config "$conf")
    rm -f "$conf"
fi

# 6. the landing page
landing=("${rnnbench[@]}" landing "$history" --out "$site" --baseline "$baseline" --threshold "$threshold")
if [[ ${RNNBENCH_FAIL_ON_REGRESSION:-0} == 1 ]]; then
    landing+=(--fail-on-regression)
fi
"${landing[@]}"
