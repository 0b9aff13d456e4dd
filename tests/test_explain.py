"""Grad-CAM: shape and range on the real models, localisation on a model whose answer is known."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from dfdlib.model import LegacyResNeXtLSTM, ResNeXtLSTM
from dfdlib.predict.explain import cam_figure, clip_to_images, frame_importance, grad_cam, save_cam_overlays


class BrightnessModel(nn.Module):
    """FAKE log-odds = mean of ReLU(sum of channels): evidence is exactly where the input is bright."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.ReLU())
        nn.init.constant_(self.backbone[0].weight, 1.0)
        self.meta = {"class_names": ["REAL", "FAKE"], "threshold": 0.5}

    def forward(self, x):
        b, t = x.shape[:2]
        score = self.backbone(x.flatten(0, 1)).mean(dim=(1, 2, 3)).view(b, t).mean(dim=1)
        return torch.stack([-score / 2, score / 2], dim=1)


def _patch_clip(T=4, size=32, frame=2):
    clip = torch.zeros(T, 3, size, size)
    clip[frame, :, 4:12, 20:28] = 1.0  # a bright square in one frame only
    return clip


def test_grad_cam_localises_the_evidence():
    model = BrightnessModel().eval()
    cam = grad_cam(model, _patch_clip(), target="fake")
    assert cam.shape == (4, 32, 32) and cam.dtype == np.float32
    assert np.allclose(cam[2, 4:12, 20:28], 1.0)
    outside = cam[2].copy()
    outside[4:12, 20:28] = 0
    assert outside.max() == 0 and cam[[0, 1, 3]].max() == 0
    share = frame_importance(cam)
    assert share.shape == (4,) and share.argmax() == 2 and share.sum() == pytest.approx(1.0)
    # Evidence for REAL is the opposite gradient: nothing survives the ReLU.
    assert grad_cam(model, _patch_clip(), target="real").max() == 0
    # "pred": the model says FAKE (score > 0), so the map is the FAKE map.
    assert np.array_equal(grad_cam(model, _patch_clip(), target="pred"), cam)
    assert frame_importance(np.zeros((3, 4, 4))).tolist() == pytest.approx([1 / 3] * 3)


def test_grad_cam_on_tiny_model_shape_and_range():
    torch.manual_seed(0)
    model = ResNeXtLSTM(backbone="tiny", hidden_dim=32).eval()
    clip = torch.randn(6, 3, 64, 64)
    for target in ("fake", "real", "pred", 1):
        cam = grad_cam(model, clip, target=target)
        assert cam.shape == (6, 64, 64)
        assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    assert grad_cam(model, clip[None]).shape == (6, 64, 64)  # (1, T, 3, H, W) accepted too
    assert not model.training and all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="target"):
        grad_cam(model, clip, target="louder")
    with pytest.raises(ValueError, match="one clip"):
        grad_cam(model, torch.randn(2, 6, 3, 64, 64))
    with pytest.raises(TypeError, match="Ensemble"):
        grad_cam(object(), clip)


def test_grad_cam_on_resnext_legacy_model():
    torch.manual_seed(0)
    model = LegacyResNeXtLSTM().eval()  # the original project's ResNeXt50 + LSTM, random weights
    cam = grad_cam(model, torch.randn(2, 3, 64, 64), target="pred")
    assert cam.shape == (2, 64, 64) and np.isfinite(cam).all() and 0 <= cam.min() and cam.max() <= 1


def test_grad_cam_with_frozen_weights_still_works():
    model = BrightnessModel().eval().requires_grad_(False)
    assert grad_cam(model, _patch_clip())[2].max() == 1.0


def test_save_cam_overlays_writes_top_frames(tmp_path):
    model = BrightnessModel().eval()
    clip = _patch_clip(T=4, size=32, frame=2)
    cam = grad_cam(model, clip)
    paths = save_cam_overlays(clip, cam, tmp_path / "cam", top_k=2)
    assert [p.name for p in paths][0] == "cam_1_frame002.png" and len(paths) == 2
    img = cv2.imread(str(paths[0]))
    assert img.shape == (32, 32, 3)
    # Crops of another size than the clip: the map is resized onto each crop.
    crops = [np.full((48, 48, 3), 128, np.uint8) for _ in range(4)]
    paths = save_cam_overlays(crops, cam, tmp_path / "crops", top_k=1)
    assert cv2.imread(str(paths[0])).shape == (48, 48, 3)
    with pytest.raises(ValueError, match="frames"):
        save_cam_overlays(crops[:3], cam, tmp_path / "bad")
    assert not list(tmp_path.rglob("*.tmp"))


def test_clip_to_images_undoes_normalisation_and_figure():
    from dfdlib.data import IMAGENET_MEAN, IMAGENET_STD

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    clip = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    back = clip_to_images(clip)
    assert len(back) == 3 and np.abs(np.stack(back).astype(int) - images).max() <= 1
    fig = cam_figure(back, np.ones((3, 16, 16), np.float32), top_k=2)
    assert len(fig.axes) == 4
