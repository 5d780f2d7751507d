#!/usr/bin/env bash
# The whole nightly on this one machine: every case as one shard, then merge,
# check, report, asv publish and the landing page.
#
#   scripts/nightly-local.sh [HISTORY_DIR] [SITE_DIR]
#
# HISTORY_DIR (default nightly-history) keeps every night and is what the next
# one is judged against (and paired with: when the commit or the environment
# changed since the previous night, tonight runs interleaved with it, see
# docs/pipeline.md); SITE_DIR (default nightly-site) gets index.html. Each call
# is a new night (its shard folder is timestamped; the night's merged run
# document, and a paired night's BASE, are kept beside it in documents/: the
# history keeps the night in its columnar store only). Environment: as in
# nightly.sh and publish.sh (RNNBENCH_NIGHTLY_BISECT_BUDGET can be set here: the
# bisect runs on this machine, the one the night ran on).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
history=${1:-nightly-history}
site=${2:-nightly-site}
night=${RNNBENCH_NIGHTLY_OUT:-nightly-results}/$(date -u +%Y%m%dT%H%M%S)
"$here/nightly.sh" --shard 1/1 --out "$night" --history "$history"
"$here/publish.sh" --history "$history" --site "$site" --documents "$night/documents" "$night/shard-1"
echo "nightly-local.sh: open $site/index.html" >&2
