#!/usr/bin/python3
"""Turn a convoy checkpoint (or any HDF5 file with /params and /buffers named as PyTorch names them)
into a PyTorch state_dict, and check that it loads into the torchvision model:

  /usr/bin/python3 tools/h5_to_torchvision.py runs/x/checkpoints/checkpoint-0000004690.h5 \
      --model resnet18 --num-classes 10 --out resnet18.pth

The model's input channels follow the checkpoint's first convolution. Needs python3-torch,
python3-torchvision and python3-h5py (Debian); run it with /usr/bin/python3.
"""
import argparse

import h5py
import numpy as np
import torch
import torchvision

from torchvision_layout import build


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="convoy checkpoint (HDF5)")
    p.add_argument("--model", required=True, help="torchvision model name, e.g. resnet18")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--out", required=True, help=".pth file to write")
    a = p.parse_args()
    state = {}
    with h5py.File(a.checkpoint, "r") as f:
        for group in ("params", "buffers"):
            for name, ds in f[group].items():
                state[name] = torch.as_tensor(np.asarray(ds[()]))
    model = build(a.model, a.num_classes, state)  # e.g. a 1-channel conv1 for Fashion-MNIST
    model.load_state_dict(state, strict=True)
    torch.save(model.state_dict(), a.out)
    print(f"wrote {len(state)} tensors to {a.out}; they load into torchvision's {a.model} strictly")


if __name__ == "__main__":
    main()
