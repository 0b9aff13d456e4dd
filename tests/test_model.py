"""Model: backbone factory, ResNeXtLSTM shapes, model files, the original project's checkpoints."""
from __future__ import annotations

import pathlib
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from dfdlib.model import (
    LegacyResNeXtLSTM,
    ResNeXtLSTM,
    create_backbone,
    load_model,
    save_model,
)

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def tiny(**kw) -> ResNeXtLSTM:
    torch.manual_seed(0)
    return ResNeXtLSTM(backbone="tiny", hidden_dim=32, **kw).eval()


# ---------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("num_classes", [1, 2])
@pytest.mark.parametrize("t", [1, 10, 20])
def test_tiny_forward_shapes(t, num_classes):
    model = tiny(num_classes=num_classes)
    x = torch.randn(2, t, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)
        p = model.prob_fake(logits)
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()


def test_tiny_backbone_is_small_and_keeps_resolution_early():
    net, dim = create_backbone("tiny")
    n_params = sum(p.numel() for p in net.parameters())
    assert dim == 128 and 200_000 <= n_params <= 500_000
    first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert first.stride == (1, 1)  # artefacts live in a few pixels
    assert net(torch.randn(2, 3, 112, 112)).shape == (2, 128, 7, 7)


def test_resnet18_backbone_feature_map():
    net, dim = create_backbone("resnet18")
    assert dim == 512
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_unknown_backbone_and_bad_input_shape():
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("vgg16")
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        tiny()(torch.randn(2, 3, 64, 64))


@pytest.mark.slow
def test_resnext50_forward_small_input():
    model = ResNeXtLSTM(weights=None).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 2, 3, 64, 64))
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()
    assert model.config()["latent_dim"] == 2048


def test_latent_projection_bidirectional_and_config():
    model = tiny(latent_dim=48, bidirectional=True, lstm_layers=2)
    assert isinstance(model.proj, nn.Linear) and model.fc.in_features == 64
    cfg = model.config()
    assert cfg == dict(num_classes=2, latent_dim=48, hidden_dim=32, lstm_layers=2, bidirectional=True,
                       dropout=0.4, backbone="tiny")
    rebuilt = ResNeXtLSTM(**cfg)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


def test_channels_last_same_output():
    model = tiny()
    x = torch.randn(2, 3, 3, 48, 48)
    with torch.no_grad():
        ref = model(x)
        model.to(memory_format=torch.channels_last)
        out = model(x)
    assert torch.allclose(ref, out, atol=1e-5)


def test_return_features_for_grad_cam():
    logits, fmap = tiny()(torch.randn(2, 3, 3, 32, 32), return_features=True)
    assert logits.shape == (2, 2) and fmap.shape == (6, 128, 2, 2)


def test_prob_fake_respects_class_names():
    model = tiny()
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    expected = logits.softmax(-1)
    assert torch.allclose(model.prob_fake(logits), expected[:, 1])  # REAL, FAKE
    model.meta = {"class_names": ["FAKE", "REAL"]}
    assert torch.allclose(model.prob_fake(logits), expected[:, 0])
    assert LegacyResNeXtLSTM.default_class_names == ["FAKE", "REAL"]
    assert torch.allclose(tiny(num_classes=1).prob_fake(torch.tensor([[0.0], [2.0]])), torch.sigmoid(torch.tensor([0.0, 2.0])))


# --------------------------------------------------------------------------------------- backbone weights
def test_backbone_weights_from_path(tmp_path):
    torch.manual_seed(1)
    full = torchvision.models.resnet18(weights=None)
    state = {k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}  # fc is optional
    torch.save(state, tmp_path / "resnet18.pth")
    net, _ = create_backbone("resnet18", weights=tmp_path / "resnet18.pth")
    assert torch.equal(net[0].weight, full.conv1.weight)
    assert torch.equal(net[7][1].bn2.running_var, full.layer4[1].bn2.running_var)
    with pytest.raises(ValueError, match="do not fit backbone 'tiny'"):
        create_backbone("tiny", weights=tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match="not found"):
        create_backbone("resnet18", weights=tmp_path / "nope.pth")


