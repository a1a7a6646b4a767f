"""What tools/torchvision_to_h5.py and tools/h5_to_torchvision.py share: torchvision models built in
convoy's layout."""
import torch
import torchvision


def convoy_layout(model, aux_logits=False):
    """The constructor arguments for convoy's layout: GoogLeNet without the auxiliary classifiers unless
    asked for (convoy's model.aux_logits; torchvision builds them unless told not to); every other model
    as torchvision's default."""
    return {"aux_logits": aux_logits, "init_weights": True} if model == "googlenet" else {}


def build(model, num_classes, state=None, aux_logits=False):
    """torchvision's `model` in convoy's layout; with a state_dict, its first convolution takes as many
    input channels as the state's does (a ResNet trained on 1-channel Fashion-MNIST, say), and GoogLeNet
    has auxiliary classifiers when the state has them."""
    aux_logits = aux_logits or any(name.startswith("aux1.") for name in (state or {}))
    m = getattr(torchvision.models, model)(num_classes=num_classes, **convoy_layout(model, aux_logits))
    conv1 = (state or {}).get("conv1.weight")
    if conv1 is not None and hasattr(m, "conv1") and isinstance(m.conv1, torch.nn.Conv2d) and \
            conv1.shape[1] != m.conv1.in_channels:
        m.conv1 = torch.nn.Conv2d(conv1.shape[1], m.conv1.out_channels, m.conv1.kernel_size, m.conv1.stride,
                                  m.conv1.padding, bias=m.conv1.bias is not None)
    return m
