#!/usr/bin/env bash
# Private single-node Slurm (22.05) cluster; every file lives under DIR.
#   slurm-cluster.sh start DIR   # munged + slurmctld + slurmd, waits for node idle
#   slurm-cluster.sh stop DIR    # kills the daemons by the pids recorded in DIR/pids
# Env overrides: SLURMCTLD_PORT (16817), SLURMD_PORT (16818), START_TIMEOUT (30 s),
#   SLURM_REALMEM_MB (90% of RAM), SLURM_MINJOBAGE (300), SLURM_SCHED_PARAMS.
# Needs root (slurmd/slurmstepd); jobs submitted as root run as root.
set -euo pipefail

usage() { echo "usage: $0 {start|stop} DIR" >&2; exit 2; }
[ $# -eq 2 ] && { [ "$1" = start ] || [ "$1" = stop ]; } || usage
cmd=$1
[ -d "$2" ] || [ "$cmd" != stop ] || exit 0     # stop: nothing to do
mkdir -p "$2"
D=$(cd "$2" && pwd)          # absolute path: it ends up in slurm.conf
# unix socket paths are limited to ~107 bytes
[ ${#D} -lt 80 ] || { echo "DIR path too long for munge's unix socket: $D" >&2; exit 1; }
PIDS=$D/pids
PART=debug

alive() { local p; for p; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }

# SIGTERM the given pids, wait until all are gone, SIGKILL stragglers after ~10 s.
term_wait() {
    local i
    kill "$@" 2>/dev/null || true
    for i in $(seq 100); do alive "$@" || return 0; sleep 0.1; done
    echo "slurm-cluster: SIGKILL to stragglers among: $*" >&2
    kill -9 "$@" 2>/dev/null || true
}

# Recorded pid of daemon $1, only if still alive as that program (pid reuse).
pid_of() {
    local name pid
    while read -r name pid; do
        [ "$name" = "$1" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
    done <"$PIDS"
    return 0
}

# stop: cancel jobs first (their slurmstepd would outlive slurmd), then both
# slurm daemons together, then munged (the others talk to it until the end).
stop() {
    [ -f "$PIDS" ] || return 0
    local i ctld d m
    ctld=$(pid_of slurmctld) d=$(pid_of slurmd) m=$(pid_of munged)
    if [ -n "$ctld" ] && SLURM_CONF=$D/slurm.conf timeout 5 scancel --partition=$PART 2>/dev/null; then
        for i in $(seq 100); do   # until no job is left, not even COMPLETING
            [ -z "$(SLURM_CONF=$D/slurm.conf timeout 5 squeue -h 2>/dev/null)" ] && break; sleep 0.1
        done
    fi
    # shellcheck disable=SC2086  # (word splitting drops empty ones)
    [ -z "$ctld$d" ] || term_wait $ctld $d
    [ -z "$m" ] || term_wait "$m"
    rm -f "$PIDS"
}

# On failure: show the logs, stop whatever was started, exit non-zero.
fail() {
    echo "slurm-cluster: $*" >&2
    local f
    for f in "$D"/log/*.out; do   # each daemon's stderr (with -D/-F: its whole log)
        [ -f "$f" ] && { echo "==== $f" >&2; tail -n 15 "$f" >&2; }
    done
    stop
    exit 1
}

# Start "$@" in the background (must stay in the foreground itself), record its pid.
launch() {
    local name=$1; shift
    "$@" >>"$D/log/$name.out" 2>&1 </dev/null &
    echo "$name $!" >>"$PIDS"
}

start() {
    [ -f "$PIDS" ] && { echo "$PIDS exists: already running? run '$0 stop $D' first" >&2; exit 1; }
    local host cpus mem ctld_port=${SLURMCTLD_PORT:-16817} d_port=${SLURMD_PORT:-16818}
    host=$(hostname -s)
    cpus=$(nproc)
    mem=${SLURM_REALMEM_MB:-$(awk '/MemTotal/ {print int($2/1024*0.9)}' /proc/meminfo)}
    # munged wants the dirs of socket/key/log not group/world-writable, and the
    # socket dir (and its parents) world-searchable, hence 0755.
    chmod 0755 "$D"
    rm -rf "$D/state" "$D/spool" "$D/run"      # no state from an earlier run
    mkdir -p -m 0755 "$D/munge" "$D/log" "$D/state" "$D/spool" "$D/run"

    # Fresh munge key (mode 0400, owned by the user running munged).
    rm -f "$D/munge/munge.key"
    mungekey -c -k "$D/munge/munge.key"
    chmod 0400 "$D/munge/munge.key"

    cat >"$D/slurm.conf" <<EOF
ClusterName=private
# everything over loopback: independent of what $host resolves to
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# AuthInfo socket= is used by both auth/munge and cred/munge in 22.05
AuthInfo=socket=$D/munge/munge.sock
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# schedule freed CPUs at once instead of after up to 3 s
SchedulerParameters=${SLURM_SCHED_PARAMS-batch_sched_delay=0}
# sbatch --wait polls every 2 s only if MinJobAge < 6, else 2 s then 8 s, 32 s...
MinJobAge=${SLURM_MINJOBAGE:-300}
SelectType=select/cons_tres
# CR_CPU: one task per CPU even with hyperthreads (CR_Core would give whole cores)
SelectTypeParameters=CR_CPU
ReturnToService=2
MaxArraySize=10001
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PART Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

    # Daemons all run in the foreground so that $! is the daemon itself
    # (munged -F logs to stderr, i.e. log/munged.out, not to --log-file).
    launch munged munged -F --socket="$D/munge/munge.sock" --key-file="$D/munge/munge.key" \
        --pid-file="$D/munge/munged.pid" --log-file="$D/log/munged.log" \
        --seed-file="$D/munge/munged.seed"
    local i
    for i in $(seq 50); do [ -S "$D/munge/munge.sock" ] && break; sleep 0.1; done  # <= 5 s
    [ -S "$D/munge/munge.sock" ] || fail "munged did not create its socket"

    launch slurmctld slurmctld -D -f "$D/slurm.conf"
    launch slurmd slurmd -D -f "$D/slurm.conf"

    # Bounded wait until the node reports idle.
    local t=${START_TIMEOUT:-30} state= name pid
    local deadline=$((SECONDS + t))
    while [ "$state" != idle ]; do
        while read -r name pid; do
            kill -0 "$pid" 2>/dev/null || fail "$name (pid $pid) died"
        done <"$PIDS"
        [ $SECONDS -lt $deadline ] || fail "node not idle after ${t}s (state: '${state:-no answer}')"
        sleep 0.2
        state=$(SLURM_CONF=$D/slurm.conf timeout 5 sinfo -h -o %t 2>/dev/null || true)
    done
    echo "slurm cluster up in $D (node $host, $cpus CPUs)"
    echo "export SLURM_CONF=$D/slurm.conf"
}

case $cmd in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
