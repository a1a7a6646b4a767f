#!/usr/bin/python3
"""Write a torchvision model's weights (or a saved state_dict) into an HDF5 file convoy can load with
`model.init_from: FILE`: parameters under /params, buffers (BN running statistics) under /buffers, each
dataset named as PyTorch names it ("layer1.0.conv1.weight"), in PyTorch's layout (OIHW).

  /usr/bin/python3 tools/torchvision_to_h5.py resnet50 --out resnet50.h5 [--weights DEFAULT|FILE.pth]
  /usr/bin/python3 tools/torchvision_to_h5.py resnet18 --out r18.h5 --num-classes 10

Needs python3-torch, python3-torchvision and python3-h5py (Debian); run it with /usr/bin/python3.
"""
import argparse

import h5py
import torch
import torchvision

from torchvision_layout import build


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="torchvision model name, e.g. resnet50")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument("--weights", default=None,
                   help="a saved state_dict (.pth) to load; default: torchvision's fresh initialization")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--aux-logits", action="store_true",
                   help="googlenet: with its auxiliary classifiers (convoy's model.aux_logits: true); a state_dict "
                        "that has them implies it")
    a = p.parse_args()
    state = torch.load(a.weights, map_location="cpu") if a.weights else None
    model = build(a.model, a.num_classes, state, a.aux_logits)  # conv1's channels and aux heads follow the state
    if state is not None:
        model.load_state_dict(state)
    params = {name for name, _ in model.named_parameters()}
    with h5py.File(a.out, "w") as f:
        f.require_group("params"), f.require_group("buffers")  # both, even where a model has no buffers
        for name, t in model.state_dict().items():
            group = "params" if name in params else "buffers"
            data = t.detach().cpu().numpy()
            f.create_dataset(f"{group}/{name}", data=data)
        f.attrs["source"] = f"torchvision {torchvision.__version__} {a.model}"
    print(f"wrote {len(model.state_dict())} tensors of {a.model} to {a.out}")


if __name__ == "__main__":
    main()
