#!/usr/bin/env bash
# The GPU check for a lent machine: offline, on the frameworks its interpreter has, inside a deadline.
#
#   scripts/gpu-check.sh [--out DIR] [--python PY] [--minutes N] [--commit SHA] [--stages LIST] [--rehearse]
#   scripts/gpu-check.sh --file DIR [--results ROOT]
#
# It installs nothing and reaches no network: rnnbench runs from this checkout (PYTHONPATH) on the
# interpreter's own frameworks, and each missing one is reported in one line while the others go on.
# Stages, in order of value, each stopped in time by the deadline the script keeps (--minutes,
# default 6; a stage cut short or not started is said in the summary):
#   fingerprint  `rnnbench env --json` plus each framework's CUDA runtime and cuDNN
#   verify       `rnnbench verify --device cuda -q` over every cell, formulation and mode in fp32, TF32, bf16-mixed
#   cuda-tests   `pytest -m cuda` with RNNBENCH_REQUIRE_CUDA=1 (JUnit XML)
#   probes       the GEMM ladder and the bandwidth probe, fp32 and bf16 (an `rnnbench run` of one small case each)
#   slice        a `nightly-gpu` slice sized to the time left (LSTM, every formulation, torch eager and JAX)
#   ab           a short paired `rnnbench ab` A/A: the false-alarm baseline of the nightly on this device
# --out (default $OUT, else gpu-check-out/ in the checkout) receives at most 8 files: summary.txt,
# fingerprint.json, verify.txt, cuda-tests.xml, runs.tar.gz, ab-aa.tar.gz, gpu-check.log.
# --rehearse runs the same plumbing on a machine without a GPU: tiny CPU grids, the CUDA tests
# collected and skipped, and the summary says what was skipped for want of a GPU.
# --commit names the commit where the checkout has no .git (a lent machine gets the working tree only).
# --stages runs only the named stages (comma list, in the order above; a retry that needs only some).
#
# --file DIR (on the machine that keeps the results, no GPU needed) files what came back: the
# summary, fingerprint, verify, JUnit and log files into ROOT/gpu-check/<machine>/<stamp>-<commit8>/ as they are, and the run
# documents of both tarballs into ROOT/runs/<machine>/, where report, landing and nightly read every
# machine's. ROOT defaults to results/ of this checkout.
#
# Exit: 0 every stage passed, was skipped or was stopped by the deadline; 1 a stage failed or crashed;
# 2 bad input (an interpreter without rnnbench's needs, an --out that cannot be written, no GPU
# without --rehearse), one line on stderr.
set -uo pipefail
start=$(date +%s)   # the deadline counts from here, the checks below included

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
me="gpu-check.sh"
die() { echo "$me: $*" >&2; exit 2; }

out=${OUT:-}
py=python3
minutes=6
rehearse=0
commit=
file_dir=
results_root=$repo/results
all_stages=fingerprint,verify,cuda-tests,probes,slice,ab
stages=$all_stages
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --out=*) out=${1#--out=}; shift ;;
        --python) py=${2:?--python needs an interpreter}; shift 2 ;;
        --python=*) py=${1#--python=}; shift ;;
        --minutes) minutes=${2:?--minutes needs a number}; shift 2 ;;
        --minutes=*) minutes=${1#--minutes=}; shift ;;
        --commit) commit=${2:?--commit needs a sha}; shift 2 ;;
        --commit=*) commit=${1#--commit=}; shift ;;
        --rehearse) rehearse=1; shift ;;
        --stages) stages=${2:?--stages needs a list}; shift 2 ;;
        --stages=*) stages=${1#--stages=}; shift ;;
        --file) file_dir=${2:?--file needs the folder that came back}; shift 2 ;;
        --file=*) file_dir=${1#--file=}; shift ;;
        --results) results_root=${2:?--results needs a folder}; shift 2 ;;
        --results=*) results_root=${1#--results=}; shift ;;
        -h|--help) sed -n '2,31p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument $1" ;;
    esac
done

