"""Self-blended training fakes (dfdlib.training.selfblend): where a clip changes, one mask per clip, labels, seeds,
the trainer's `fakes` mode and its model file."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from dfdlib.preprocess.faces import crop_face
from dfdlib.sample.dataset import SampleConfig, iter_frames, make_sample_dataset, read_manifest
from dfdlib.training.selfblend import SelfBlendDataset, crop_ellipse, wrap_train

SIZE = 48


def ground_truth_crops(videos, processed, size: int = SIZE, frames: int = 6, margin: float = 0.3):
    """Processed folders (frame_<i>.jpg + faces.json) cut at the sample manifest's true face boxes: the
    layout preprocess writes, without running a face detector."""
    cfg, specs = read_manifest(videos)
    rows = []
    for spec in specs:
        name = spec["file"][:-4]
        dest = processed / name
        dest.mkdir(parents=True)
        picks = set(np.linspace(0, cfg.n_frames - 1, frames).round().astype(int).tolist())
        boxes = []
        for i, (frame, _) in enumerate(iter_frames(spec, cfg)):
            if i in picks:
                crop = crop_face(frame[:, :, ::-1], spec["face_boxes"][i], margin, size)
                cv2.imwrite(str(dest / f"frame_{len(boxes)}.jpg"), crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
                boxes.append(spec["face_boxes"][i])
        (dest / "faces.json").write_text(json.dumps({"boxes": boxes, "preprocess": {"margin": margin}}))
        rows.append({"filename": name, "label": spec["label"], "method": spec["method"]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    base = tmp_path_factory.mktemp("selfblend")
    videos = make_sample_dataset(base / "videos", SampleConfig(n_real=3, n_fake=1, seconds=0.6, fps=10, width=192,
                                                               height=144, fakes=("self-blend", "swap")),
                                 progress=False)
    df = ground_truth_crops(videos, base / "processed")
    return base / "processed", df


def dataset(crops, **kw):
    from dfdlib.data import FaceSequenceDataset

    root, df = crops
    return FaceSequenceDataset(df, root, sequence_length=4, **kw)


# ------------------------------------------------------------------------------------ where it changes
def test_blend_changes_only_inside_one_mask_per_clip(crops):
    ds = SelfBlendDataset(dataset(crops), "self-blend", seed=0, vary=False)
    for i in range(len(ds)):
        clip, masks = ds.read_uint8(i, masks=True)
        source = ds.base.read_uint8(ds.items[i][0])
        if not ds.is_blend(i):
            assert masks is None and torch.equal(clip, source)
            continue
        assert clip.shape == source.shape and clip.dtype == torch.uint8
        diff = (clip.int() - source.int()).abs().amax(dim=1).numpy()  # (T, H, W)
        assert not diff[masks == 0].any()  # outside the soft mask: bit-identical
        assert diff[masks > 0.5].mean() > 3  # inside: a visible change
        for m in masks[1:]:
            assert np.array_equal(m, masks[0])  # jitter=0: the same mask on every frame
        ys, xs = np.nonzero(masks[0] > 0.5)  # a face-sized blob in the middle of the crop
        assert 0.3 * SIZE < ys.max() - ys.min() < 0.8 * SIZE
        assert abs(xs.mean() - SIZE / 2) < 0.1 * SIZE


def test_jitter_moves_the_mask_a_little(crops):
    ds = SelfBlendDataset(dataset(crops), "self-blend", seed=0, vary=False, jitter=1.0)
    i = next(i for i in range(len(ds)) if ds.is_blend(i))
    _, masks = ds.read_uint8(i, masks=True)
    a, b = masks[0] > 0.5, masks[-1] > 0.5
    iou = (a & b).sum() / (a | b).sum()
    assert not np.array_equal(masks[0], masks[-1]) and iou > 0.8
    clip = ds.read_uint8(i)
    source = ds.base.read_uint8(ds.items[i][0])
    diff = (clip.int() - source.int()).abs().amax(dim=1).numpy()
    assert not diff[masks == 0].any()  # each frame still changes only inside its own mask
    still = SelfBlendDataset(dataset(crops), "self-blend", seed=0, vary=False)
    _, fixed = still.read_uint8(i, masks=True)
    assert np.array_equal(fixed[0], fixed[-1])  # the same draw without jitter: one mask
    assert ((fixed[0] > 0.5) ^ a).sum() < 0.1 * a.sum()  # jitter only nudges it


# ---------------------------------------------------------------------------------------------- labels
def test_labels_of_each_mode(crops):
    base = dataset(crops)
    n_real = base.labels.count(0)
    solo = SelfBlendDataset(base, "self-blend")
    assert solo.labels == [0] * n_real + [1] * n_real and solo.dropped == base.labels.count(1) == 2
    assert [solo.base.labels[j] for j, _ in solo.items[:n_real]] == [0] * n_real
    mixed = SelfBlendDataset(base, "mixed")
    assert mixed.labels == base.labels + [1] * n_real and mixed.dropped == 0
    for ds in (solo, mixed):
        assert [ds[i][1] for i in range(len(ds))] == ds.labels
        assert ds[0][0].dtype == torch.float32  # the dataset's transform still runs
    with pytest.raises(ValueError, match="mode"):
        SelfBlendDataset(base, "none")
    root, df = crops
    from dfdlib.data import FaceSequenceDataset

    only_fakes = FaceSequenceDataset(df[df.label == 1], root, sequence_length=4)
    with pytest.raises(ValueError, match="real"):
        SelfBlendDataset(only_fakes, "self-blend")


def test_wrap_train_modes_and_val_without_fakes(crops):
    base = dataset(crops)
    assert wrap_train(base, "none", 0) is base
    with pytest.raises(ValueError, match="self-blend"):
        wrap_train(base, "self-blends", 0)
    lines: list[str] = []
    ds = wrap_train(base, "self-blend", 0, val_labels=[0, 0], log=lines.append)
    assert isinstance(ds, SelfBlendDataset)
    assert "3 self-blended clips" in lines[0] and "2 fake clips are left out" in lines[0]
    assert "val ROC-AUC cannot be computed" in lines[1]
    lines.clear()
    wrap_train(base, "mixed", 0, val_labels=[0, 1], log=lines.append)
    assert len(lines) == 1


# ------------------------------------------------------------------------------------------- seeding
def test_reproducible_with_a_seed(crops):
    base = dataset(crops)
    i = len(SelfBlendDataset(base)) - 1  # a blended item
    fixed = [SelfBlendDataset(base, seed=s, vary=False).read_uint8(i) for s in (1, 1, 2)]
    assert torch.equal(fixed[0], fixed[1]) and not torch.equal(fixed[0], fixed[2])
    ds = SelfBlendDataset(base, seed=1)  # vary=True: drawn from torch's generator, as the trainer seeds it
    runs = []
    for s in (5, 5, 6):
        torch.manual_seed(s)
        runs.append(ds.read_uint8(i))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_crop_ellipse_from_boxes_and_keypoints():
    (cx, cy), (ax, ay) = crop_ellipse(160)  # default geometry: a square box with 30 % margin
    assert cx == 80 and 80 < cy < 100 and 0.2 < ax / 160 < 0.35 and 0.2 < ay / 160 < 0.35
    box = [100.0, 50.0, 200.0, 170.0]  # 100 x 120: crop side 120 * 1.6 = 192 px, shown at 192 px
    kp = {"left_eye": [130, 100], "right_eye": [170, 100], "nose": [150, 120],
          "mouth_left": [135, 140], "mouth_right": [165, 140]}
    (cx, cy), (ax, ay) = crop_ellipse(192, {"boxes": [box], "keypoints": [kp], "preprocess": {"margin": 0.3}})
    left, top = 150 - 96, 110 - 96  # crop origin in the frame
    assert cx == pytest.approx(150 - left) and cy == pytest.approx(120 + 6 - top)
    assert ax == pytest.approx(40) and ay == pytest.approx(48)
    (cx, cy), (ax, ay) = crop_ellipse(192, {"boxes": [box, None], "keypoints": None})
    assert (cx, ax) == (96, pytest.approx(49)) and cy > 96


# ------------------------------------------------------------------------------------ the trainer mode
def _train_cfg(root, csv, out, **kw):
    from dfdlib.training.loop import TrainConfig

    return TrainConfig(dataset_path=str(root), csv_file=str(csv), out_dir=str(out), sequence_length=4,
                       batch_size=2, num_epochs=1, device="cpu", num_workers=0, backbone="tiny", weights=None,
                       hidden_dim=16, image_size=32, early_stopping=0, warmup_epochs=0, show_progress=False,
                       fakes="self-blend", **kw)


@pytest.fixture(scope="module")
def real_only_split(crops, tmp_path_factory):
    """labels.csv with an all-real train split; val and test hold labelled fakes of both families."""
    root, df = crops
    df = df.copy()  # real_000..002, fake_000 (self-blend), swap_000: the train split holds one real video
    df["split"] = df["filename"].map({"real/real_000": "train", "real/real_001": "val", "real/real_002": "test",
                                      "fake/fake_000": "val", "fake/swap_000": "test"})
    assert df["split"].notna().all() and set(df[df.split == "train"].label) == {0}
    csv = tmp_path_factory.mktemp("labels") / "labels.csv"
    df.to_csv(csv, index=False)
    return root, df, csv


def test_train_on_real_videos_only_with_self_blend(real_only_split, tmp_path, monkeypatch):
    """Trains from real videos alone; self-blends never reach val/test; the model file loads weights_only
    and predicts."""
    from dfdlib.model import load_model
    from dfdlib.predict.evaluate import evaluate_model
    from dfdlib.training.loop import train

    root, df, csv = real_only_split
    blended, built = [], []  # (clip read) filenames of every self-blend made; every SelfBlendDataset made
    read, init = SelfBlendDataset.read_uint8, SelfBlendDataset.__init__

    def spy_read(self, index, masks=False):
        if self.is_blend(index):
            blended.append(self.base.filenames[self.items[index][0]])
        return read(self, index, masks)

    def spy_init(self, base, *a, **kw):
        built.append(list(base.filenames))
        init(self, base, *a, **kw)

    monkeypatch.setattr(SelfBlendDataset, "read_uint8", spy_read)
    monkeypatch.setattr(SelfBlendDataset, "__init__", spy_init)
    res = train(_train_cfg(root, csv, tmp_path / "run"))
    train_names = df[df.split == "train"].filename.tolist()
    assert built == [train_names]  # one self-blend dataset: the training split's
    assert blended and set(blended) == set(train_names)
    for split, m in (("val", res.val_metrics), ("test", res.test_metrics)):
        rows = df[df.split == split]  # the dataset's own videos, nothing added
        assert (m["n_real"], m["n_fake"]) == ((rows.label == 0).sum(), (rows.label == 1).sum())
    doc = json.loads((res.run_dir / "metrics.json").read_text())
    assert doc["test"]["n"] == (df.split == "test").sum() and doc["val"]["n"] == (df.split == "val").sum()
    assert len(res.history) == 1 and np.isfinite(res.history["train_loss"]).all()

    state = torch.load(res.best_model_path, map_location="cpu", weights_only=True)
    assert state["meta"]["train"]["fakes"] == "self-blend"
    model = load_model(res.best_model_path, "cpu")
    assert model.meta["train"]["fakes"] == "self-blend"
    out = evaluate_model(model, df, root, split=None, threshold=0.5, progress=False, device="cpu",
                         out_dir=tmp_path / "eval")
    assert out["n"] == len(df) and out["roc_auc"] is not None
    probs = pd.read_csv(tmp_path / "eval" / "predictions.csv")["prob_fake"].to_numpy()
    assert probs.size == len(df) and np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()


def test_self_blend_run_is_reproducible_with_its_seed(real_only_split, tmp_path):
    from dfdlib.training.loop import train

    root, _, csv = real_only_split
    runs = [train(_train_cfg(root, csv, tmp_path / f"run{k}", seed=s)) for k, s in enumerate((3, 3, 4))]
    w = [torch.load(r.best_model_path, map_location="cpu", weights_only=True)["state_dict"] for r in runs]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])  # same seed: same blends, same weights
    assert not all(torch.equal(w[0][k], w[2][k]) for k in w[0])
