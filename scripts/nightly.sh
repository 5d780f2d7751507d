#!/usr/bin/env bash
# One shard of the nightly sweep and (on the first shard, by default) the asv suite on
# the device, stamped with the checked-out commit. The GitHub workflow and the SLURM
# array only call this.
#
#   scripts/nightly.sh --shard K/N [--out DIR] [--history DIR]
#   scripts/nightly.sh            # the whole grid on this machine (= --shard 1/1)
#
# With a history (the folder publish.sh keeps every night in), `rnnbench nightly plan`
# decides whether tonight is paired (docs/pipeline.md): when the commit or the
# environment lock changed since the previous night of this machine, the shard runs
# `rnnbench ab --base <previous night> --new <tonight> --shard K/N`, tonight's side
# being tonight's run; otherwise (and without a history) `rnnbench run --shard K/N`.
#
# Shard K writes DIR/shard-K/ (a results folder: runs/<machine>/*.json and asv/; on a
# paired night also paired/runs/<machine>/*.json, the previous night re-measured, and
# night-plan.json). Rerunning the same command finishes only what is missing
# (--resume), against the plan its first attempt made.
#
# Environment (all optional):
#   RNNBENCH_NIGHTLY_PRESET    rnnbench preset (default nightly-gpu)
#   RNNBENCH_NIGHTLY_ARGS      more grid and timing flags for `rnnbench run` and `rnnbench ab`, split on spaces
#                              (e.g. "--framework torch --budget 0.5"); flags both commands take
#   RNNBENCH_NIGHTLY_HISTORY   the history folder when --history is not given (default: none, a plain run)
#   RNNBENCH_NIGHTLY_AB_ARGS   more `rnnbench ab` flags on a paired night (default "--budget 0.3 --rounds 4
#                              --extra-rounds 4": four short rounds a side, and up to four more for the cases they
#                              leave undecided; the measured choice is in docs/pipeline.md)
#   RNNBENCH_NIGHTLY_OUT       output folder when --out is not given (default nightly-results)
#   RNNBENCH_NIGHTLY_ASV       which shards run the asv suite: first (default), all, none
#   RNNBENCH_NIGHTLY_ASV_ARGS  more `asv run` flags (e.g. "--quick --bench LSTMCell")
#   RNNBENCH_ASV_DEVICES       devices of the asv suite (default cuda; see rnnbench/asvsuite.py)
#   RNNBENCH_MACHINE           machine name every shard shares (default nightly; a GPU model is appended)
#   RNNBENCH                   the rnnbench command (default: rnnbench)
#   PYTHON                     the Python that has rnnbench and asv (default python3)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shard=1/1
out=${RNNBENCH_NIGHTLY_OUT:-nightly-results}
history=${RNNBENCH_NIGHTLY_HISTORY:-}
while [[ $# -gt 0 ]]; do
    case $1 in
        --shard) shard=${2:?--shard needs K/N}; shift 2 ;;
        --shard=*) shard=${1#--shard=}; shift ;;
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --out=*) out=${1#--out=}; shift ;;
        --history) history=${2:?--history needs a folder}; shift 2 ;;
        --history=*) history=${1#--history=}; shift ;;
        -h|--help) sed -n '2,34p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "nightly.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [[ ! $shard =~ ^([0-9]+)/([0-9]+)$ ]] || (( BASH_REMATCH[1] < 1 || BASH_REMATCH[1] > BASH_REMATCH[2] )); then
    echo "nightly.sh: --shard must be K/N with 1 <= K <= N, got $shard" >&2
    exit 2
fi
k=${BASH_REMATCH[1]}

PYTHON=${PYTHON:-python3}
read -r -a rnnbench <<<"${RNNBENCH:-rnnbench}"
read -r -a extra <<<"${RNNBENCH_NIGHTLY_ARGS:-}"
read -r -a asv_extra <<<"${RNNBENCH_NIGHTLY_ASV_ARGS:-}"
read -r -a ab_extra <<<"${RNNBENCH_NIGHTLY_AB_ARGS:---budget 0.3 --rounds 4 --extra-rounds 4}"
preset=${RNNBENCH_NIGHTLY_PRESET:-nightly-gpu}
export RNNBENCH_MACHINE=${RNNBENCH_MACHINE:-nightly}
export RNNBENCH_ASV_DEVICES=${RNNBENCH_ASV_DEVICES:-cuda}
dest=$out/shard-$k
mkdir -p "$dest"

