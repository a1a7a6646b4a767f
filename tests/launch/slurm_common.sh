# A real Slurm on this machine for the launch tests (after common.sh): slurmctld + slurmd + munge from a
# generated slurm.conf under $WORK/slurm, stopped when the test exits. Requeued jobs wait cred_expire
# (here SLURM_CRED_EXPIRE, default 10 s, not Slurm's 120) before they may start again, and the
# scheduler looks at pending jobs every second, so a requeue costs seconds rather than minutes.
#   start_slurm            the daemons up and the node idle; exports SLURM_CONF
#   wait_job JOB SECONDS   until JOB has ended for good (requeued jobs come back as pending)
start_slurm() {
  command -v slurmctld >/dev/null || fail "slurm-wlm is not installed (tools/setup.sh installs it)"
  local host
  host=$(hostname)
  state=$WORK/slurm
  mkdir -p "$state/slurmd" "$state/state"

  # munge: the key, then the daemon (left running: other tests or users may share it).
  if [[ ! -f /etc/munge/munge.key ]]; then mungekey -c; fi
  chown -R munge: /etc/munge; mkdir -p /run/munge; chown munge: /run/munge
  pgrep -x munged >/dev/null || runuser -u munge -- munged

  cat > "$state/slurm.conf" <<CONF
ClusterName=convoytest
SlurmctldHost=$host
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=${SLURM_CRED_EXPIRE:-10}
# Pending jobs whose wait ended are started within a second, not at the next 60 s pass.
SchedulerParameters=sched_interval=1,bf_interval=1
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmdSpoolDir=$state/slurmd
StateSaveLocation=$state/state
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$state/slurm.conf
  trap stop_slurm EXIT
  slurmctld
  slurmd
  for _ in $(seq 60); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 1; done
  sinfo -h -o %t | grep -q idle || { cat "$state"/*.log; fail "the Slurm node never became idle"; }
}

stop_slurm() {
  for f in "$state/slurmctld.pid" "$state/slurmd.pid"; do [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 1
  rm -rf "$WORK"
}

wait_job() {
  # squeue -t all keeps a finished job listed (for MinJobAge) with its end state; a requeued job passes
  # through REQUEUED and PENDING and is not finished. An squeue that fails for any other reason than a
  # job the controller has forgotten (a busy slurmctld times out) is asked again, not taken as done.
  local s
  for _ in $(seq "$2"); do
    if s=$(squeue -h -j "$1" -t all -o %T 2>&1); then
      case $s in
        ""|COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) return 0 ;;
      esac
    elif [[ $s == *"Invalid job id"* ]]; then
      return 0
    fi
    sleep 1
  done
  squeue; fail "job $1 did not finish"
}
