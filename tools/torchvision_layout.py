"""What tools/torchvision_to_h5.py and tools/h5_to_torchvision.py share: the torchvision constructor
arguments that give convoy's layout of a model."""


def convoy_layout(model):
    """GoogLeNet without the auxiliary classifiers (convoy's googlenet; torchvision builds them unless told
    not to); every other model as torchvision's default."""
    return {"aux_logits": False, "init_weights": True} if model == "googlenet" else {}
