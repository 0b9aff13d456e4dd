"""Grad-CAM heat maps over the face crops of a clip: which frames and regions drove the verdict.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017): weight each channel of the backbone's last feature map by the mean gradient of
the class score, sum, ReLU, upsample. The class score here is the fake-vs-real log-odds (the quantity
the threshold is applied to), so the map shows evidence for the decision, not for one softmax entry.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dfdlib.utils import atomic_write

# Attributes that hold the CNN feature extractor: ResNeXtLSTM ("backbone") and the original project's
# model ("model", an nn.Sequential of ResNeXt children).
_BACKBONE_ATTRS = ("backbone", "model", "features", "cnn")


def _target_layer(model, layer):
    """The module whose output is the (B*T, C, h, w) feature map Grad-CAM is computed on."""
    import torch.nn as nn

    if isinstance(layer, nn.Module):
        return layer
    if isinstance(layer, str):
        return model.get_submodule(layer)
    for name in _BACKBONE_ATTRS:
        module = getattr(model, name, None)
        if isinstance(module, nn.Module) and any(isinstance(m, nn.Conv2d) for m in module.modules()):
            return module
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM; pass layer=<module or name>")
    return convs[-1]


def _fake_index(model, n_classes: int) -> int:
    names = [str(c).upper() for c in (getattr(model, "meta", None) or {}).get("class_names") or ["REAL", "FAKE"]]
    return names.index("FAKE") if "FAKE" in names and n_classes > 1 else n_classes - 1


def _log_odds(model, logits):
    """Fake-vs-real log-odds of one clip's logits (1, K): l_fake - l_real, or the single BCE logit."""
    if logits.shape[-1] == 1:
        return logits[0, 0]
    fi = _fake_index(model, logits.shape[-1])
    return logits[0, fi] - logits[0, 1 - fi]


def grad_cam(model, clip, target: str | int = "fake", layer=None) -> np.ndarray:
    """Grad-CAM maps for every frame of one clip.

    Takes a model from load_model (any nn.Module with a conv backbone), a clip (T, 3, H, W) or
    (1, T, 3, H, W) normalised as for prediction, `target` "fake" (evidence for FAKE), "real", "pred"
    (evidence for whichever label the model chose) or a class index, and an optional layer (module or
    dotted name; default the backbone). Returns float32 (T, H, W) in [0, 1], normalised by the maximum
    over the whole clip so frames stay comparable. Raises ValueError for a bad target or clip shape.
    """
    import torch
    import torch.nn.functional as F

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"grad_cam takes one model (nn.Module), got {type(model).__name__}; for an Ensemble "
                        "pass one of ensemble.members with the clip built for it")
    x = torch.as_tensor(clip)
    if x.dim() == 4:
        x = x[None]
    if x.dim() != 5 or x.shape[0] != 1:
        raise ValueError(f"grad_cam takes one clip (T, 3, H, W), got shape {tuple(x.shape)}")
    T, H, W = x.shape[1], x.shape[3], x.shape[4]
    device = next(model.parameters()).device
    # requires_grad on the input keeps a gradient path to the feature map even if the weights are frozen.
    x = x.to(device=device, dtype=torch.float32).requires_grad_(True)
    store = {}
    handle = _target_layer(model, layer).register_forward_hook(lambda m, i, o: store.__setitem__("fmap", o))
    # Stay in eval mode (no dropout, frozen BN statistics). cuDNN's LSTM refuses backward in eval mode,
    # so cuDNN is switched off for this one forward/backward instead of flipping the model to train().
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            logits = model(x)
            if isinstance(logits, tuple):  # the original project's forward returned (fmap, logits)
                logits = logits[-1]
            log_odds = _log_odds(model, logits)
            if target == "fake":
                score = log_odds
            elif target == "real":
                score = -log_odds
            elif target == "pred":
                threshold = float((getattr(model, "meta", None) or {}).get("threshold") or 0.5)
                is_fake = torch.sigmoid(log_odds).item() >= threshold
                score = log_odds if is_fake else -log_odds
            elif isinstance(target, int):
                score = logits[0, target]
            else:
                raise ValueError(f"target must be 'fake', 'real', 'pred' or a class index, got {target!r}")
            fmap = store.get("fmap")
            if fmap is None or fmap.dim() != 4:
                raise ValueError("the Grad-CAM layer did not output a (N, C, h, w) feature map; pass layer=")
            grads = torch.autograd.grad(score, fmap)[0]
    finally:
        handle.remove()
    with torch.no_grad():
        weights = grads.mean(dim=(2, 3), keepdim=True)            # channel importance per frame
        cam = F.relu((weights * fmap).sum(dim=1, keepdim=True))   # (T, 1, h, w)
        cam = F.interpolate(cam.float(), size=(H, W), mode="bilinear", align_corners=False)[:, 0]
        peak = cam.max()
        cam = cam / peak if peak > 0 else torch.zeros_like(cam)
    return cam.reshape(T, H, W).cpu().numpy().astype(np.float32)


