#!/usr/bin/env python3
"""Reads one record of a convoy shard with h5py: its image and its label (docs/shard-format.md).

    /usr/bin/python3 tools/read_shard_example.py DATA/train-00000-of-00004.h5 [RECORD]

Prints one JSON line: key, label, class name (from index.json beside the shard), image shape, whether
the record matches its checksum (version 2 shards: XXH3-64 of its bytes, seeded by its label; Debian's
python3-xxhash), and for jpeg shards the SHA-256 of the stored JPEG bytes (the original file's).
"""
import hashlib, io, json, os, sys

import h5py
import numpy as np
import xxhash
from PIL import Image

path, i = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0
with h5py.File(path, "r") as f:
    assert f.attrs["format"] == "convoy-shard" and f.attrs["version"] in (1, 2)
    label = int(f["labels"][i])
    key = f["keys"].asstr()[i]
    if f.attrs["encoding"] == "jpeg":
        start, end = f["offsets"][i], f["offsets"][i + 1]
        data = f["images"][start:end].tobytes()            # the JPEG file exactly as it was
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        digest = hashlib.sha256(data).hexdigest()
    else:
        image = f["images"][i]                               # uint8 (H, W, C)
        data = image.tobytes()
        digest = None
    intact = None                                            # version 1: no checksums
    if f.attrs["version"] >= 2:
        intact = xxhash.xxh3_64_intdigest(data, seed=label) == int(f["checksums"][i])

with open(os.path.join(os.path.dirname(os.path.abspath(path)), "index.json")) as fp:
    classes = json.load(fp)["classes"]
print(json.dumps({"key": key, "label": label, "class": classes[label], "shape": list(image.shape),
                  "intact": intact, "sha256": digest, "mean": float(image.mean())}))
