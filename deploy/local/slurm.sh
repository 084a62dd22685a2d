#!/usr/bin/env bash
# A real one-node SLURM on this machine, for development and the test suite (Debian/Ubuntu, root).
#
#   deploy/local/slurm.sh install   # apt-get the Debian packages slurmctld, slurmd, slurm-client, munge
#   deploy/local/slurm.sh start     # install if needed, write slurm.conf for this host, start munged,
#                                   # slurmctld and slurmd, wait until the node is idle
#   deploy/local/slurm.sh stop      # stop the three daemons
#   deploy/local/slurm.sh status    # sinfo
#
# The node is this host (hostname -s, reached at 127.0.0.1 so an unresolvable hostname does not
# matter) with all its CPUs and 90% of its memory, one partition
# "debug". Jobs share the node core by core (select/cons_tres), so N one-core worker jobs run at once.
set -euo pipefail

NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
CONF=/etc/slurm/slurm.conf
LOGS=/var/log/slurm

need_root() {
    if [ "$(id -u)" != 0 ]; then echo "slurm.sh: $1 needs root" >&2; exit 2; fi
}

install() {
    need_root install
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return 0
    fi
    if ! command -v apt-get >/dev/null; then echo "slurm.sh: no apt-get (Debian/Ubuntu only)" >&2; exit 2; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

configure() {
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGS" /run/munge
    cat >"$CONF" <<CONF
# written by sfrdask deploy/local/slurm.sh: a one-node cluster for development and tests
ClusterName=sfrdask-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 0700 /etc/munge
    chmod 0400 /etc/munge/munge.key
}

start() {
    install
    configure
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
        case "$state" in
            idle|mix|alloc) echo "slurm.sh: node $NODE ($CPUS CPUs, $MEM_MB MB) is $state"; return 0 ;;
            down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
        esac
        sleep 1
    done
    echo "slurm.sh: the node did not become idle; see $LOGS/slurmctld.log and $LOGS/slurmd.log" >&2
    sinfo -N -l >&2 || true
    exit 1
}

stop() {
    need_root stop
    pkill -x slurmd || true
    pkill -x slurmctld || true
    pkill -x munged || true
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) sinfo -N -l ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
