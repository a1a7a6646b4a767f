#!/usr/bin/env bash
# Model selection for the quickstart without the test set: the first 55,000 Fashion-MNIST training images
# train, the last 5,000 (split `holdout`) judge. Trains the quickstart config on 2 local MPI ranks with the
# given overrides and appends one JSON line (label, overrides, holdout top-1 of every evaluated epoch, seconds of
# training and evaluation) to runs/select.jsonl.
#   tools/fashion_mnist_select.sh LABEL [--set key=value ...]
#   tools/fashion_mnist_select.sh resnet8-e20 --set train.epochs=20
set -euo pipefail
cd "$(dirname "$0")/.."
(($# >= 1)) || { echo "usage: $0 LABEL [--set key=value ...]" >&2; exit 2; }
label=$1
shift
[[ -x build/convoy ]] || tools/setup.sh --target convoy
src=/usr/share/datasets/fashion-mnist
data=data/fashion-mnist-select
if [[ ! -f "$data/index.json" ]] || ! build/convoy inspect "$data" >/dev/null 2>&1; then
  rm -rf "$data"
  build/convoy convert idx --images "$src/train-images-idx3-ubyte.gz" --labels "$src/train-labels-idx1-ubyte.gz" \
    --out "$data" --split train --count 55000
  build/convoy convert idx --images "$src/train-images-idx3-ubyte.gz" --labels "$src/train-labels-idx1-ubyte.gz" \
    --out "$data" --split holdout --first 55000
fi
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
out=runs/select/$label
rm -rf "$out"
mkdir -p runs/select
launch/convoy-mpirun -np 2 build/convoy train --config configs/fashion_mnist_quickstart.yaml --out "$out" \
  --set data.dir="$data" --set data.val_split=holdout "$@" > "$out.log" 2>&1 ||
  { tail -5 "$out.log" >&2; exit 1; }
/usr/bin/python3 - "$label" "$out/metrics.jsonl" "$*" <<'PY' | tee -a runs/select.jsonl
import json, sys
label, metrics, args = sys.argv[1:]
epochs = [j for j in map(json.loads, open(metrics)) if j.get("type") == "epoch" and "top1" in j]
print(json.dumps({"label": label, "overrides": args, "holdout_top1": [e["top1"] for e in epochs],
                  "seconds": round(epochs[-1]["elapsed_s"], 1)}))
PY
