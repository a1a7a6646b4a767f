#!/usr/bin/env python3
"""Reads one record of a convoy shard with h5py: its image and its label (docs/shard-format.md).

    /usr/bin/python3 tools/read_shard_example.py DATA/train-00000-of-00004.h5 [RECORD]

Prints one JSON line: key, label, class name (from index.json beside the shard), image shape, and for
jpeg shards the SHA-256 of the stored JPEG bytes (the original file's, unchanged).
"""
import hashlib, io, json, os, sys

import h5py
import numpy as np
from PIL import Image

path, i = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0
with h5py.File(path, "r") as f:
    assert f.attrs["format"] == "convoy-shard" and f.attrs["version"] == 1
    label = int(f["labels"][i])
    key = f["keys"].asstr()[i]
    if f.attrs["encoding"] == "jpeg":
        start, end = f["offsets"][i], f["offsets"][i + 1]
        jpeg = f["images"][start:end].tobytes()            # the JPEG file exactly as it was
        image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
        digest = hashlib.sha256(jpeg).hexdigest()
    else:
        image = f["images"][i]                               # uint8 (H, W, C)
        digest = None

with open(os.path.join(os.path.dirname(os.path.abspath(path)), "index.json")) as fp:
    classes = json.load(fp)["classes"]
print(json.dumps({"key": key, "label": label, "class": classes[label], "shape": list(image.shape),
                  "sha256": digest, "mean": float(image.mean())}))
