#!/usr/bin/env bash
# Queue the nightly on a SLURM cluster: an N-task array (one GPU shard each) and the
# merge-and-publish job that waits for all of them (--dependency=afterok).
#
#   scripts/slurm/submit.sh [N]        # default N=4; run from the repository root
#
# RNNBENCH_SBATCH_ARGS adds sbatch flags to both jobs (e.g. "--partition=gpu --account=me").
# Prints the two job ids. Everything else is read from the environment as in nightly.sh.
set -euo pipefail

n=${1:-4}
if [[ ! $n =~ ^[1-9][0-9]*$ ]]; then
    echo "submit.sh: the shard count must be a positive integer, got $n" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
read -r -a extra <<<"${RNNBENCH_SBATCH_ARGS:-}"
array=$(sbatch --parsable --array="0-$((n - 1))" --export="ALL,RNNBENCH_SHARDS=$n" "${extra[@]}" "$here/nightly.sbatch")
array=${array%%;*}
publish=$(sbatch --parsable --dependency="afterok:$array" --export="ALL,RNNBENCH_NIGHTLY_JOB=$array" \
    "${extra[@]}" "$here/publish.sbatch")
echo "$array ${publish%%;*}"