# -- filing what came back ---------------------------------------------------------------------------
if [[ -n $file_dir ]]; then
    [[ -f $file_dir/summary.txt && -f $file_dir/fingerprint.json ]] ||
        die "$file_dir has no summary.txt and fingerprint.json (is it a gpu-check output folder?)"
    field() { sed -n "s/^$1: //p" "$file_dir/summary.txt" | head -n 1; }
    machine=$(field machine); stamp=$(field stamp); sha=$(field commit)
    [[ $machine =~ ^[A-Za-z0-9._-]+$ && $stamp =~ ^[0-9TZ]+$ && -n $sha ]] ||
        die "$file_dir/summary.txt does not name its machine, stamp and commit"
    for tarball in "$file_dir"/*.tar.gz; do
        [[ -e $tarball ]] || continue
        # the tarballs hold runs/<machine>/*.json and nothing else; anything else is not ours to unpack
        listing=$(tar -tzf "$tarball" 2>/dev/null) || die "cannot read $tarball"
        if (( $(grep -Evc "^runs/($machine/([^/]+\.json)?)?$" <<<"$listing") )); then
            die "$tarball holds files outside runs/$machine/; not unpacked"
        fi
    done
    dest=$results_root/gpu-check/$machine/$stamp-${sha:0:8}
    mkdir -p "$dest" "$results_root/runs" 2>/dev/null || die "cannot write to $results_root"
    for f in summary.txt fingerprint.json verify.txt cuda-tests.xml gpu-check.log; do
        if [[ -f $file_dir/$f ]]; then
            cp "$file_dir/$f" "$dest/" || die "cannot write to $dest"
        fi
    done
    for tarball in "$file_dir"/*.tar.gz; do
        if [[ -e $tarball ]]; then
            tar -xzf "$tarball" -C "$results_root" --no-same-owner || die "cannot unpack $tarball into $results_root"
        fi
    done
    echo "$me: filed $file_dir into $dest and $results_root/runs/$machine/"
    echo "commit it: git add $dest $results_root/runs/$machine"
    exit 0
fi

# -- input checks: one line and exit 2, before anything is written -----------------------------------
for s in ${stages//,/ }; do
    [[ ,$all_stages, == *",$s,"* ]] || die "--stages: unknown stage $s (stages: $all_stages)"
done
want() { [[ ,$stages, == *",$1,"* ]]; }
if ! [[ $minutes =~ ^[0-9]+$ ]] || (( minutes < 1 || minutes > 60 )); then
    die "--minutes must be a whole number from 1 to 60, got $minutes"
fi
if [[ -n $commit && ! $commit =~ ^[0-9a-f]{7,40}$ ]]; then
    die "--commit must be a commit sha (7 to 40 hex digits), got $commit"
fi
command -v "$py" >/dev/null 2>&1 || die "no interpreter $py"
py=$(command -v "$py")
[[ $py == /* ]] || py=$PWD/$py
# rnnbench runs from this checkout, on the interpreter's own packages
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
# the core needs of rnnbench (pyproject's dependencies that it imports; jsonschema is not imported)
missing=$("$py" - <<'EOF' 2>/dev/null
import importlib.util, sys
need = ["numpy", "tqdm", "threadpoolctl"]
lacking = [n for n in need if importlib.util.find_spec(n) is None]
if sys.version_info < (3, 10):
    lacking.insert(0, "Python >= 3.10")
print(", ".join(lacking) if lacking else "ok")
EOF
) || missing="a working Python"
[[ $missing == ok ]] || die "$py lacks $missing (rnnbench's core needs); nothing was run"
"$py" -c 'import rnnbench.cli' 2>/dev/null || die "$py cannot import rnnbench from $repo"

gpu=$("$py" -c 'from rnnbench.measure.machine import gpu_info; print(gpu_info()["gpu_name"] or "")' 2>/dev/null)
if [[ -z $gpu && $rehearse -eq 0 ]]; then
    die "no NVIDIA GPU visible to NVML or nvidia-smi (--rehearse runs the plumbing without one)"
fi

if [[ -z $commit ]]; then
    commit=$(git -C "$repo" rev-parse HEAD 2>/dev/null) || commit=
fi
if [[ -n $commit ]] && ! git -C "$repo" rev-parse HEAD >/dev/null 2>&1; then
    # no .git here (a lent machine gets the working tree only): the run documents take --commit
    export RNNBENCH_GIT_COMMIT=$commit
fi
[[ -n $commit ]] || commit=unknown
stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [[ -z $out ]]; then
    out=$repo/gpu-check-out
fi
# a file actually created, not `test -w`: root passes that on any mode, and it knows no read-only mount
if ! { mkdir -p "$out" && : >"$out/.gpu-check-write-test"; } 2>/dev/null; then
    die "cannot write to $out"
fi
rm -f "$out/.gpu-check-write-test"
out=$(cd "$out" && pwd)

device=cuda
(( rehearse )) && device=cpu
machine=$("$py" -c 'from rnnbench.measure.machine import machine_name; print(machine_name())')

# -- the clock -----------------------------------------------------------------------------------------
total=$(( minutes * 60 ))
deadline=$(( start + total ))
pack_s=5         # tarballs and the summary, after the last stage
grace_s=10       # after the deadline's SIGINT, a stage may take this long to write its files
now() { date +%s; }
left() { echo $(( deadline - pack_s - grace_s - $(now) )); }

work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$out/gpu-check.log
summary=$work/summary.txt
: >"$log"
status=0
# what an earlier check left in --out would be counted and sent back as this one's
rm -f "$out"/{fingerprint.json,verify.txt,cuda-tests.xml,runs.tar.gz,ab-aa.tar.gz}
say() { echo "$*" | tee -a "$log" >&2; }
note() { echo "$*" >>"$summary"; say "$me: $*"; }

# A job a non-interactive shell starts in the background ignores SIGINT, and an ignored signal stays
# ignored across exec, so Python would install no KeyboardInterrupt handler and `timeout -s INT`
# could not stop a stage gently (`rnnbench run` writes its document on Ctrl-C, pytest its XML).
# Every interpreter call goes through this prefix, which restores SIGINT's default first.
pyx=("$py" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' "$py")

# stage NAME SECONDS CMD...: CMD under a limit of SECONDS (never past the deadline), its output into
# the log and $work/NAME.out; sets stage_rc (124: stopped at the limit) and stage_s, and says which
stage() {
    local name=$1 limit=$2; shift 2
    local avail; avail=$(left)
    (( limit > avail )) && limit=$avail
    stage_rc=-1; stage_s=0
    if (( limit < 5 )); then
        note "$name: skipped, out of time (deadline of $minutes min)"
        return
    fi
    say "== $name (at most ${limit}s): $*"
    local t0; t0=$(now)
    timeout -k "$grace_s" -s INT "$limit" "$@" >"$work/$name.out" 2>&1
    stage_rc=$?
    stage_s=$(( $(now) - t0 ))
    cat "$work/$name.out" >>"$log"
}

# verdict NAME DETAIL: the summary line of the last stage() call
verdict() {
    local name=$1 detail=$2
    case $stage_rc in
        -1) return ;;
        0) note "$name: ok (${stage_s}s) $detail" ;;
        124|130|137) note "$name: stopped at its time limit after ${stage_s}s; what it finished is kept. $detail" ;;
        *) note "$name: FAILED, exit $stage_rc (${stage_s}s; see gpu-check.log) $detail"; status=1 ;;
    esac
}

last_line() { grep -v '^\s*$' "$work/$1.out" 2>/dev/null | grep -E "$2" | tail -n 1; }

# -- header and frameworks --------------------------------------------------------------------------------
{
    echo "machine: $machine"
    echo "stamp: $stamp"
    echo "commit: $commit"
    echo "device: $device${gpu:+ ($gpu)}"
    echo "python: $py ($("$py" -c 'import platform; print(platform.python_version())'))"
    echo "deadline: $minutes min$( (( rehearse )) && echo ', rehearsal without a GPU')"
} >"$summary"
cat "$summary" >>"$log"
# per GPU framework: installed (found the way rnnbench finds it, without importing it), its usual
# mode, then every mode it has (JAX has no eager rows, so `verify --mode eager` would be an empty grid)
frameworks=()
missing_fw=()
declare -A modes_of primary_of
while read -r fw installed primary fw_modes; do
    if [[ $installed == yes ]]; then
        frameworks+=("$fw")
        primary_of[$fw]=$primary
        modes_of[$fw]=$fw_modes
    else
        missing_fw+=("$fw")
        note "$fw: not installed in $py; every stage goes on without it"
    fi
done < <("$py" - <<'EOF'
import importlib
from rnnbench.sweep.grid import PRIMARY_MODE
for fw in ("torch", "tensorflow", "jax"):
    backend = importlib.import_module(f"rnnbench.backends.{fw}").BACKEND
    print(fw, "yes" if backend.installed() else "no", PRIMARY_MODE[fw], " ".join(backend.modes))
EOF
)
fw_list=$(IFS=,; echo "${frameworks[*]}")
if (( ${#frameworks[@]} == 0 )); then
    note "no GPU framework (torch, tensorflow, jax) installed: only the fingerprint and the tests run"
fi
if (( rehearse )); then
    skipped="the frameworks' CUDA runtimes and cuDNN, the CUDA tests (collected, then skipped), TF32 and bf16"
    skipped+=" verification, the CUDA GEMM ladder"
    skipped+=" and 1 GiB bandwidth arrays, the nightly-gpu shapes"
    note "rehearsal: no GPU, so skipped for want of one: $skipped; every other stage runs on tiny CPU grids"
fi

# -- 1. fingerprint ------------------------------------------------------------------------------------
runtime_fws=("${frameworks[@]}")
(( rehearse )) && runtime_fws=()
want fingerprint && stage fingerprint $(( total / 6 < 60 ? total / 6 : 60 )) "${pyx[@]}" - "$out/fingerprint.json" "${runtime_fws[@]}" <<'EOF'
# `rnnbench env --json`, plus each framework's CUDA runtime and cuDNN read in a process of its own
# (the runner's way: a framework that fails to load spoils only its own entry)
import json, subprocess, sys
read = "import json, sys; from rnnbench.measure.machine import framework_runtime as f; print(json.dumps(f(sys.argv[1])))"
start = lambda *a: subprocess.Popen([sys.executable, *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
env, runtimes = start("-m", "rnnbench", "env", "--json"), {fw: start("-c", read, fw) for fw in sys.argv[2:]}
fp = json.loads(env.communicate()[0])
for fw, p in runtimes.items():
    stdout, stderr = p.communicate()
    fp["runtimes"][fw] = json.loads(stdout) if p.returncode == 0 else {"error": (stderr.strip().splitlines() or ["?"])[-1]}
with open(sys.argv[1], "w") as f:
    json.dump(fp, f, indent=1)
keys = ("gpu_name", "gpu_driver", "cuda", "gpu_app_clocks_mhz", "gpu_max_clocks_mhz", "runtimes")
print("fingerprint:", "; ".join(f"{k} {json.dumps(fp.get(k))}" for k in keys))
EOF
want fingerprint && verdict fingerprint "$(last_line fingerprint '^fingerprint:' | cut -c14- | cut -c1-400)"

# -- 2. verify: the numerics contract on the device --------------------------------------------------------
if want verify && (( ${#frameworks[@]} )); then
    if (( rehearse )); then
        extra=(--dtype float32 --fp32 strict --cell lstm --layers 1 --pass forward)
    else
        extra=(--dtype "float32,bfloat16" --fp32 "strict,tf32" --precision mixed)
    fi
    # one call per (framework, mode), eager first (no compiles); each gets an even share of what is
    # left of the stage, and one stopped at its share still prints what it verified. A rehearsal
    # verifies each framework in its usual mode only (inductor's CPU compiles are slow)
    chunks=()
    for mode in eager compiled; do
        for fw in "${frameworks[@]}"; do
            [[ " ${modes_of[$fw]} " == *" $mode "* ]] || continue
            (( rehearse )) && [[ ${primary_of[$fw]} != "$mode" ]] && continue
            chunks+=("$fw $mode")
        done
    done
    verify_end=$(( $(now) + total / 4 ))
    : >"$out/verify.txt"
    for i in "${!chunks[@]}"; do
        read -r fw mode <<<"${chunks[i]}"
        name=verify-$fw-$mode
        stage "$name" $(( (verify_end - $(now)) / (${#chunks[@]} - i) )) "${pyx[@]}" -m rnnbench verify \
            --preset verify --device "$device" --framework "$fw" --mode "$mode" "${extra[@]}" -q
        { echo "== verify $fw $mode (exit $stage_rc)"; cat "$work/$name.out" 2>/dev/null; } >>"$out/verify.txt"
        verdict "verify $fw $mode" \
            "$(last_line "$name" 'passed, .* failed')$(last_line "$name" '^interrupted after' | sed 's/^/; /')"
    done
fi

# -- 3. the CUDA tests ------------------------------------------------------------------------------------------
if want cuda-tests; then
    mapfile -t cuda_files < <(cd "$repo" && grep -l 'mark\.cuda' tests/test_*.py)
    deselect=()
    deselected=
    if (( ${#missing_fw[@]} )); then
        deselect=(-k "$(printf 'not %s and ' "${missing_fw[@]}" | sed 's/ and $//')")
        deselected=" (the missing frameworks' tests deselected)"
    fi
    require=()
    (( rehearse )) || require=(env RNNBENCH_REQUIRE_CUDA=1)
    stage cuda-tests $(( total / 4 )) "${require[@]}" "${pyx[@]}" -m pytest -q -m cuda -p no:cacheprovider \
        --rootdir "$repo" --junitxml="$out/cuda-tests.xml" "${deselect[@]}" "${cuda_files[@]/#/$repo/}"
    verdict cuda-tests "$(last_line cuda-tests '(passed|failed|skipped|error|deselected)')$deselected"
fi

# -- 4. the GEMM ladder and the bandwidth probe --------------------------------------------------------
# One small case per framework and dtype: the runner probes the peak GEMM and STREAM bandwidth of every
# (framework, device, dtype) it meets, and files them in the document's `peaks`.
mkdir -p "$work/results"
if want probes && (( ${#frameworks[@]} )); then
    if (( rehearse )); then
        probe=(--framework torch --dtype float32 --hidden 64 --seq-len 8)
        [[ $fw_list == *torch* ]] || probe=(--framework "${frameworks[0]}" --dtype float32 --hidden 64 --seq-len 8)
    else
        probe=(--framework "$fw_list" --dtype "float32,bfloat16" --hidden 256 --seq-len 32)
    fi
    # the quick preset runs each framework in its usual mode (nightly-gpu would add every mode's compile)
    stage probes $(( total / 6 )) "${pyx[@]}" -m rnnbench run --preset quick --device "$device" "${probe[@]}" \
        --cell lstm --formulation separate --pass forward --batch 16 --rounds 1 --budget 0.1 \
        --results "$work/results" --no-progress --seed 1
    # the only document so far, also when the run was stopped before it could print its path
    probe_doc=$(find "$work/results/runs" -name '*.json' ! -name '.*' 2>/dev/null | head -n 1)
    peaks=
    if [[ -n $probe_doc && -f $probe_doc ]]; then
        peaks=$("$py" - "$probe_doc" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
for p in doc.get("peaks", []):
    print(f"{p['framework']}/{p['device']}/{p['dtype']}: GEMM {p['gflops']:.0f} GFLOP/s at n={p['n']},"
          f" copy {p.get('copy_gbps', float('nan')):.0f} GB/s, triad {p.get('triad_gbps', float('nan')):.0f} GB/s")
for p in doc.get("peak_failures", []):
    print(f"{p['framework']}/{p['device']}/{p['dtype']}: probe FAILED: {p['error']}")
EOF
)
    fi
    verdict probes "$(echo "$peaks" | paste -sd ';' -)"
fi

# -- 5. a nightly-gpu slice sized to the time left -------------------------------------------------------
# LSTM, every formulation, forward and train, fp32, torch in eager mode and JAX (compiled: it has no
# eager rows); torch.compile's compiles would take the whole slice. The shapes grow in tiers, each a
# product grid (so --batch/--hidden/--seq-len can say it), and the largest tier whose estimate fits
# the time left before the A/A runs. One run per framework: every run probes its peaks again.
# CASE_S is a guess at one GPU case (reference, warm-up, 2 rounds of 0.15 s) and RUN_S at a run's
# start and peak probe; the summary prints what the slice took, so the guesses can be replaced.
CASE_S=2
RUN_S=20
slice_fws=()
for fw in torch jax; do [[ " ${frameworks[*]} " == *" $fw "* ]] && slice_fws+=("$fw"); done
if want slice && (( ${#slice_fws[@]} )); then
    if (( rehearse )); then
        tiers=("16 64 8")
        slice_fws=("${slice_fws[0]}")
        slice_args=(--formulation separate --pass forward --dtype float32 --budget 0.05 --rounds 1)
    else
        # batches, hiddens, seq-lens; 1, 3, 6 and 12 shapes
        tiers=("64 1024 128" "16,64,256 1024 128" "16,64,256 256,1024 128" "16,64,256 256,1024 32,128")
        slice_args=(--pass "forward,train" --dtype float32 --budget 0.3 --rounds 2)
    fi
    ab_s=0
    want ab && ab_s=$(( total / 6 ))
    budget_s=$(( $(left) - ab_s ))
    tier=
    for t in "${tiers[@]}"; do
        read -r b h s <<<"$t"
        shapes=$(( $(tr -cd , <<<"$b" | wc -c) + 1 ))
        shapes=$(( shapes * ($(tr -cd , <<<"$h" | wc -c) + 1) * ($(tr -cd , <<<"$s" | wc -c) + 1) ))
        (( ${#slice_fws[@]} * (RUN_S + shapes * 8 * CASE_S) <= budget_s )) && tier=$t
    done
    [[ -n $tier ]] || tier=${tiers[0]}
    read -r b h s <<<"$tier"
    slice_end=$(( $(now) + budget_s ))
    for i in "${!slice_fws[@]}"; do
        fw=${slice_fws[i]}
        stage "slice-$fw" $(( (slice_end - $(now)) / (${#slice_fws[@]} - i) )) "${pyx[@]}" -m rnnbench run \
            --preset nightly-gpu --device "$device" --framework "$fw" --mode "${primary_of[$fw]}" --cell lstm \
            --batch "$b" --hidden "$h" --seq-len "$s" "${slice_args[@]}" --results "$work/results" --no-progress
        verdict "slice $fw ${primary_of[$fw]} (B $b, H $h, T $s)" \
            "$(last_line "slice-$fw" 'measured, ' | sed 's/; results: .*//')"
    done
