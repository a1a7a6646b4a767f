#!/usr/bin/env bash
# Preemption soak through the real Slurm requeue path. A 2-task LeNet-5 job (train.deterministic,
# launch/slurm/train.sbatch) gets SIGUSR1 (scancel --signal=USR1: what Slurm's --signal sends before a
# preemption or the time limit) once it has trained EVERY steps since it resumed, PREEMPTIONS times
# (default 20 every 200; the signal takes 0.3-1 s through Slurm, so a few hundred steps more are trained).
# Each time the ranks agree to stop, rank 0 checkpoints, convoy exits 75, the job requeues itself, waits
# out Slurm's requeue delay and resumes from that checkpoint. Its final parameters, BN buffers and
# momentum must equal those of the same job run uninterrupted, bit for bit, and no step may be trained
# twice. Prints the count and the time lost per preemption: the soaked job's extra wall time over the
# uninterrupted one, and where it goes (stop and checkpoint; Slurm's requeue; start-up and resume).
# Usage: preempt_soak.sh CONVOY SOURCE_DIR [PREEMPTIONS] [EVERY]
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/slurm_common.sh"
want=${3:-20} every=${4:-200}
# Slurm's shortest requeue wait (cred_expire) that still works here: the soak measures convoy, not it.
export SLURM_CRED_EXPIRE=${SLURM_CRED_EXPIRE:-5}
start_slurm
fashion_mnist
cat > "$WORK/soak.yaml" <<YAML
model: {name: lenet5}
data: {dir: $WORK/data, threads: 1}
train: {epochs: 20, batch_size: 64, base_lr: 0.1, warmup_epochs: 0.2, schedule: cosine, seed: 11, threads: 1,
        deterministic: true}
eval: {every_epochs: 0}
log: {interval: 10}
YAML
export CONVOY
now() { date +%s.%N; }
# The newest global step in a run's metrics (0 before the first step line).
step_of() { grep -o '"global_step":[0-9]*' "$1/metrics.jsonl" 2>/dev/null | tail -1 | grep -o '[0-9]*$' || echo 0; }
count() { grep -c -- "$1" "$2" 2>/dev/null || true; }
submit() { CONVOY_RUN_DIR=$WORK/$1 sbatch --parsable -n 2 -o "$WORK/$1.out" -D "$WORK" "$SRC/launch/slurm/train.sbatch" "$WORK/soak.yaml"; }

# The uninterrupted job: the reference for the weights and the time.
t=$(now)
job=$(submit plain)
wait_job "$job" 600
plain_s=$(awk -v a="$t" -v b="$(now)" 'BEGIN { print b - a }')
grep -q "test accuracy: top-1" "$WORK/plain.out" || { cat "$WORK/plain.out"; fail "the uninterrupted job did not complete"; }

