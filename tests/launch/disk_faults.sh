#!/usr/bin/env bash
# Checkpoints against failing disks (needs root: it mounts): a file system that is too full for the next
# checkpoint (a small tmpfs), a write that fails midway (a file-size limit), and a run directory on a
# read-only mount. Each stops convoy train with an error naming the path (and the space), a non-zero
# exit, and the previous checkpoint intact and verified; the read-only one before any training.
# Usage: disk_faults.sh CONVOY SOURCE_DIR
source "$(dirname "$0")/common.sh"
[[ $(id -u) == 0 ]] || { echo "SKIP: mounting file systems needs root"; exit 77; }
mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; --i)); do umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fashion_mnist
config() {  # ResNet-18: a checkpoint of about 90 MB
  cat > "$WORK/$1.yaml" <<YAML
model: {name: resnet18}
data: {dir: $WORK/data, threads: 1}
train: {epochs: 1, batch_size: 32, base_lr: 0.05, warmup_epochs: 0, seed: 3, threads: 1}
eval: {every_epochs: 0}
checkpoint: {every_epochs: 0, every_steps: 2, keep: 3}
log: {interval: 1000}
YAML
  echo "$WORK/$1.yaml"
}
cfg=$(config faults)
verified() {  # the checkpoint loads, verifies and evaluates
  "$CONVOY" eval --config "$cfg" --checkpoint "$1" --set data.val_split=val > "$WORK/eval.log" 2>&1 ||
    { cat "$WORK/eval.log"; fail "$1 does not verify"; }
}

# 1. Too full: 140 MB holds the step-2 checkpoint, not the step-4 one.
mkdir -p "$WORK/small"
mount -t tmpfs -o size=140m convoy-test "$WORK/small" || { echo "SKIP: cannot mount a tmpfs"; exit 77; }
mounts+=("$WORK/small")
set +e
"$CONVOY" train --config "$cfg" --out "$WORK/small/run" > "$WORK/full.log" 2>&1
rc=$?
set -e
((rc != 0 && rc != 75)) || { cat "$WORK/full.log"; fail "a full disk exited $rc"; }
grep -Eq "not enough space for the checkpoint $WORK/small/run/checkpoints/checkpoint-0000000004.h5: it needs about [0-9]+ MB and $WORK/small/run/checkpoints has [0-9]+ MB free; the previous checkpoints are intact" \
  "$WORK/full.log" || { cat "$WORK/full.log"; fail "the full disk's error does not name the path and the space"; }
verified "$WORK/small/run/checkpoints/checkpoint-0000000002.h5"
[[ -z $(compgen -G "$WORK/small/run/checkpoints/*.tmp" || true) ]] || fail "a temporary file is left on the full disk"

# 2. A write that fails midway (a 20 MB file-size limit; SIGXFSZ ignored, so write() fails with EFBIG).
set +e
"$CONVOY" train --config "$cfg" --out "$WORK/limited" --stop-at-step 2 > "$WORK/first.log" 2>&1
(trap '' XFSZ; ulimit -f 20000; exec "$CONVOY" train --config "$cfg" --out "$WORK/limited" --resume auto) > "$WORK/midway.log" 2>&1
rc=$?
set -e
((rc != 0 && rc != 75)) || { cat "$WORK/midway.log"; fail "a failed write exited $rc"; }
grep -q "cannot write the checkpoint $WORK/limited/checkpoints/checkpoint-0000000004.h5 (.* free in .*): .*; the previous checkpoints are intact" \
  "$WORK/midway.log" || { cat "$WORK/midway.log"; fail "the failed write's error does not name the path"; }
# HDF5 1.10's atexit handler crashes on a file whose write failed; convoy must exit before it runs.
grep -q "Process received signal\|Segmentation fault" "$WORK/midway.log" && { cat "$WORK/midway.log"; fail "convoy crashed after the failed write"; }
verified "$WORK/limited/checkpoints/checkpoint-0000000002.h5"
[[ -z $(compgen -G "$WORK/limited/checkpoints/*.tmp" || true) ]] || fail "the failed write left its temporary file"

# 3. A read-only run directory: refused before training.
mkdir -p "$WORK/ro/run"
mount --bind "$WORK/ro" "$WORK/ro" && mounts+=("$WORK/ro") && mount -o remount,ro,bind "$WORK/ro"
set +e
"$CONVOY" train --config "$cfg" --out "$WORK/ro/run" > "$WORK/ro.log" 2>&1
rc=$?
set -e
((rc == 1)) || { cat "$WORK/ro.log"; fail "a read-only run directory exited $rc"; }
grep -q "the run directory $WORK/ro/run is not writable (Read-only file system).*nothing was trained" "$WORK/ro.log" ||
  { cat "$WORK/ro.log"; fail "the read-only run directory is not named"; }
grep -q "step" "$WORK/ro.log" && { cat "$WORK/ro.log"; fail "it trained before refusing"; }
echo "disk faults: full disk, failed write and read-only run directory refused with the path; checkpoints intact"
