"""Frame feature extractors for the clip model: torchvision's ResNeXt50 / ResNet18 (optionally with ImageNet
weights from the torch cache) and a tiny CNN for tests and CPU demos, behind one factory, `create_backbone`,
so the LSTM head does not care which backbone it sits on.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

BACKBONES = ("resnext50_32x4d", "resnet18", "tiny")
# ImageNet weights used for weights="imagenet": V1, the weights the original project's `pretrained=True` gave.
_IMAGENET_WEIGHTS = {"resnext50_32x4d": "ResNeXt50_32X4D_Weights", "resnet18": "ResNet18_Weights"}


def key_diff(expected: dict, got: dict) -> tuple[list[str], list[str]]:
    """(keys of `expected` missing from `got`, keys of `got` not in `expected`)."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    return missing, unexpected


def describe_key_diff(missing: list[str], unexpected: list[str], mismatched: list[str] = ()) -> str:
    """One phrase for a state_dict mismatch: counts and a few example keys of each kind."""
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", mismatched)):
        if keys:
            parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:4])})")
    return "; ".join(parts)


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _tiny_backbone() -> nn.Sequential:
    # The first stage keeps full resolution: blending seams, resampling and colour artefacts live in
    # a few pixels and a stride-2 stem would average them away. ~0.25 M parameters.
    return nn.Sequential(_conv_bn(3, 16, 1), _conv_bn(16, 32, 2), _conv_bn(32, 64, 2), _conv_bn(64, 128, 2),
                         _conv_bn(128, 128, 2))


def _imagenet_state_dict(name: str) -> dict:
    """torchvision's ImageNet weights from the torch hub cache, downloading them only if that is possible."""
    import torchvision.models as tvm

    weights = getattr(tvm, _IMAGENET_WEIGHTS[name]).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    try:
        return _download_state_dict(weights.url)
    except Exception as e:  # no internet, proxy, disk full: all end in the same advice
        raise RuntimeError(
            f"ImageNet weights for {name} are not in the torch cache ({cached}) and could not be downloaded "
            f"({type(e).__name__}: {e}). On a machine with internet, download {weights.url} and either copy it "
            f"to {cached}, or pass weights='path/to/{cached.name}'; or use weights=None to train from scratch."
        ) from e


def _download_state_dict(url: str) -> dict:
    return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, weights_only=True)


def create_backbone(name: str = "resnext50_32x4d", weights: str | Path | None = None) -> tuple[nn.Module, int]:
    """Build a frame feature extractor.

    Takes a backbone name ("resnext50_32x4d", "resnet18", "tiny") and `weights`: None (random init),
    "imagenet" (torchvision's weights from the torch cache, or downloaded), or a path to a .pth
    state_dict of the torchvision model (the `fc` keys may be absent).
    Returns (module mapping (N, 3, H, W) → feature map (N, C, h, w), C).
    Raises ValueError for an unknown name or a weights file that does not fit, RuntimeError when
    "imagenet" weights are neither cached nor downloadable.
    """
    import torchvision.models as tvm

    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if name == "tiny":
        if weights == "imagenet":
            raise ValueError("backbone 'tiny' has no ImageNet weights; use weights=None or a path to its state_dict")
        net, dim = _tiny_backbone(), 128
        full = net
    else:
        full = getattr(tvm, name)(weights=None)
        dim = full.fc.in_features
    if weights is not None:
        if weights == "imagenet":
            state = _imagenet_state_dict(name)
        else:
            path = Path(weights)
            if not path.is_file():
                raise ValueError(f"backbone weights file {path} not found; pass weights=None, 'imagenet' or a .pth path")
            state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = key_diff(full.state_dict(), state)
        missing = [k for k in missing if not k.startswith("fc.")]  # the classifier is dropped anyway
        if missing or unexpected:
            raise ValueError(f"weights {weights} do not fit backbone {name!r}: {describe_key_diff(missing, unexpected)}")
        full.load_state_dict(state, strict=False)
    if name != "tiny":
        net = nn.Sequential(*list(full.children())[:-2])  # drop avgpool and fc, as the original did
    return net, dim
