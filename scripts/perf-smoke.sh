#!/usr/bin/env bash
# A small performance comparison of two revisions of this repository, for pull requests.
#
#   scripts/perf-smoke.sh BASE NEW [SUMMARY_FILE]
#
# Runs a small grid at BASE and at NEW (each a git revision, checked out as a
# worktree), writes the markdown verdict table to SUMMARY_FILE (the job summary
# in GitHub Actions; stdout without one) and exits 1 when a case is resolved
# slower. RNNBENCH_SMOKE_ARGS replaces the grid flags; PYTHON as in nightly.sh.
set -euo pipefail

base=${1:?usage: perf-smoke.sh BASE NEW [SUMMARY_FILE]}
new=${2:?usage: perf-smoke.sh BASE NEW [SUMMARY_FILE]}
summary=${3:-/dev/stdout}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
read -r -a grid <<<"${RNNBENCH_SMOKE_ARGS:---preset quick --framework numpy,torch --cell lstm --batch 16 --hidden 64 --seq-len 32 --rounds 3}"
work=$(mktemp -d)
trap 'git -C "$repo" worktree remove --force "$work/base" 2>/dev/null || true; git -C "$repo" worktree remove --force "$work/new" 2>/dev/null || true; rm -rf "$work"' EXIT

status=0
if "$PYTHON" -m rnnbench ab --help >/dev/null 2>&1; then
    # `rnnbench ab` (issue 9) interleaves both sides in one sweep: the better test
    "$PYTHON" -m rnnbench ab --base "$base" --new "$new" "${grid[@]}" --format markdown --fail-on-regression \
        >"$work/verdicts.md" || status=$?
else
    # SWITCH(verdicts): until `ab` exists, two separate runs and `compare`
    for side in base new; do
        rev=$base
        [[ $side == new ]] && rev=$new
        git -C "$repo" worktree add --detach -q "$work/$side" "$rev"
        (cd "$work/$side" && PYTHONPATH=$work/$side "$PYTHON" -m rnnbench run "${grid[@]}" \
            --results "$work/results-$side" --no-progress >/dev/null) || true
    done
    "$PYTHON" -m rnnbench compare "$work/results-base" "$work/results-new" --format markdown --fail-on-regression \
        >"$work/verdicts.md" || status=$?
fi
{
    echo "### Performance smoke test: \`$base\` vs \`$new\`"
    echo
    cat "$work/verdicts.md"
} >>"$summary"
exit "$status"