# tonight's plan: paired against the previous night, or plain (decided by rnnbench, not here); a rerun
# of this shard keeps its first attempt's plan, so a resumed paired night goes on against the same BASE
paired=0 base='' new='' reason="no history given: a plain run"
if [[ -n $history ]]; then
    plan=$dest/night-plan.sh
    if [[ ! -f $plan ]]; then
        "${rnnbench[@]}" nightly plan "$history" --out "$dest/night-plan.json" >"$plan.tmp"
        mv "$plan.tmp" "$plan"
    fi
    # shellcheck source=/dev/null
    source "$plan"
fi

echo "nightly.sh: shard $shard -> $dest ($reason)" >&2
status=0
if (( paired )); then
    # NEW is tonight's run (it goes into the history like any night's); BASE, the previous night's
    # commit and environment re-measured interleaved with it, goes to paired/
    "${rnnbench[@]}" ab --base "$base" --new "$new" --preset "$preset" "${ab_extra[@]}" "${extra[@]}" \
        --shard "$shard" --resume --results "$dest" --base-results "$dest/paired" --no-progress || status=$?
    if (( status == 2 )); then
        # ab refuses before writing anything (BASE's revision or environment cannot start, say): the
        # night is still measured, plain, and this shard stays plain when it is rerun
        reason="the previous night could not be re-measured (rnnbench ab exit 2, see above): a plain run"
        echo "nightly.sh: warning: $reason" >&2
        printf 'paired=0\nreason=%q\n' "$reason" >>"$plan"
        paired=0 status=0
    fi
fi
if (( ! paired )); then
    "${rnnbench[@]}" run --preset "$preset" "${extra[@]}" \
        --shard "$shard" --resume --results "$dest" --no-progress || status=$?
fi
# exit 1 means some cases failed: they are recorded and the landing page lists them,
# so the shard still counts as done; anything else (bad flags, a crash) stops here
if (( status > 1 )); then
    echo "nightly.sh: rnnbench $( ((paired)) && echo ab || echo run) failed with exit code $status" >&2
    exit "$status"
fi

case ${RNNBENCH_NIGHTLY_ASV:-first} in
    all) run_asv=1 ;;
    first) run_asv=$(( k == 1 )) ;;
    none) run_asv=0 ;;
    *) echo "nightly.sh: RNNBENCH_NIGHTLY_ASV must be first, all or none" >&2; exit 2 ;;
esac
if (( run_asv )); then
    machine=$("$PYTHON" -c 'from rnnbench.measure.machine import machine_name; print(machine_name())')
    commit=$(git -C "$repo" rev-parse HEAD)
    conf=$dest/asv.conf.json
    "$PYTHON" "$repo/scripts/asv_conf.py" "$conf" "results_dir=$(cd "$dest" && pwd)/asv" \
        "html_dir=$(cd "$dest" && pwd)/asv-html" "env_dir=$(cd "$dest" && pwd)/asv-env"
    # asv strips PYTHONPATH from its benchmark processes; ASV_PYTHONPATH puts this checkout first
    export ASV_PYTHONPATH=${ASV_PYTHONPATH:-$repo}
    "$PYTHON" -m asv machine --yes --machine "$machine" >/dev/null
    if ! "$PYTHON" -m asv run --config "$conf" --python=same --machine "$machine" \
        --set-commit-hash "$commit" "${asv_extra[@]}"; then
        # a failed benchmark is recorded as failed in the asv results; the shard is still done
        echo "nightly.sh: warning: asv run reported failures (see the asv dashboard)" >&2
    fi
fi
echo "nightly.sh: shard $shard done" >&2
