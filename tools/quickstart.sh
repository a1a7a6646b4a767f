#!/usr/bin/env bash
# The main job: set up, convert Debian's Fashion-MNIST (dataset-fashion-mnist) into shards, train the
# quickstart config on 2 local MPI ranks (CPU), and print the test accuracy.
# Extra arguments go to `convoy train` (for example --set train.epochs=2).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --target convoy  # the main job needs the binary only, not the test programs

src=/usr/share/datasets/fashion-mnist
data=data/fashion-mnist
if [[ ! -f "$data/index.json" ]] || ! build/convoy inspect "$data" >/dev/null 2>&1; then
  rm -rf "$data"
  build/convoy convert idx --images "$src/train-images-idx3-ubyte.gz" --labels "$src/train-labels-idx1-ubyte.gz" \
    --out "$data" --split train
  build/convoy convert idx --images "$src/t10k-images-idx3-ubyte.gz" --labels "$src/t10k-labels-idx1-ubyte.gz" \
    --out "$data" --split val
fi
exec launch/convoy-mpirun -np 2 build/convoy train --config configs/fashion_mnist_quickstart.yaml \
  --out runs/fashion_mnist_quickstart "$@"
