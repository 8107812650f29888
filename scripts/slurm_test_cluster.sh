#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the end-to-end test of the
# slurm_gpu profile. Needs root (Debian's slurmctld, slurmd, munge). GPUs are faked with
# character devices so that `--gpus=1` requests are accepted on a GPU-less node.
#
#   scripts/slurm_test_cluster.sh install   apt-get the daemons if they are missing
#   scripts/slurm_test_cluster.sh up        write configs, start munged, slurmctld, slurmd
#   scripts/slurm_test_cluster.sh down      stop the daemons this script started (by PID) and
#                                           remove the configs it wrote (else every later
#                                           `snakemake` waits ~9 s: the SLURM plugin asks a
#                                           controller that is gone, `scontrol show config`)
#   scripts/slurm_test_cluster.sh logs      print the daemons' logs
#
# The node is called localhost (slurmd -N localhost), so nothing depends on the hostname.
# No accounting database: the profile must use `slurm-status-command: squeue`.
set -euo pipefail

NODE=localhost
NGPU="${SACNN_TEST_GPUS:-2}"
MEM_MB="${SACNN_TEST_MEM_MB:-8000}"
RUN=/run/sacnn-slurm
CONF=/etc/slurm
MARK="# written by sacnn scripts/slurm_test_cluster.sh (removed by its 'down')"

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
      && command -v munged >/dev/null && command -v sbatch >/dev/null; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

up() {
  install
  mkdir -p "$RUN" /run/munge /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd "$CONF"
  for i in $(seq 0 $((NGPU - 1))); do
    [ -c "$RUN/gpu$i" ] || mknod "$RUN/gpu$i" c 1 3   # same numbers as /dev/null
  done
  cat > "$CONF/slurm.conf" <<EOF
$MARK
ClusterName=sacnn-test
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=300
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$MEM_MB Gres=gpu:fake:$NGPU State=UNKNOWN
PartitionName=gpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat > "$CONF/gres.conf" <<EOF
$MARK
AutoDetect=off
NodeName=$NODE Name=gpu Type=fake File=$RUN/gpu[0-$((NGPU - 1))]
EOF
  chown munge:munge /run/munge
  chown slurm:slurm /var/log/slurm /var/lib/slurm/slurmctld
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey -c -f
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  stop_daemons >/dev/null 2>&1 || true
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$RUN/munged.pid"
  /usr/sbin/slurmctld -c           # -c: forget jobs of earlier test runs
  /usr/sbin/slurmd -N "$NODE"
  for _ in $(seq 1 150); do
    [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ] && break
    sleep 0.2
  done
  if [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" != idle ]; then
    echo "slurm node did not become idle" >&2
    logs >&2
    exit 1
  fi
  sinfo -o '%P %a %D %T %N %G'
}

stop_pid() {
  local f=$1 p
  p=$(cat "$f" 2>/dev/null) || return 0
  if [ -n "$p" ] && kill "$p" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p"
  fi
  rm -f "$f"
}

stop_daemons() {
  stop_pid "$RUN/slurmd.pid"
  stop_pid "$RUN/slurmctld.pid"
  stop_pid "$RUN/munged.pid"
}

down() {
  stop_daemons
  for f in "$CONF/slurm.conf" "$CONF/gres.conf"; do
    if [ -f "$f" ] && head -n 1 "$f" | grep -qF "$MARK"; then rm -f "$f"; fi
  done
}

logs() {
  for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; do
    echo "== $f (last 40 lines)"
    tail -n 40 "$f" 2>/dev/null || true
  done
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  logs) logs ;;
  *) echo "usage: $0 install|up|down|logs" >&2; exit 2 ;;
esac
