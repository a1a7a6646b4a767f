#!/usr/bin/env bash
# Converts Debian's dataset-fashion-mnist into data/fashion-mnist (train and val shards) unless a valid
# conversion is already there. Needs build/convoy (tools/setup.sh --target convoy builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
src=/usr/share/datasets/fashion-mnist
data=data/fashion-mnist
if [[ ! -f "$data/index.json" ]] || ! build/convoy inspect "$data" >/dev/null 2>&1; then
  rm -rf "$data"
  build/convoy convert idx --images "$src/train-images-idx3-ubyte.gz" --labels "$src/train-labels-idx1-ubyte.gz" \
    --out "$data" --split train
  build/convoy convert idx --images "$src/t10k-images-idx3-ubyte.gz" --labels "$src/t10k-labels-idx1-ubyte.gz" \
    --out "$data" --split val
fi
