"""The LSTM earns its place: a dataset where only the order of the frames tells real from fake.

A real clip shows a square moving steadily across the frame; its fake is the same frames shuffled. Every
fake holds exactly the frames of a real clip, so any model that averages per-frame evidence (the
frame-average baseline: same backbone, mean of the frame features, linear layer) gives a real clip and its
fake the same score and cannot beat chance (ROC-AUC 0.5 by construction), whatever it learns. The
ResNeXt-LSTM sees the motion and must separate them.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from dfdlib.model import ResNeXtLSTM
from dfdlib.utils import seed_everything

T, SIZE = 8, 32


def motion_clips(n_pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(2n, T, 3, S, S) normalised clips and labels: n moving-square reals, then their shuffled fakes."""
    rng = np.random.default_rng(seed)
    reals, fakes = [], []
    for _ in range(n_pairs):
        step = int(rng.choice([-3, 3]))
        x0 = 2 if step > 0 else SIZE - 10
        y0 = int(rng.integers(2, SIZE - 10))
        frames = rng.normal(0.0, 0.3, (T, 3, SIZE, SIZE)).astype(np.float32)
        for t in range(T):
            frames[t, :, y0:y0 + 8, x0 + t * step:x0 + t * step + 8] += 2.0
        order = rng.permutation(T)
        while np.all(np.diff(order) > 0) or np.all(np.diff(order) < 0):  # a shuffle, not the same motion
            order = rng.permutation(T)
        reals.append(frames)
        fakes.append(frames[order])
    x = torch.from_numpy(np.stack(reals + fakes))
    return x, torch.tensor([0] * n_pairs + [1] * n_pairs)


class FrameAverage(nn.Module):
    """The baseline: the LSTM model's backbone per frame, features averaged over time, a linear layer."""

    def __init__(self):
        super().__init__()
        self.frames = ResNeXtLSTM(backbone="tiny", hidden_dim=32)  # its backbone + pooling, not its LSTM
        self.fc = nn.Linear(self.frames.lstm.input_size, 2)

    def forward(self, x):
        b, t = x.shape[:2]
        fmap = self.frames.backbone(x.flatten(0, 1))
        feats = self.frames.proj(self.frames.avgpool(fmap).flatten(1)).view(b, t, -1)
        return self.fc(feats.mean(dim=1))


def fit(model: nn.Module, x, y, epochs: int) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(16):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def auc(model, x, y) -> float:
    with torch.inference_mode():
        p = torch.softmax(model(x), 1)[:, 1].numpy()
    return float(roc_auc_score(y.numpy(), p)), p


@pytest.mark.slow
def test_the_lstm_learns_motion_that_a_frame_average_cannot_see():
    seed_everything(0)
    x, y = motion_clips(48, seed=0)
    xt, yt = motion_clips(24, seed=1)
    lstm = fit(ResNeXtLSTM(backbone="tiny", hidden_dim=32, dropout=0.0), x, y, epochs=25)
    baseline = fit(FrameAverage(), x, y, epochs=25)
    lstm_auc, _ = auc(lstm, xt, yt)
    base_auc, p = auc(baseline, xt, yt)
    np.testing.assert_allclose(p[:24], p[24:], atol=1e-5)  # a fake scores exactly as its real twin
    assert base_auc == pytest.approx(0.5, abs=0.02)
    assert lstm_auc >= 0.9, f"the LSTM model reached only ROC-AUC {lstm_auc:.3f} on held-out motion clips"
