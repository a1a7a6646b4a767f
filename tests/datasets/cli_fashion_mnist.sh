#!/usr/bin/env bash
# End to end, the way a user types it: Fashion-MNIST (Debian's dataset-fashion-mnist) converts,
# inspects and loads. Usage: cli_fashion_mnist.sh CONVOY_BINARY
set -euo pipefail
convoy=$1
src=/usr/share/datasets/fashion-mnist
if [[ ! -f $src/train-images-idx3-ubyte.gz ]]; then
  echo "missing $src: run tools/setup.sh (installs dataset-fashion-mnist)" >&2
  exit 1
fi
out=$(mktemp -d /tmp/convoy-cli-fmnist-XXXXXX)
trap 'rm -rf "$out"' EXIT

"$convoy" convert idx --images $src/train-images-idx3-ubyte.gz --labels $src/train-labels-idx1-ubyte.gz \
  --out "$out/data" --split train | tee "$out/log"
grep -q "60000 records in 6 shards" "$out/log"
"$convoy" convert idx --images $src/t10k-images-idx3-ubyte.gz --labels $src/t10k-labels-idx1-ubyte.gz \
  --out "$out/data" --split val --shard-size 4000 | tee "$out/log"
grep -q "10000 records in 3 shards" "$out/log"

"$convoy" inspect "$out/data" --verify --decode 10 | tee "$out/log"
grep -q "split train: 60000 records in 6 shards" "$out/log"
grep -q "split val: 10000 records in 3 shards" "$out/log"
grep -q "checksums: 6 of 6 shards verified" "$out/log"
grep -q "decoded 10 random records" "$out/log"
grep -q "per class: 0=6000 1=6000" "$out/log"   # Fashion-MNIST is balanced
grep -q "no problems found" "$out/log"

# The Loader produces batches from it (train and eval transforms).
"$convoy" bench data --data "$out/data" --threads 2 --batch 256 --batches 20 --json | tee "$out/log"
grep -q '"channels":1' "$out/log"
grep -q '"height":28' "$out/log"
"$convoy" bench data --data "$out/data" --split val --eval --threads 2 --batch 256 --batches 5 >/dev/null

# A damaged index is reported with a non-zero exit.
sed -i 's/"sha256": "\(.\)/"sha256": "0\1/' "$out/data/index.json"
if "$convoy" inspect "$out/data" --verify 2>"$out/err"; then
  echo "inspect should have failed on a checksum mismatch" >&2
  exit 1
fi
grep -q "checksum mismatch" "$out/err"
echo "cli fashion-mnist: ok"