def test_imagenet_weights_offline_gives_clear_error(tmp_path, monkeypatch):
    import dfdlib.backbones as m

    def offline(url):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(m, "_download_state_dict", offline)
    with pytest.raises(RuntimeError) as err:
        create_backbone("resnet18", weights="imagenet")
    msg = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg and "weights='path/to/" in msg

    # a file placed in the torch cache is used without any download
    torch.manual_seed(2)
    full = torchvision.models.resnet18(weights=None)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(full.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    net, _ = create_backbone("resnet18", weights="imagenet")
    assert torch.equal(net[0].weight, full.conv1.weight)


# ---------------------------------------------------------------------------------------------- model files
def test_save_load_round_trip(tmp_path):
    model = tiny(lstm_layers=2)
    meta = {"sequence_length": 4, "image_size": 48, "class_names": ["REAL", "FAKE"], "metrics": {"auc": 0.9},
            "preprocess": None, "sizes": (1, 2)}
    path = save_model(tmp_path / "models" / "model_4_acc_90.0_final_data.pt", nn.DataParallel(model), meta)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "dfdlib-model/1" and raw["meta"]["model"] == model.config()
    assert raw["meta"]["sizes"] == [1, 2]
    loaded = load_model(path, device="auto")
    assert isinstance(loaded, ResNeXtLSTM) and not loaded.training
    assert loaded.meta["sequence_length"] == 4 and loaded.meta["metrics"] == {"auc": 0.9}
    x = torch.randn(2, 4, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


@pytest.mark.parametrize("bad", [np.float64(0.5), pathlib.Path("runs/x"), {1: "a"}])
def test_save_model_rejects_non_plain_meta(tmp_path, bad):
    with pytest.raises(ValueError, match=r"meta\['metrics'\]"):
        save_model(tmp_path / "m.pt", tiny(), {"metrics": {"auc": bad}})
    assert not list(tmp_path.iterdir())


def test_load_model_bad_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "notes.pt").write_text("hello, I am not a model")
    with pytest.raises(ValueError, match=r"notes\.pt is not a PyTorch model file"):
        load_model(tmp_path / "notes.pt")
    good = save_model(tmp_path / "good.pt", tiny(), {})
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut\.pt .*truncated"):
        load_model(tmp_path / "cut.pt")
    torch.save({"epoch": 3, "optimizer": {}}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="not a model file"):
        load_model(tmp_path / "last.pt")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"linear1.weight": torch.zeros(2, 2), "payload": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="refused for safety") as err:
        load_model(tmp_path / "evil.pt")
    assert "evil.pt" in str(err.value)
    assert not marker.exists()


def test_wrong_architecture_lists_keys(tmp_path):
    path = save_model(tmp_path / "m.pt", tiny(), {})
    raw = torch.load(path, weights_only=True)
    raw["meta"]["model"]["backbone"] = "resnet18"  # file claims another backbone than its weights
    torch.save(raw, tmp_path / "claims_resnet18.pt")
    with pytest.raises(ValueError, match=r"claims_resnet18\.pt holds weights of another architecture.*missing keys"):
        load_model(tmp_path / "claims_resnet18.pt")
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "linear.pt")
    with pytest.raises(ValueError, match="not of the original project's layout"):
        load_model(tmp_path / "linear.pt")
    # legacy-looking keys, but a different backbone inside
    bogus = {f"model.{k}": v for k, v in create_backbone("tiny")[0].state_dict().items()}
    bogus.update({"lstm.weight_ih_l0": torch.zeros(8192, 2048), "lstm.weight_hh_l0": torch.zeros(8192, 2048),
                  "linear1.weight": torch.zeros(2, 2048), "linear1.bias": torch.zeros(2)})
    torch.save(bogus, tmp_path / "model_1_acc_10_frames_final_data.pt")
    with pytest.raises(ValueError, match=r"another architecture than LegacyResNeXtLSTM.*unexpected keys"):
        load_model(tmp_path / "model_1_acc_10_frames_final_data.pt")


