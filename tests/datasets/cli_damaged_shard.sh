#!/usr/bin/env bash
# Damage between conversion and training, the way a new user met it: 4 KB of inverted bytes in the middle
# of a converted Fashion-MNIST training shard. `convoy train` must stop at the first damaged record it
# reads, naming the shard, the record and its key; with data.on_error: skip, 2 ranks train the whole
# epoch (the same steps on both, their weights compared every 20 steps), every damaged record is
# replaced and counted in the progress line and metrics.jsonl; `convoy inspect --verify` lists them.
# Usage: cli_damaged_shard.sh CONVOY_BINARY
set -euo pipefail
convoy=$1
src=/usr/share/datasets/fashion-mnist
[[ -f $src/train-images-idx3-ubyte.gz ]] || { echo "missing $src: run tools/setup.sh" >&2; exit 1; }
out=$(mktemp -d /tmp/convoy-cli-damaged-XXXXXX)
[[ -n ${CONVOY_KEEP_TEST_DIR:-} ]] || trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$convoy" convert idx --images $src/train-images-idx3-ubyte.gz --labels $src/train-labels-idx1-ubyte.gz \
  --out "$out/data" --split train >/dev/null
"$convoy" convert idx --images $src/t10k-images-idx3-ubyte.gz --labels $src/t10k-labels-idx1-ubyte.gz \
  --out "$out/data" --split val >/dev/null
shard=$out/data/train-00002-of-00006.h5
# Invert 4096 bytes at the middle of the file (inside `images`); count the records they touch.
damaged=$(/usr/bin/python3 - "$shard" <<'PY'
import os, sys, h5py
path = sys.argv[1]
with h5py.File(path, "r") as f:
    base, size = f["images"].id.get_offset(), 28 * 28
at = os.path.getsize(path) // 2
with open(path, "r+b") as fp:
    fp.seek(at)
    data = fp.read(4096)
    fp.seek(at)
    fp.write(bytes(255 - b for b in data))
first, last = (at - base) // size, (at + 4095 - base) // size
print(last - first + 1)
PY
)
echo "damaged records: $damaged"

cat > "$out/train.yaml" <<YAML
model: {name: lenet5}
data: {dir: $out/data, threads: 1}
train: {epochs: 1, batch_size: 256, base_lr: 0.1, warmup_epochs: 0, seed: 1, threads: 1}
eval: {every_epochs: 1}
checkpoint: {every_epochs: 1}
log: {interval: 50}
YAML
# on_error: fail (the default) stops at the first damaged record, naming it.
if "$convoy" train --config "$out/train.yaml" --out "$out/fail" > "$out/fail.log" 2>&1; then
  fail "training over a damaged shard succeeded"
fi
grep -Eq "train-00002-of-00006.h5, record [0-9]+ \(key train-images-idx3-ubyte.gz#[0-9]+, label [0-9]\) is damaged" \
  "$out/fail.log" || { cat "$out/fail.log"; fail "the error does not name the shard, record and key"; }

# on_error: skip, 2 ranks: the epoch completes with the same steps, every damaged record counted.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np 2 --oversubscribe --bind-to none "$convoy" train --config "$out/train.yaml" --out "$out/skip" \
  --set data.on_error=skip --set comm.verify_every=20 > "$out/skip.log" 2>&1 || { cat "$out/skip.log"; fail "training with on_error: skip failed"; }
grep -q "skipped $damaged damaged records" "$out/skip.log" || { cat "$out/skip.log"; fail "no count of $damaged in the progress line"; }
[[ $(grep -c "warning: skipped shard" "$out/skip.log") -eq $damaged ]] || fail "not one warning per damaged record"
grep '"type":"epoch"' "$out/skip/metrics.jsonl" | grep -q "\"skipped_records\":$damaged," || fail "metrics.jsonl lacks the count"
grep -q "epoch 1 step 235/235" "$out/skip.log" || fail "the epoch did not keep its 235 steps"

# inspect --verify lists the damaged records and exits non-zero.
if "$convoy" inspect "$out/data" --verify > "$out/inspect.log" 2>&1; then fail "inspect --verify passed a damaged shard"; fi
grep -q "record [0-9]* (key train-images-idx3-ubyte.gz#[0-9]*, label [0-9]) is damaged" "$out/inspect.log" &&
  grep -q "$((60000 - damaged)) of 60000 records" "$out/inspect.log" || { cat "$out/inspect.log"; fail "inspect misses them"; }
echo "cli damaged shard: ok ($damaged damaged records found, skipped on 2 ranks)"