# The soaked job: preempted every $every steps of its own training (from where it resumed).
t=$(now)
job=$(submit soak)
out=$WORK/soak.out
done_n=0 next=$every stop_s=0 requeue_s=0 start_s=0 first_s=0 from=0 trained=0
while ((done_n < want)); do
  while (($(step_of "$WORK/soak") < next)); do
    squeue -h -j "$job" | grep -q . || { cat "$out"; fail "the job ended after $done_n of $want preemptions: make the run longer"; }
    sleep 0.05
  done
  t0=$(now)
  scancel --signal=USR1 "$job"
  for ((i = 0; $(count "requeueing job" "$out") <= done_n; ++i)); do
    ((i < 1200)) || { cat "$out"; fail "preemption $((done_n + 1)): the job did not checkpoint and requeue within 60 s"; }
    sleep 0.05
  done
  t1=$(now)
  # The batch script's first line for the requeued run: Slurm started the job again.
  for ((i = 0; $(count "^convoy: job [0-9]* run " "$out") <= done_n + 1; ++i)); do
    ((i < 2400)) || { squeue; cat "$out" "$state/slurmctld.log"; fail "preemption $((done_n + 1)): not started again within 120 s"; }
    sleep 0.05
  done
  tb=$(now)
  for ((i = 0; $(count "resumed from" "$out") <= done_n; ++i)); do
    ((i < 2400)) || { squeue; cat "$out" "$state/slurmctld.log"; fail "preemption $((done_n + 1)): no resume within 120 s"; }
    sleep 0.05
  done
  t2=$(now)
  resumed=$(grep "resumed from " "$out" | tail -1 | grep -o "global step [0-9]*" | grep -o "[0-9]*$")
  for ((i = 0; $(step_of "$WORK/soak") <= resumed; ++i)); do
    ((i < 1200)) || { cat "$out"; fail "preemption $((done_n + 1)): no step within 60 s of the resume"; }
    sleep 0.02
  done
  t3=$(now)
  done_n=$((done_n + 1))
  stop_s=$(awk -v s="$stop_s" -v a="$t0" -v b="$t1" 'BEGIN { print s + b - a }')
  requeue_s=$(awk -v s="$requeue_s" -v a="$t1" -v b="$tb" 'BEGIN { print s + b - a }')
  start_s=$(awk -v s="$start_s" -v a="$tb" -v b="$t2" 'BEGIN { print s + b - a }')
  first_s=$(awk -v s="$first_s" -v a="$t2" -v b="$t3" 'BEGIN { print s + b - a }')
  # Resumed at the step it stopped at: nothing is trained twice.
  (($(count "preemption signal: checkpointing" "$out") == done_n)) || { cat "$out"; fail "preemption $done_n: no checkpoint on the signal"; }
  # The last checkpoint before this requeue (the resumed run may have written an epoch's since).
  saved=$(awk '/info: checkpoint / { c = $0 } /requeueing job/ { s = c } END { print s }' "$out" |
          grep -o "global step [0-9]*" | grep -o "[0-9]*$")
  [[ -n $saved && $resumed == "$saved" ]] || { cat "$out"; fail "preemption $done_n: resumed at step $resumed, but the stop checkpoint was step $saved"; }
  trained=$((trained + saved - from)) from=$resumed next=$((resumed + every))
done
wait_job "$job" 900
soak_s=$(awk -v a="$t" -v b="$(now)" 'BEGIN { print b - a }')
grep -q "test accuracy: top-1" "$out" || { cat "$out"; fail "the soaked job did not complete"; }
(($(count "requeueing job" "$out") == want)) || { cat "$out"; fail "expected $want requeues"; }

# Bit for bit: every dataset of the two final checkpoints, and their stored checksums.
/usr/bin/python3 - "$WORK/plain/checkpoints" "$WORK/soak/checkpoints" <<'PY' || fail "the soaked job's final weights differ from the uninterrupted job's"
import glob, sys, h5py, numpy as np
a, b = (h5py.File(sorted(glob.glob(d + "/checkpoint-*.h5"))[-1], "r") for d in sys.argv[1:3])
assert a.attrs["global_step"] == b.attrs["global_step"], (a.attrs["global_step"], b.attrs["global_step"])
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
for n in names:
    if not np.array_equal(a[n][()], b[n][()]):
        sys.exit(f"{n} differs: largest difference {np.max(np.abs(a[n][()] - b[n][()]))}")
assert a.attrs["sha256"] == b.attrs["sha256"]
print(f"final weights: {len(names)} tensors equal bit for bit at global step {a.attrs['global_step']}")
PY
awk -v n="$want" -v p="$plain_s" -v s="$soak_s" -v st="$stop_s" -v rq="$requeue_s" -v su="$start_s" -v f="$first_s" \
    -v e="$((trained / want))" -v c="$SLURM_CRED_EXPIRE" 'BEGIN {
  printf "preemption soak: %d preemptions (every %.0f steps) through Slurm requeue, no step trained twice, final weights equal bit for bit\n", n, e
  printf "  time lost per preemption (from the signal to the next step trained): %.2f s =\n", (st + rq + su + f) / n
  printf "    %.2f s stop, checkpoint, exit + %.2f s requeue (Slurm waits cred_expire = %d s) + %.2f s start-up and checkpoint load + %.2f s to the first step\n", st / n, rq / n, c, su / n, f / n
  printf "  uninterrupted job %.1f s, soaked job %.1f s: %.1f s more per preemption (beside the training time'"'"'s own noise)\n", p, s, (s - p) / n
}'
