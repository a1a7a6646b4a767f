#!/usr/bin/env bash
# End to end under mpirun: an ImageNet-layout folder of JPEGs (made with PIL, with a few bad files)
# converts on 2 ranks, verifies, and loads with the training and evaluation transforms.
# Usage: cli_imagefolder.sh CONVOY_BINARY
set -euo pipefail
convoy=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out=$(mktemp -d /tmp/convoy-cli-folder-XXXXXX)
trap 'rm -rf "$out"' EXIT

/usr/bin/python3 - "$out/src" <<'PY'
import os, sys
import numpy as np
from PIL import Image
root = sys.argv[1]
rng = np.random.default_rng(0)
for c in range(4):
    d = os.path.join(root, "train", f"n0{c}")
    os.makedirs(d)
    for i in range(12):
        w, h = int(rng.integers(80, 400)), int(rng.integers(80, 400))
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 60 * c)], -1).astype(np.uint8)
        img = Image.fromarray(img)
        if i % 4 == 1: img = img.convert("L")
        if i % 4 == 2: img = img.convert("CMYK")
        img.save(os.path.join(d, f"n0{c}_{i}.JPEG"), quality=90, progressive=(i % 4 == 3))
open(os.path.join(root, "train", "n00", "empty.JPEG"), "wb").close()
with open(os.path.join(root, "train", "n01", "noise.JPEG"), "wb") as f:
    f.write(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
good = open(os.path.join(root, "train", "n02", "n02_0.JPEG"), "rb").read()
with open(os.path.join(root, "train", "n02", "truncated.JPEG"), "wb") as f:
    f.write(good[: len(good) // 2])
PY

mpirun -np 2 "$convoy" convert imagefolder --root "$out/src/train" --out "$out/data" --shard-size 10 --threads 1 \
  | tee "$out/log"
grep -q "48 records in 6 shards (51 sources, 3 skipped, 2 ranks)" "$out/log"
grep -q "skipped n00/empty.JPEG: the file is empty" "$out/log"
grep -q "skipped n01/noise.JPEG: not a JPEG" "$out/log"
grep -q "skipped n02/truncated.JPEG" "$out/log"

# --strict on the same folder fails, on every rank, and writes no index.
if mpirun -np 2 "$convoy" convert imagefolder --root "$out/src/train" --out "$out/strict" --strict 2>"$out/err"; then
  echo "--strict should have failed" >&2
  exit 1
fi
grep -q "empty.JPEG" "$out/err"
[[ ! -e "$out/strict/index.json" ]]

"$convoy" inspect "$out/data" --verify --decode 20 | tee "$out/log"
grep -q "checksums: 6 of 6 shards verified" "$out/log"
grep -q "per class: n00=12 n01=12 n02=12 n03=12" "$out/log"
grep -q "no problems found" "$out/log"

"$convoy" bench data --data "$out/data" --threads 2 --batch 8 --batches 10 --json | tee "$out/log"
grep -q '"height":224' "$out/log"
"$convoy" bench data --data "$out/data" --eval --threads 2 --batch 8 --batches 10 --image-size 160 --json \
  | tee "$out/log"
grep -q '"transforms":"eval"' "$out/log"
echo "cli imagefolder: ok"
