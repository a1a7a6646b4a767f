#!/usr/bin/env bash
# Writes the fuzzers' seed corpora (fuzz/corpus/TARGET/seed-*) from real files: Fashion-MNIST records
# (Debian's dataset-fashion-mnist) as IDX and as shards converted by convoy, JPEGs of them in the kinds
# convoy decodes, the shipped configs, and a LeNet-5 checkpoint. Run once; tools/fuzz.sh grows the
# corpora from here. Needs build/convoy.
set -euo pipefail
cd "$(dirname "$0")/.."
convoy=$PWD/build/convoy
work=$(mktemp -d /tmp/convoy-fuzz-seeds-XXXXXX)
trap 'rm -rf "$work"' EXIT
c=fuzz/corpus
mkdir -p $c/idx $c/shard $c/index $c/jpeg $c/config $c/checkpoint
/usr/bin/python3 - "$work" "$c" <<'PY'
import gzip, io, os, struct, sys
from PIL import Image
work, c = sys.argv[1], sys.argv[2]
src = "/usr/share/datasets/fashion-mnist"
images = gzip.open(f"{src}/train-images-idx3-ubyte.gz").read()
labels = gzip.open(f"{src}/train-labels-idx1-ubyte.gz").read()
def idx_images(n): return struct.pack(">IIII", 0x803, n, 28, 28) + images[16:16 + n * 784]
def idx_labels(n): return struct.pack(">II", 0x801, n) + labels[8:8 + n]
open(f"{c}/idx/seed-images-3", "wb").write(idx_images(3))
open(f"{c}/idx/seed-images-5.gz", "wb").write(gzip.compress(idx_images(5)))
open(f"{c}/idx/seed-labels-5", "wb").write(idx_labels(5))
open(f"{c}/idx/seed-labels-5.gz", "wb").write(gzip.compress(idx_labels(5)))
os.makedirs(f"{work}/idx", exist_ok=True)
open(f"{work}/idx/images", "wb").write(idx_images(10))
open(f"{work}/idx/labels", "wb").write(idx_labels(10))
# JPEGs of Fashion-MNIST records in the kinds convoy decodes; the first byte picks train (0) or eval (1).
for i in range(4):
    gray = Image.frombytes("L", (28, 28), images[16 + i * 784:16 + (i + 1) * 784])
    rgb = Image.merge("RGB", (gray, gray.rotate(90), gray.transpose(Image.FLIP_LEFT_RIGHT))).resize((60, 44))
    kinds = {"baseline": (rgb, {}), "progressive": (rgb, {"progressive": True}), "gray": (gray, {}),
             "cmyk": (rgb.convert("CMYK"), {}), "444": (rgb, {"subsampling": 0})}
    for kind, (im, kw) in kinds.items():
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80, **kw)
        for mode in (0, 1):
            open(f"{c}/jpeg/seed-{i}-{kind}-{mode}", "wb").write(bytes([mode]) + buf.getvalue())
        if kind == "baseline":
            os.makedirs(f"{work}/folder/c{i % 2}", exist_ok=True)
            open(f"{work}/folder/c{i % 2}/{i}.JPEG", "wb").write(buf.getvalue())
PY
"$convoy" convert idx --images "$work/idx/images" --labels "$work/idx/labels" --out "$work/raw" >/dev/null
"$convoy" convert imagefolder --root "$work/folder" --out "$work/jpeg" >/dev/null
cp "$work/raw/train-00000-of-00001.h5" $c/shard/seed-raw.h5
cp "$work/jpeg/train-00000-of-00001.h5" $c/shard/seed-jpeg.h5
/usr/bin/python3 - "$work/raw/train-00000-of-00001.h5" "$c/shard/seed-raw-v1.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:  # a version-1 shard: no per-record checksums
    del f["checksums"]
    f.attrs["version"] = 1
PY
cp "$work/raw/index.json" $c/index/seed-raw.json
cp "$work/jpeg/index.json" $c/index/seed-jpeg.json
for f in configs/*.yaml; do cp "$f" "$c/config/seed-$(basename "$f")"; done
cat > "$work/lenet.yaml" <<YAML
model: {name: lenet5}
data: {dir: $work/raw, threads: 1, val_split: train}
train: {epochs: 1, batch_size: 2, base_lr: 0.1, warmup_epochs: 0, threads: 1}
YAML
"$convoy" train --config "$work/lenet.yaml" --out "$work/run" --stop-at-step 1 >/dev/null 2>&1 || [[ $? == 75 ]]
cp "$work"/run/checkpoints/checkpoint-*.h5 $c/checkpoint/seed-lenet5.h5
du -sh $c/*
