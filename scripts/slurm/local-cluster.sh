#!/usr/bin/env bash
# A throwaway single-node SLURM cluster (munged + slurmctld + slurmd) under one
# directory, for testing scripts/slurm/*.sbatch without a real cluster.
#
#   scripts/slurm/local-cluster.sh start DIR   # prints the SLURM_CONF path on success
#   scripts/slurm/local-cluster.sh stop DIR
#
# Everything (config, state, logs, sockets, pid files) lives in DIR; nothing in
# /etc is changed. The node advertises one fake GPU per array task (gres.conf
# with no device file), so `#SBATCH --gres=gpu:1` schedules as it would on a GPU
# node. Needs Debian's slurm-wlm and munge (`make slurm`). Runs as the current
# user (root in containers: munged is started with --force for that).
set -euo pipefail

cmd=${1:?usage: local-cluster.sh start|stop DIR}
dir=${2:?usage: local-cluster.sh start|stop DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

stop() {
    for name in slurmd slurmctld munged; do
        if [[ -f "$dir/$name.pid" ]]; then
            kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
            rm -f "$dir/$name.pid"
        fi
    done
}

if [[ $cmd == stop ]]; then
    stop
    exit 0
fi
[[ $cmd == start ]] || { echo "local-cluster.sh: unknown command $cmd" >&2; exit 2; }

for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "local-cluster.sh: $tool not found (make slurm installs slurm-wlm and munge)" >&2; exit 3; }
done

host=$(hostname -s)
user=$(id -un)
cpus=$(nproc)
gpus=${LOCAL_CLUSTER_GPUS:-3}
port=${LOCAL_CLUSTER_PORT:-$((17000 + RANDOM % 2000))}
mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
chmod 700 "$dir/munge"

# munge: its own key, socket and seed, so a system munged (if any) is untouched
if [[ ! -f "$dir/munge/munge.key" ]]; then
    head -c 1024 /dev/urandom >"$dir/munge/munge.key"
fi
chmod 600 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"

# stand-in device files (links to /dev/null): slurmd only checks they are devices
mkdir -p "$dir/dev"
for ((i = 0; i < gpus; i++)); do ln -sf /dev/null "$dir/dev/gpu$i"; done
cat >"$dir/gres.conf" <<CONF
AutoDetect=off
NodeName=$host Name=gpu File=$dir/dev/gpu[0-$((gpus - 1))]
CONF
cat >"$dir/slurm.conf" <<CONF
ClusterName=rnnbench-test
SlurmctldHost=$host
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
GresTypes=gpu
SlurmdParameters=config_overrides
NodeName=$host CPUs=$cpus Gres=gpu:$gpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF

export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

# wait for the node to come up (idle) before anyone submits
for _ in $(seq 60); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
    if [[ $state == idle* || $state == mixed* ]]; then
        echo "$SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
echo "local-cluster.sh: the node did not become idle (state: ${state:-none}); see $dir/log" >&2
tail -n 5 "$dir"/log/*.log >&2 || true
stop
exit 4
