#!/usr/bin/env bash
# Two ranks on the device given as the third argument (cpu, or cpu-strict, where any host read of device
# memory faults): train with evaluation and a checkpoint every epoch, get SIGTERM mid-epoch (as Slurm
# preempts a job: every task gets the signal), checkpoint on every rank's agreement and exit 75; then
# --resume auto finishes the run from that checkpoint and prints the test accuracy. Then `convoy bench
# train` under mpirun on the same device.
source "$(dirname "$0")/common.sh"
device=${3:?usage: preempt_resume.sh CONVOY SOURCE_DIR DEVICE}
fashion_mnist
cfg=$(small_config)
run=$WORK/run
"$SRC/launch/convoy-mpirun" -np 2 "$CONVOY" train --config "$cfg" --out "$run" --set train.device="$device" \
  --set train.epochs=2 --set log.interval=5 --set data.val_split=val > "$WORK/first.log" 2>&1 &
launcher=$!
# Into the second epoch (the first one ended with an evaluation and a checkpoint), then preempt.
for _ in $(seq 1200); do
  [[ -f "$run/metrics.jsonl" ]] && grep -q '"type":"epoch"' "$run/metrics.jsonl" &&
    (( $(grep -c '"type":"step"' "$run/metrics.jsonl") >= 200 )) && break
  sleep 0.1
done
pids=$(pgrep -f -- "^$CONVOY train .*--out $run") || true  # the ranks, not mpirun
[[ -n "$pids" ]] || { kill $launcher; cat "$WORK/first.log"; fail "the ranks were not found"; }
kill -TERM $pids
set +e
wait $launcher
code=$?
set -e
cat "$WORK/first.log"
[[ $code == 75 ]] || fail "the preempted job exited $code, not 75"
grep -q "preemption signal: checkpointing at epoch 2" "$WORK/first.log" || fail "no checkpoint in epoch 2"
grep '"type":"epoch"' "$run/metrics.jsonl" | grep -q '"top1"' || fail "the first epoch was not evaluated"
checkpoints=$(ls "$run/checkpoints" | wc -l)
(( checkpoints == 2 )) || fail "expected the epoch-1 and the preemption checkpoints, found $checkpoints"

"$SRC/launch/convoy-mpirun" -np 2 "$CONVOY" train --config "$cfg" --out "$run" --set train.device="$device" \
  --set train.epochs=2 --set log.interval=5 --resume auto > "$WORK/second.log" 2>&1 || { cat "$WORK/second.log"; fail "the resumed run failed"; }
cat "$WORK/second.log"
grep -q "resumed from $run/checkpoints/checkpoint-" "$WORK/second.log" || fail "it did not resume"
grep -q "epoch 2 step 938/938" "$WORK/second.log" || fail "the resumed run did not finish epoch 2"
! grep -q "epoch 1 step" "$WORK/second.log" || fail "the resumed run trained epoch 1 again"
grep -q "test accuracy: top-1" "$WORK/second.log" || fail "no test accuracy"

"$SRC/launch/convoy-mpirun" -np 2 "$CONVOY" bench train --model resnet8 --batch 16 --image-size 28 --channels 1 \
  --classes 10 --steps 5 --warmup 1 --device "$device" --json > "$WORK/bench.log" 2>&1 || { cat "$WORK/bench.log"; fail "bench train failed"; }
grep -q "\"device\":\"$device\"" "$WORK/bench.log" || { cat "$WORK/bench.log"; fail "bench train did not report the device"; }
grep -q '"ranks":2' "$WORK/bench.log" || fail "bench train did not run 2 ranks"
echo "2 ranks on $device: evaluated, checkpointed, preempted, resumed to the end; bench train ran"