def frame_importance(cam: np.ndarray) -> np.ndarray:
    """Share of the clip's Grad-CAM mass in each frame.

    Takes a (T, H, W) map from grad_cam; returns (T,) summing to 1 (uniform when the map is all zero).
    """
    cam = np.asarray(cam, dtype=np.float64)
    mass = cam.reshape(cam.shape[0], -1).mean(axis=1)
    total = mass.sum()
    return (mass / total if total > 0 else np.full(len(mass), 1.0 / len(mass))).astype(np.float32)


def clip_to_images(clip) -> list[np.ndarray]:
    """Undo the ImageNet normalisation of a clip (T, 3, H, W) → list of RGB uint8 (H, W, 3) images."""
    import torch

    from dfdlib.data import IMAGENET_MEAN, IMAGENET_STD

    x = torch.as_tensor(clip).detach().float().cpu()
    if x.dim() == 5:
        x = x[0]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    img = ((x * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
    return list(img.permute(0, 2, 3, 1).numpy())


def overlay(image: np.ndarray, cam_frame: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend one (h, w) map in [0, 1] over an RGB uint8 image (map resized to the image). Returns RGB uint8."""
    import cv2
    from matplotlib import colormaps

    h, w = image.shape[:2]
    cam_frame = cv2.resize(np.asarray(cam_frame, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    heat = colormaps["jet"](np.clip(cam_frame, 0, 1))[..., :3] * 255.0
    return np.clip((1 - alpha) * image.astype(np.float32) + alpha * heat, 0, 255).astype(np.uint8)


def _as_images(clip_or_crops) -> list[np.ndarray]:
    if isinstance(clip_or_crops, (list, tuple)) and clip_or_crops and isinstance(clip_or_crops[0], np.ndarray):
        return [np.ascontiguousarray(c) for c in clip_or_crops]
    return clip_to_images(clip_or_crops)


def save_cam_overlays(clip_or_crops, cam: np.ndarray, out_dir: str | Path, top_k: int = 4,
                      alpha: float = 0.45) -> list[Path]:
    """Write PNG overlays of the `top_k` frames with the most Grad-CAM mass (the frames that drove the decision).

    Takes the clip given to grad_cam (or the matching list of RGB uint8 crops), its (T, H, W) map and
    an output folder. Returns the PNG paths, most important first, named `cam_<rank>_frame<t>.png`.
    Raises ValueError when the number of frames and maps differ.
    """
    import cv2


    images = _as_images(clip_or_crops)
    cam = np.asarray(cam)
    if len(images) != cam.shape[0]:
        raise ValueError(f"{len(images)} frames but {cam.shape[0]} Grad-CAM maps; pass the clip given to grad_cam")
    order = np.argsort(-frame_importance(cam), kind="stable")[: max(1, int(top_k))]
    out_dir = Path(out_dir)
    paths = []
    for rank, t in enumerate(order, start=1):
        ok, png = cv2.imencode(".png", cv2.cvtColor(overlay(images[t], cam[t], alpha), cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"PNG encoding failed for frame {t}")
        path = out_dir / f"cam_{rank}_frame{int(t):03d}.png"
        with atomic_write(path, "wb") as f:
            f.write(png.tobytes())
        paths.append(path)
    return paths


def cam_figure(clip_or_crops, cam: np.ndarray, top_k: int = 4, title: str | None = None):
    """A matplotlib Figure for notebooks: the top_k frames (top row) and their overlays (bottom row)."""
    from matplotlib.figure import Figure

    images = _as_images(clip_or_crops)
    share = frame_importance(cam)
    order = np.argsort(-share, kind="stable")[: max(1, int(top_k))]
    fig = Figure(figsize=(2.4 * len(order), 5), layout="constrained")
    axes = fig.subplots(2, len(order), squeeze=False)
    for col, t in enumerate(order):
        axes[0, col].imshow(images[t])
        axes[0, col].set_title(f"frame {t} ({100 * share[t]:.0f}%)", fontsize=9)
        axes[1, col].imshow(overlay(images[t], cam[t]))
        for ax in axes[:, col]:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig
