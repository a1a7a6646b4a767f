#!/usr/bin/env bash
# A real Slurm on this machine (slurmctld + slurmd + munge, from a generated slurm.conf): the sbatch
# template trains one epoch on 2 tasks; a second job gets SIGUSR1 mid-epoch (scancel --signal=USR1),
# checkpoints, requeues itself and completes from the checkpoint; launch/scaling.sh --on slurm runs
# its sizes as sbatch jobs and convoy report reads them.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/slurm_common.sh"
start_slurm
fashion_mnist
cfg=$(small_config)
export CONVOY
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
