# Shared by the launch tests: where things are, a scratch folder, Fashion-MNIST shards, helpers.
# Usage in a test: source "$(dirname "$0")/common.sh" CONVOY_BINARY SOURCE_DIR
set -euo pipefail
CONVOY=$1
SRC=$2
WORK=$(mktemp -d /tmp/convoy-launch-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

fail() { echo "FAIL: $*" >&2; exit 1; }

# Fashion-MNIST from Debian's dataset-fashion-mnist, converted once per test into $WORK/data.
fashion_mnist() {
  local src=/usr/share/datasets/fashion-mnist
  "$CONVOY" convert idx --images $src/train-images-idx3-ubyte.gz --labels $src/train-labels-idx1-ubyte.gz \
    --out "$WORK/data" --split train >/dev/null
  "$CONVOY" convert idx --images $src/t10k-images-idx3-ubyte.gz --labels $src/t10k-labels-idx1-ubyte.gz \
    --out "$WORK/data" --split val >/dev/null
}

# A small config on $WORK/data; extra --set options come from the caller.
small_config() {
  cat > "$WORK/small.yaml" <<YAML
model:
  name: lenet5
data:
  dir: $WORK/data
  threads: 1
train:
  epochs: 1
  batch_size: 64
  base_lr: 0.2
  warmup_epochs: 0.1
  schedule: cosine
  seed: 5
  threads: 1
log:
  interval: 10
YAML
  echo "$WORK/small.yaml"
}
