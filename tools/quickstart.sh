#!/usr/bin/env bash
# The main job: set up, convert Debian's Fashion-MNIST (dataset-fashion-mnist) into shards, train the
# quickstart config on 2 local MPI ranks (CPU), and print the test accuracy.
# Extra arguments go to `convoy train` (for example --set train.epochs=2).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --target convoy  # the main job needs the binary only, not the test programs
tools/fashion_mnist_data.sh
exec launch/convoy-mpirun -np 2 build/convoy train --config configs/fashion_mnist_quickstart.yaml \
  --out runs/fashion_mnist_quickstart "$@"
