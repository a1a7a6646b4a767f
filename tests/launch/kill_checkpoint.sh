#!/usr/bin/env bash
# Crash-safe checkpoints, tested by killing: `convoy train` (ResNet-18 on Fashion-MNIST, a checkpoint of
# about 90 MB every 2 steps) is killed with SIGKILL at a random moment while it writes a checkpoint,
# again and again, until TRIALS kills (default 50) landed while the temporary file existed. Every next
# run starts with --resume auto, which must resume from a complete, verified checkpoint: never a torn
# one, never a damaged one passed over, never from scratch once one was written, and never from an
# older step than the run before. Usage: kill_checkpoint.sh CONVOY SOURCE_DIR [TRIALS]
source "$(dirname "$0")/common.sh"
want=${3:-50}
fashion_mnist
cat > "$WORK/kill.yaml" <<YAML
model: {name: resnet18}
data: {dir: $WORK/data, threads: 1}
train: {epochs: 100, batch_size: 32, base_lr: 0.05, warmup_epochs: 0, seed: 3, threads: 1}
eval: {every_epochs: 0}
checkpoint: {every_epochs: 0, every_steps: 2, keep: 2}
log: {interval: 1000}
YAML
run=$WORK/run ckpt=$WORK/run/checkpoints
now_ms() { date +%s%3N; }
# How long a checkpoint write takes on this machine now (about 100 ms when it is idle, several times
# that beside other work): a first run writes one, watched. The kills then land at a random moment
# within 1.2 times that: most land inside a write, and the rest let writes complete.
started=$(date +%s)
"$CONVOY" train --config "$WORK/kill.yaml" --out "$run" --stop-at-step 2 > "$WORK/first.log" 2>&1 &
pid=$! appeared=""
while kill -0 $pid 2>/dev/null; do
  if compgen -G "$ckpt/*.h5.tmp" >/dev/null; then
    [[ -n $appeared ]] || appeared=$(now_ms)
  elif [[ -n $appeared ]]; then
    break
  fi
  sleep 0.002
done
write_ms=$(($(now_ms) - ${appeared:-$(now_ms)}))
set +e; wait $pid; rc=$?; set -e
[[ $rc == 75 && -n $appeared ]] || { cat "$WORK/first.log"; fail "the first run did not write its checkpoint (exit $rc)"; }
((write_ms >= 20)) || write_ms=20
landed=0 trials=0 last_step=2
while ((landed < want)); do
  ((trials < 4 * want)) || fail "only $landed of $trials kills landed during a checkpoint write"
  touch "$WORK/trial-start"
  "$CONVOY" train --config "$WORK/kill.yaml" --out "$run" --resume auto > "$WORK/trial.log" 2>&1 &
  pid=$!
  # Wait for this run's checkpoint temporary file (a killed run's stays behind until the next save
  # removes it), then kill somewhere inside its write (which takes about 100 ms here).
  for ((i = 0; i < 15000; ++i)); do
    tmp=$(find "$ckpt" -name '*.h5.tmp' -newer "$WORK/trial-start" 2>/dev/null | head -1 || true)
    [[ -n $tmp ]] && break
    kill -0 $pid 2>/dev/null || { cat "$WORK/trial.log"; fail "trial $trials: convoy exited before writing a checkpoint"; }
    sleep 0.002
  done
  [[ -n $tmp ]] || fail "trial $trials: no checkpoint was started within 30 s"
  sleep "$(awk -v r=$RANDOM -v w=$write_ms 'BEGIN { printf "%.3f", r / 32768 * 1.2 * w / 1000 }')"
  kill -KILL $pid
  wait $pid 2>/dev/null || true
  [[ -e $tmp ]] && landed=$((landed + 1))
  trials=$((trials + 1))
  # The run that was killed began with --resume auto: what did it resume from?
  grep -q "passing over damaged checkpoint" "$WORK/trial.log" && { cat "$WORK/trial.log"; fail "a damaged checkpoint was found"; }
  if step=$(grep -o "resumed from .* (global step [0-9]*)" "$WORK/trial.log" | grep -o "[0-9]*)$" | tr -d ')'); then
    ((step >= last_step)) || fail "trial $trials resumed from step $step, older than the step $last_step before"
    last_step=$step
  else
    cat "$WORK/trial.log"; fail "trial $trials started from scratch although a checkpoint had been written"
  fi
done
# The last kill's aftermath: the resume finds a verified checkpoint, trains a step and stops cleanly.
set +e
"$CONVOY" train --config "$WORK/kill.yaml" --out "$run" --resume auto --stop-at-step $((last_step + 3)) > "$WORK/final.log" 2>&1
rc=$?
set -e
[[ $rc == 75 ]] || { cat "$WORK/final.log"; fail "the final resume exited $rc, not 75"; }
grep -q "resumed from $ckpt/checkpoint-" "$WORK/final.log" || { cat "$WORK/final.log"; fail "the final run did not resume"; }
grep -q "passing over damaged checkpoint" "$WORK/final.log" && fail "the final resume passed over a damaged checkpoint"
# Its save removed the temporary files the killed runs left behind.
[[ -z $(compgen -G "$ckpt/*.tmp" || true) ]] || { ls -la "$ckpt"; fail "killed writers' temporary files are left"; }
echo "kill during checkpoint: $landed of $trials SIGKILLs landed while a checkpoint was being written;" \
     "every resume found a verified checkpoint (a write took $write_ms ms; $(($(date +%s) - started)) s)"
