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
# A job's log is shown only when a check fails (a CI summary keeps the head and tail of a test's output).
check() { local file=$1 pattern=$2; shift 2; grep -q -- "$pattern" "$file" || { cat "$file"; fail "$@"; }; }
check "$WORK/job1.out" "2 rank(s) on 1 node(s), launched by srun" "the job did not run 2 ranks under srun"
grep -q '"type":"epoch"' "$WORK/run1/metrics.jsonl" || fail "no epoch in the metrics"
check "$WORK/job1.out" "test accuracy: top-1" "no test accuracy"
tail -n 2 "$WORK/job1.out"

# 2. SIGUSR1 mid-epoch: checkpoint, requeue, resume, complete. LeNet-5 trains an epoch in 1-2 s here
# and the signal takes up to a second through Slurm (more on a loaded machine), so the job is given 6
# epochs: with 2 it could finish before the signal reached it.
epochs=6
job=$(CONVOY_RUN_DIR=$WORK/run2 sbatch --parsable -n 2 -o "$WORK/job2.out" -D "$WORK" "$SRC/launch/slurm/train.sbatch" "$cfg" \
      --set train.epochs=$epochs --set log.interval=1)
for _ in $(seq 300); do
  [[ -f "$WORK/run2/metrics.jsonl" ]] && (( $(grep -c '"type":"step"' "$WORK/run2/metrics.jsonl") >= 20 )) && break
  sleep 0.2
done
scancel --signal=USR1 "$job"
wait_job "$job" 400
check "$WORK/job2.out" "requeueing job $job" "the job did not requeue itself after SIGUSR1" \
  "($(grep -c '"type":"step"' "$WORK/run2/metrics.jsonl") steps logged; did it finish before the signal came?)"
check "$WORK/job2.out" "resumed from .*checkpoint-" "the requeued run did not resume from the checkpoint"
check "$WORK/job2.out" "test accuracy: top-1" "the requeued run did not complete"
(( $(grep -c '"type":"epoch"' "$WORK/run2/metrics.jsonl") == epochs )) || { cat "$WORK/job2.out"; fail "expected $epochs epochs in the metrics"; }
grep -E "requeueing|resumed from" "$WORK/job2.out"

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
