#!/usr/bin/env bash
# After the shards: merge them into the history, judge the night (verdicts.json), build
# the rnnbench report and the asv dashboard, and write one landing page.
#
#   scripts/publish.sh --history DIR --site DIR [--documents DIR] SHARD_DIR...
#
# --history is the folder that keeps every night (the `results` branch in CI): the
# merged run goes into the columnar history DIR/nights/ (docs/history.md) that the
# plan, the verdicts, the report and the landing page read, the shards' asv results
# into DIR/asv/ (asv publish reads them) and DIR/nights/. The run documents
# themselves are not kept there: a night of the nightly-gpu preset is about 25 MB of
# JSON, five times what the history adds a night. --documents DIR keeps them
# instead (DIR/runs/<machine>/<file>.json, and a paired night's BASE, the previous
# night re-measured beside tonight's run, as DIR/paired/<machine>/<file>.json: never
# a night of its own); the workflow uploads that folder as an artifact. Default: not
# kept (the shard folders still hold their parts). On a paired night (the shards hold
# paired/runs/..., see nightly.sh) tonight's verdicts are the paired ones. --site
# receives index.html (the landing page), verdicts.json, regressions.txt, feed.xml,
# report/ and asv/; it opens from disk and from GitHub Pages alike.
#
# Environment (all optional):
#   RNNBENCH_PUBLISH_DOCUMENTS    the --documents folder when the option is not given (default: none)
#   RNNBENCH_PUBLISH_BASELINE     previous nights a case's drift is judged against (default 5)
#   RNNBENCH_PUBLISH_THRESHOLD    smallest change that counts (default 5%)
#   RNNBENCH_REPORT_ARGS          more `rnnbench report` flags (e.g. "--max-charts 6")
#   RNNBENCH_ASV_BRANCHES         branches the asv dashboard draws (default: main)
#   RNNBENCH_FAIL_ON_REGRESSION   1: exit 1 after publishing when a case regressed
#   RNNBENCH_NIGHTLY_BISECT_BUDGET  minutes `rnnbench bisect` may take after a paired night that found
#                                 regressions across more than one commit (default 0: off; the landing page
#                                 then prints the command). It measures on the machine publish.sh runs on:
#                                 set it only where that is the machine the night ran on (nightly-local.sh)
#   RNNBENCH_NIGHTLY_PRESET, RNNBENCH_NIGHTLY_ARGS  the night's grid, as in nightly.sh (bisect uses them)
#   RNNBENCH, PYTHON              as in nightly.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
history=
site=
documents=${RNNBENCH_PUBLISH_DOCUMENTS:-}
shards=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --history) history=${2:?--history needs a folder}; shift 2 ;;
        --site) site=${2:?--site needs a folder}; shift 2 ;;
        --documents) documents=${2:?--documents needs a folder}; shift 2 ;;
        -h|--help) sed -n '2,33p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "publish.sh: unknown option $1" >&2; exit 2 ;;
        *) shards+=("$1"); shift ;;
    esac
