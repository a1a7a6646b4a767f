#!/usr/bin/env bash
# A real Slurm on this machine (slurmctld + slurmd + munge, from a generated slurm.conf): the sbatch
# template trains one epoch on 2 tasks; a second job gets SIGUSR1 mid-epoch (scancel --signal=USR1),
# checkpoints, requeues itself and completes from the checkpoint; launch/scaling.sh --on slurm runs
# its sizes as sbatch jobs and convoy report reads them.
source "$(dirname "$0")/common.sh"
command -v slurmctld >/dev/null || fail "slurm-wlm is not installed (tools/setup.sh installs it)"
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
AuthInfo=cred_expire=10
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
stop_slurm() {
  for f in "$state/slurmctld.pid" "$state/slurmd.pid"; do [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 1
  rm -rf "$WORK"
}
trap stop_slurm EXIT
slurmctld
slurmd
for _ in $(seq 60); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo -h -o %t | grep -q idle || { cat "$state"/*.log; fail "the Slurm node never became idle"; }

fashion_mnist
cfg=$(small_config)
export CONVOY
# Waits for a job to leave the queue for good (requeued jobs come back as pending first).
wait_job() {
  for _ in $(seq "$2"); do
    squeue -h -j "$1" 2>/dev/null | grep -q . || return 0
    sleep 1
  done
  squeue; fail "job $1 did not finish"
}

# 1. One epoch on 2 tasks.
job=$(CONVOY_RUN_DIR=$WORK/run1 sbatch --parsable -n 2 -o "$WORK/job1.out" -D "$WORK" "$SRC/launch/slurm/train.sbatch" "$cfg")
wait_job "$job" 300
cat "$WORK/job1.out"
grep -q "2 rank(s) on 1 node(s), launched by srun" "$WORK/job1.out" || fail "the job did not run 2 ranks under srun"
grep -q '"type":"epoch"' "$WORK/run1/metrics.jsonl" || fail "no epoch in the metrics"
grep -q "test accuracy: top-1" "$WORK/job1.out" || fail "no test accuracy"

# 2. SIGUSR1 mid-epoch: checkpoint, requeue, resume, complete.
job=$(CONVOY_RUN_DIR=$WORK/run2 sbatch --parsable -n 2 -o "$WORK/job2.out" -D "$WORK" "$SRC/launch/slurm/train.sbatch" "$cfg" \
      --set train.epochs=2 --set log.interval=1)
for _ in $(seq 300); do
  [[ -f "$WORK/run2/metrics.jsonl" ]] && (( $(grep -c '"type":"step"' "$WORK/run2/metrics.jsonl") >= 20 )) && break
  sleep 0.2
done
scancel --signal=USR1 "$job"
wait_job "$job" 400
cat "$WORK/job2.out"
grep -q "requeueing job $job" "$WORK/job2.out" || fail "the job did not requeue itself after SIGUSR1"
grep -q "resumed from .*checkpoint-" "$WORK/job2.out" || fail "the requeued run did not resume from the checkpoint"
grep -q "test accuracy: top-1" "$WORK/job2.out" || fail "the requeued run did not complete"
(( $(grep -c '"type":"epoch"' "$WORK/run2/metrics.jsonl") == 2 )) || fail "expected 2 epochs in the metrics"

# 3. The scaling driver under Slurm: one sbatch --wait per size (1 and 2 tasks on this one node), then the report.
"$SRC/launch/scaling.sh" --out "$WORK/scaling" --on slurm --ranks 1,2 --ranks-per-node 2 --steps 3 --batch 16 \
  --allreduce-max-mb 1 > "$WORK/scaling.log" 2>&1 || { cat "$WORK/scaling.log" "$WORK"/scaling/n*/*.log; fail "the driver failed under Slurm"; }
cat "$WORK/scaling.log"
for n in 1 2; do
  grep -Eq "\"ranks\":$n[,}]" "$WORK/scaling/n$n/bench.json" || fail "the $n-task job did not run $n ranks"
  grep -q "srun --mpi=pmix" "$WORK/scaling/n$n/run.json" || fail "run.json does not name the srun command"
done
"$CONVOY" report "$WORK/scaling/n1" "$WORK/scaling/n2" --out "$WORK/scaling/report" --no-plots || fail "convoy report failed"
grep -Eq '^\| 2 \| 1 \| slurm \|' "$WORK/scaling/report/report.md" || fail "the report has no 2-task Slurm row"
echo "slurm: one-epoch job ran; preempted job checkpointed, requeued and completed; the scaling driver ran under Slurm"