# ------------------------------------------------------------------------------------ the original checkpoints
class OriginalModel(nn.Module):
    """The original project's class, as published (reference for the legacy mode)."""

    def __init__(self, num_classes, latent_dim=2048, lstm_layers=1, hidden_dim=2048, bidirectional=False):
        super().__init__()
        model = torchvision.models.resnext50_32x4d(weights=None)
        self.model = nn.Sequential(*list(model.children())[:-2])
        self.lstm = nn.LSTM(latent_dim, hidden_dim, lstm_layers, bidirectional)
        self.relu = nn.LeakyReLU()
        self.dp = nn.Dropout(0.4)
        self.linear1 = nn.Linear(2048, num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        batch_size, seq_length, c, h, w = x.shape
        x = x.view(batch_size * seq_length, c, h, w)
        fmap = self.model(x)
        x = self.avgpool(fmap)
        x = x.view(batch_size, seq_length, 2048)
        x_lstm, _ = self.lstm(x, None)
        return fmap, self.dp(self.linear1(torch.mean(x_lstm, dim=1)))


@pytest.fixture(scope="module")
def original_checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    ref = OriginalModel(2).eval()
    for m in ref.modules():  # non-trivial BN statistics so a wrong input convention would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("legacy") / "model_84_acc_10_frames_final_data.pt"
    torch.save(ref.state_dict(), path)
    return ref, path


@pytest.mark.slow
def test_legacy_checkpoint_detected_and_faithful(original_checkpoint):
    ref, path = original_checkpoint
    keys = set(torch.load(path, weights_only=True))
    assert {"model.0.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "linear1.weight", "linear1.bias"} <= keys
    assert "lstm.bias_ih_l0" not in keys  # bidirectional=False landed in `bias`

    model = load_model(path)
    assert isinstance(model, LegacyResNeXtLSTM) and not model.training
    meta = model.meta
    assert meta["legacy"] is True and meta["sequence_length"] == 10 and meta["image_size"] == 112
    assert meta["class_names"] == ["FAKE", "REAL"] and meta["reported_accuracy"] == 84.0

    torch.manual_seed(4)
    rgb = torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8)
    ours = (rgb / 255 - MEAN) / STD  # what dfdlib's transforms produce
    original_input = (rgb.flip(2) / 255 - MEAN) / STD  # the original: BGR frames, RGB statistics
    with torch.no_grad():
        per_clip = torch.cat([ref(original_input[i:i + 1])[1] for i in range(2)])  # the app ran one video at a time
        batched = ref(original_input)[1]
        out = model(ours)
        model.per_clip = False
        out_batched = model(ours)
    assert torch.allclose(out, per_clip, atol=1e-4)
    assert torch.allclose(out_batched, batched, atol=1e-4)
    assert not torch.allclose(per_clip, batched, atol=1e-4)  # the original's batch coupling is real
    assert torch.allclose(model.prob_fake(out), per_clip.softmax(-1)[:, 0])  # index 0 = FAKE


@pytest.mark.slow
def test_legacy_variants_load(original_checkpoint, tmp_path):
    ref, _ = original_checkpoint
    state = {f"module.{k}": v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old_dataparallel.pt")  # nn.DataParallel prefix, pre-1.0 BatchNorm keys
    model = load_model(tmp_path / "old_dataparallel.pt")
    assert isinstance(model, LegacyResNeXtLSTM) and model.meta["sequence_length"] is None
    # a legacy model re-saved in dfdlib's format comes back as a legacy model
    path = save_model(tmp_path / "legacy_resaved.pt", model, model.meta)
    again = load_model(path)
    assert isinstance(again, LegacyResNeXtLSTM) and again.class_names == ["FAKE", "REAL"]
    assert torch.equal(again.linear1.weight, ref.linear1.weight)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_padded_clip_scores_as_its_real_frames_alone(bidirectional):
    """Padding (all-zero frames, data.pad_frames) stays out of the LSTM and out of the mean over time."""
    from dfdlib.data import pad_frames
    from dfdlib.model import frame_mask

    torch.manual_seed(0)
    model = ResNeXtLSTM(backbone="tiny", hidden_dim=16, bidirectional=bidirectional).eval()
    short = torch.randn(1, 5, 3, 32, 32)
    padded = torch.cat([short, short[:, -1:].repeat(1, 3, 1, 1, 1)], 1)  # the last frame repeated, as loaded
    pad_frames(padded[0], 5)
    full = torch.randn(1, 8, 3, 32, 32)
    with torch.inference_mode():
        alone, both = model(short), model(torch.cat([padded, full]))
        repeated = model(torch.cat([short, short[:, -1:].repeat(1, 3, 1, 1, 1)], 1))
    assert frame_mask(torch.cat([padded, full])).sum(1).tolist() == [5, 8]
    assert torch.allclose(both[0], alone[0], atol=1e-5)  # a batch mixing short and full clips
    assert torch.allclose(both[1], model(full)[0], atol=1e-5)
    assert not torch.allclose(repeated[0], alone[0], atol=1e-4)  # what unmasked padding did


def test_legacy_model_leaves_padding_out_of_its_mean():
    from dfdlib.data import pad_frames

    torch.manual_seed(0)
    model = LegacyResNeXtLSTM(hidden_dim=16).eval()
    short = torch.randn(1, 4, 3, 32, 32)
    padded = pad_frames(torch.cat([short, short[:, -1:].repeat(1, 2, 1, 1, 1)], 1)[0], 4)[None]
    with torch.inference_mode():
        assert torch.allclose(model(padded), model(short), atol=1e-5)