done
if [[ -z $history || -z $site || ${#shards[@]} -eq 0 ]]; then
    echo "usage: publish.sh --history DIR --site DIR [--documents DIR] SHARD_DIR..." >&2
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
if [[ -n $documents ]]; then
    mkdir -p "$documents"
fi

# 1. one run document from every shard (exit 2 on a missing shard or a duplicated case), merged
# aside so the night's document alone goes into the columnar history (its rows, and its header:
# the fingerprint and lock the next night's plan reads); the document itself only to --documents
merged=$(mktemp -d)
trap 'rm -rf "$merged"' EXIT
"${rnnbench[@]}" merge "${shards[@]}" --out "$merged/night"
"${rnnbench[@]}" history import "$merged/night" --out "$history/nights" --no-progress
night_doc=$(find "$merged/night/runs" -name '*.json' -print -quit)
if [[ -n $documents ]]; then
    cp -R "$merged/night/." "$documents/"
fi

# 2. a paired night: the shards' BASE documents (the previous night re-measured, interleaved with
# tonight's) merged into one, judged against tonight's, kept under --documents' paired/ (never
# imported: it is not a night). Every shard must hold its part; a night where some did not is
# published as a plain one, and says so here
paired=()
bases=()
for shard in "${shards[@]}"; do
    if [[ -d $shard/paired/runs ]]; then
        bases+=("$shard/paired")
    fi
done
if (( ${#bases[@]} == ${#shards[@]} )) && "${rnnbench[@]}" merge "${bases[@]}" --out "$merged/base"; then
    base_doc=$(find "$merged/base/runs" -name '*.json' -print -quit)
    if [[ -n $documents ]]; then
        machine=$(basename "$(dirname "$base_doc")")
        mkdir -p "$documents/paired/$machine"
        cp "$base_doc" "$documents/paired/$machine/"
    fi
    paired=(--paired "$base_doc" "$night_doc")
elif (( ${#bases[@]} )); then
    # tonight's run is whole (merged above): only the pairing is lost, and the page says so
    echo "publish.sh: warning: the previous night's re-measurement is not whole (${#bases[@]} of" \
        "${#shards[@]} shards paired, or their merge failed above); publishing the night unpaired" >&2
fi
for shard in "${shards[@]}"; do
    if [[ -f $shard/night-plan.json ]]; then
        cp "$shard/night-plan.json" "$site/night-plan.json"  # what nightly.sh decided, and why
        break
    fi
done

# 3. the shards' asv results join the asv history, and the columnar one
for shard in "${shards[@]}"; do
    if [[ -d $shard/asv ]]; then
        mkdir -p "$history/asv"
        cp -R "$shard/asv/." "$history/asv/"
        "${rnnbench[@]}" history import "$shard/asv" --out "$history/nights" --no-progress
    fi
done

# 4. the night's verdicts, one document every page below is rendered from: paired when the night was
# (BASE against NEW), and drift from history for every case (the newest night against its last N)
"${rnnbench[@]}" verdicts "$history/nights" --out "$site/verdicts.json" --baseline "$baseline" \
    --threshold "$threshold" --archive "$history/verdicts" --repo "$repo" "${paired[@]}"
"${rnnbench[@]}" verdicts-render "$site/verdicts.json" --format text --out "$site/regressions.txt"
"${rnnbench[@]}" verdicts-render "$history/verdicts" --format atom --out "$site/feed.xml"

# 5. a paired night's regressions across more than one commit: the first slower commit, when the
# budget allows (off by default; otherwise the landing page prints the command)
budget=${RNNBENCH_NIGHTLY_BISECT_BUDGET:-0}
if [[ ! $budget =~ ^[0-9]+$ ]]; then
    echo "publish.sh: RNNBENCH_NIGHTLY_BISECT_BUDGET must be a whole number of minutes, got $budget" >&2
    exit 2
fi
rm -f "$site/bisect.txt"
if (( budget > 0 )); then
    # nothing here may keep the night from being published: a failure is a warning
    bisect=0 good='' bad='' cases=''
    if request=$("${rnnbench[@]}" nightly bisect-args "$site/verdicts.json"); then
        eval "$request"
    else
        echo "publish.sh: warning: no bisect: the verdicts could not be read for it" >&2
    fi
    if (( bisect )) && (( $(git -C "$repo" rev-list --count "$good..$bad" 2>/dev/null || echo 0) > 1 )); then
        read -r -a keys <<<"$cases"
        read -r -a grid_args <<<"${RNNBENCH_NIGHTLY_ARGS:-}"
        echo "publish.sh: bisecting ${#keys[@]} regressed cases between ${good::12} and ${bad::12} (at most $budget min)" >&2
        # SIGINT, not SIGTERM, at the budget: bisect then removes the worktrees of the step it was in
        timeout -s INT -k 120 "$((budget * 60))" "${rnnbench[@]}" bisect "$good" "$bad" --cases "${keys[@]}" \
            --preset "${RNNBENCH_NIGHTLY_PRESET:-nightly-gpu}" "${grid_args[@]}" --no-progress \
            --results "$merged/bisect" >"$site/bisect.txt" 2>&1 ||
            echo "publish.sh: warning: bisect did not finish (exit $?); see $site/bisect.txt" >&2
    fi
fi

# 6. the rnnbench dashboard (an interactive static site, docs/dashboard.md), from the columnar history,
# its bands drawn with the regression check's baseline and threshold, the night's verdicts listed
"${rnnbench[@]}" report "$history/nights" --out "$site/report" --baseline "$baseline" --threshold "$threshold" \
    --verdicts "$site/verdicts.json" --quiet "${report_extra[@]}"

# 7. the asv dashboard (needs the repository's git history for commit dates)
if [[ -f $history/asv/benchmarks.json ]]; then
    conf=$site/.asv.conf.json
    "$PYTHON" "$repo/scripts/asv_conf.py" "$conf" "results_dir=$history/asv" "html_dir=$site/asv" \
        "branches=${RNNBENCH_ASV_BRANCHES:-main}"
    (cd "$repo" && "$PYTHON" -m asv publish --config "$conf")
    rm -f "$conf"
fi

# 8. the landing page, from verdicts.json and the night (and the one before it) in the columnar history
landing=("${rnnbench[@]}" landing "$history/nights" --out "$site" --verdicts "$site/verdicts.json")
if [[ ${RNNBENCH_FAIL_ON_REGRESSION:-0} == 1 ]]; then
    landing+=(--fail-on-regression)
fi
"${landing[@]}"
