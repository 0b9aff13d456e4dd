"""Self-blended training fakes (dfdlib.selfblend): where a clip changes, one mask per clip, labels, seeds,
the trainer's `fakes` mode and its model file."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from dfdlib.faces import crop_face
from dfdlib.sample import SampleConfig, iter_frames, make_sample_dataset, read_manifest
from dfdlib.selfblend import SelfBlendDataset, crop_ellipse, wrap_train

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
def test_train_on_real_videos_only_with_self_blend(crops, tmp_path):
    """All-real train split + val/test with labelled fakes: trains, and the model file loads weights_only."""
    from dfdlib.trainer import TrainConfig, train

    root, df = crops
    df = df.copy()  # real_000..002, fake_000 (self-blend), swap_000: the train split holds one real video
    df["split"] = df["filename"].map({"real/real_000": "train", "real/real_001": "val", "real/real_002": "test",
                                      "fake/fake_000": "val", "fake/swap_000": "test"})
    assert df["split"].notna().all() and set(df[df.split == "train"].label) == {0}
    csv = tmp_path / "labels.csv"
    df.to_csv(csv, index=False)
    cfg = TrainConfig(dataset_path=str(root), csv_file=str(csv), out_dir=str(tmp_path / "run"), sequence_length=4,
                      batch_size=2, num_epochs=1, device="cpu", num_workers=0, backbone="tiny", weights=None,
                      hidden_dim=16, image_size=32, early_stopping=0, warmup_epochs=0, show_progress=False,
                      fakes="self-blend")
    res = train(cfg)
    state = torch.load(res.best_model_path, map_location="cpu", weights_only=True)
    assert state["meta"]["train"]["fakes"] == "self-blend"
    assert len(res.history) == 1 and np.isfinite(res.history["train_loss"]).all()
    from dfdlib.model import load_model

    model = load_model(res.best_model_path, "cpu")
    assert model.meta["train"]["fakes"] == "self-blend"