else
    want slice && note "slice: skipped (neither torch nor jax installed)"
fi

# -- 6. a paired A/A: the false-alarm baseline ---------------------------------------------------------------
# the same interpreter on both sides, interleaved and judged paired as `rnnbench ab` always does; torch
# eager where there is torch (JAX's compiles would eat the A/A's minute), on slice shapes
if want ab && (( ${#slice_fws[@]} )); then
    fw=${slice_fws[0]}
    if (( rehearse )); then
        aa=(--formulation separate --pass forward --batch 16 --hidden 64 --seq-len 8 --rounds 2 --extra-rounds 0
            --budget 0.1)
    else
        aa=(--formulation "separate,concat" --pass forward --batch "16,64" --hidden "256,1024" --seq-len 32
            --rounds 5 --extra-rounds 2 --budget 0.4)
    fi
    mkdir -p "$work/ab"
    stage ab "$(left)" "${pyx[@]}" -m rnnbench ab --base "$py" --new "$py" --preset nightly-gpu --device "$device" \
        --framework "$fw" --mode "${primary_of[$fw]}" --cell lstm --dtype float32 "${aa[@]}" --results "$work/ab" \
        --no-progress
    verdict "ab A/A ($fw ${primary_of[$fw]})" "$(last_line ab '[0-9]+ slower, [0-9]+ faster')"
fi

# -- pack what comes back -----------------------------------------------------------------------------------
# the run documents only: a lock or temporary file of a run killed at the deadline stays behind
pack() {
    local src=$1 dest=$2 docs
    docs=$(cd "$src" 2>/dev/null && find runs -name '*.json' ! -name '.*' 2>/dev/null)
    [[ -n $docs ]] && (cd "$src" && tar -czf "$dest" -T - <<<"$docs")
}
pack "$work/results" "$out/runs.tar.gz"
pack "$work/ab" "$out/ab-aa.tar.gz"
note "took $(( $(now) - start ))s of $total; exit $status"
# a file coming back must stay under 16 MiB; the log is the only one that could grow past it
if (( $(stat -c %s "$log") > 15 * 1024 * 1024 )); then
    tail -c $(( 15 * 1024 * 1024 )) "$log" >"$work/log.tail" && mv "$work/log.tail" "$log"
fi
{ cat "$summary"; echo "files:"; (cd "$out" && stat -c '  %n %s bytes' fingerprint.json verify.txt cuda-tests.xml \
    runs.tar.gz ab-aa.tar.gz gpu-check.log 2>/dev/null); } >"$out/summary.txt"
exit "$status"
