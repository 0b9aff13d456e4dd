"""Data: frame selection and order, padding, RGB, transforms v2 per clip, dataset, cache, path safety."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import dfdlib.data as data
from dfdlib.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FaceSequenceDataset,
    augment_batch,
    build_transforms,
    clip_transforms,
    frames_to_clip,
    read_clip,
)
from dfdlib.labels.io import read_labels
from dfdlib.video import sample_indices

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def write_frames(folder, n, size=32, color=None, seed=0):
    """frame_<i>.jpg with grey level 10*i (so order is readable back), or a fixed BGR colour, or noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        if color == "noise":
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        elif color is not None:
            img = np.full((size, size, 3), color, np.uint8)
        else:
            img = np.full((size, size, 3), 10 * i, np.uint8)
        assert cv2.imwrite(str(folder / f"frame_{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    return folder


@pytest.fixture
def processed(tmp_path):
    """processed/{real,fake}/<video>/frame_<i>.jpg: 3 real and 3 fake videos, one of them short, and their
    labels table as the labels stage reads labels.csv."""
    root = tmp_path / "processed"
    rows = []
    for label, kind in ((0, "real"), (1, "fake")):
        for j in range(3):
            write_frames(root / kind / f"v{j}", 12 if j else 5, color="noise", seed=10 * label + j)
            rows.append({"filename": f"{kind}/v{j}", "label": label, "split": "train" if j < 2 else "val"})
    csv = tmp_path / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return root, read_labels(csv)


def grey_levels(clip: torch.Tensor) -> list[int]:
    return [round(v / 10) for v in clip.float().mean(dim=(1, 2, 3)).tolist()]


# --------------------------------------------------------------------------------------------- read_clip
def test_frame_order_is_numeric(tmp_path):
    folder = write_frames(tmp_path / "v", 12)
    clip, n, padded = read_clip(folder, 12, sampling="first")
    assert clip.dtype == torch.uint8 and clip.shape == (12, 3, 32, 32)
    assert (n, padded) == (12, False)
    assert grey_levels(clip) == list(range(12))  # frame_10 comes after frame_9, not after frame_1


def test_even_and_first_sampling(tmp_path):
    folder = write_frames(tmp_path / "v", 12)
    # "even": the middle frame of each of 4 equal segments, the rule video.sample_indices samples videos with
    assert grey_levels(read_clip(folder, 4)[0]) == [1, 4, 7, 10] == sample_indices(12, 4, "even")
    assert grey_levels(read_clip(folder, 4, sampling="first")[0]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="sampling"):
        read_clip(folder, 4, sampling="random")


def test_short_folder_is_padded_with_last_frame(tmp_path):
    folder = write_frames(tmp_path / "v", 3)
    clip, n, padded = read_clip(folder, 6)
    assert (n, padded) == (3, True)
    assert grey_levels(clip) == [0, 1, 2, 2, 2, 2]


def test_red_stays_red(tmp_path):
    folder = write_frames(tmp_path / "red", 2, color=(0, 0, 255))  # OpenCV writes BGR: this is pure red
    clip, _, _ = read_clip(folder, 2)
    r, g, b = clip.float().mean(dim=(0, 2, 3)).tolist()
    assert r > 240 and g < 15 and b < 15
    x = build_transforms(False, 16)(clip)
    assert x[:, 0].mean() > 2 and x[:, 2].mean() < -1.5  # red channel high after ImageNet normalisation
    fresh = frames_to_clip([np.full((20, 20, 3), (255, 0, 0), np.uint8)] * 2, 2, 16)  # RGB arrays from predict
    assert torch.allclose(fresh, x, atol=0.1)


def test_missing_empty_and_corrupt_folders(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_clip(tmp_path / "nope", 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no frame_<i>.jpg"):
        read_clip(tmp_path / "empty", 4)
    folder = write_frames(tmp_path / "v", 2)
    (folder / "frame_1.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match=r"frame_1\.jpg"):
        read_clip(folder, 2)


# --------------------------------------------------------------------------------------------- transforms
def test_eval_transform_values_and_shape():
    clip = torch.full((3, 3, 40, 40), 128, dtype=torch.uint8)
    x = build_transforms(False, 24)(clip)
    assert x.dtype == torch.float32 and x.shape == (3, 3, 24, 24)
    assert torch.allclose(x, ((128 / 255 - MEAN) / STD).expand_as(x), atol=1e-5)


def test_train_augmentation_is_the_same_for_all_frames_of_a_clip():
    torch.manual_seed(0)
    frame = torch.randint(0, 256, (3, 48, 48), dtype=torch.uint8)
    clip = frame.expand(8, 3, 48, 48).contiguous()
    train = build_transforms(True, 32)
    outs = []
    for seed in range(12):
        torch.manual_seed(seed)
        x = train(clip)
        assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and torch.isfinite(x).all()
        assert torch.equal(x, x[:1].expand_as(x))  # one set of random parameters per clip
        outs.append(x[0])
    assert len({o.sum().item() for o in outs}) > 6  # and it does vary from clip to clip
    eval_x = build_transforms(False, 32)(clip)[0]
    assert not any(torch.allclose(o, eval_x) for o in outs[:3])


@pytest.mark.parametrize("augment,augment_on,device,side", [
    (False, "auto", "cuda", None), (False, "device", "cpu", None), (False, "workers", "cuda", None),
    (True, "workers", "cpu", "workers"), (True, "workers", "cuda", "workers"),
    (True, "device", "cpu", "device"), (True, "device", "cuda", "device"),
    (True, "auto", "cpu", "workers"), (True, "auto", "mps", "workers"), (True, "auto", "cuda:1", "device"),
    (True, "auto", torch.device("cuda"), "device"),
])
def test_clip_transforms_decides_where_augmentation_runs(augment, augment_on, device, side):
    """The one rule (data.clip_transforms): which side augments, and the same draws on either side."""
    size, seed = 24, 3
    clip = torch.randint(0, 256, (4, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    tfs = clip_transforms(size, augment, augment_on, device)
    evaluated = build_transforms(False, size)(clip)
    assert torch.equal(tfs.eval(clip), evaluated)
    torch.manual_seed(seed)
    augmented = build_transforms(True, size)(clip)
    torch.manual_seed(seed)
    handed_over = tfs.worker(clip)
    if side is None:
        assert tfs.device is None and torch.equal(handed_over, evaluated)
    elif side == "workers":
        assert tfs.device is None and torch.equal(handed_over, augmented)
    else:  # the workers only resize; the device draws what a worker would have drawn for that seed
        assert handed_over.dtype == torch.uint8 and torch.equal(handed_over, clip)
        assert torch.equal(augment_batch(handed_over[None], [seed], tfs.device)[0], augmented)


def test_clip_transforms_refuses_an_unknown_place():
    with pytest.raises(ValueError, match="augment_on"):
        clip_transforms(24, True, "gpu")


# --------------------------------------------------------------------------------------------- dataset
@pytest.mark.parametrize("t", [1, 10, 20])
def test_dataset_shapes_and_loader(processed, t):
    root, labels = processed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = FaceSequenceDataset(labels, root, t, transform=build_transforms(True, 24))
    assert sum("are padded" in str(w.message) for w in caught) == (1 if t > 5 else 0)
    assert len(ds) == 6 and ds.labels == [0, 0, 0, 1, 1, 1]
    x, y = ds[3]
    assert x.shape == (t, 3, 24, 24) and y == 1
    batch, labels = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch.shape == (4, t, 3, 24, 24) and torch.isfinite(batch).all()
    assert labels.tolist() == [0, 0, 0, 1]
    short = {"real/v0", "fake/v0"} if t > 5 else set()  # 5 frames; the others have 12
    assert set(ds.padded) == (set(ds.filenames) if t > 12 else short)


def test_dataset_split_and_dataframe_input(processed):
    root, labels = processed
    df = labels
    ds = FaceSequenceDataset(df, root, 4, split="train", image_size=16)
    assert ds.filenames == ["real/v0", "real/v1", "fake/v0", "fake/v1"]
    assert ds[0][0].shape == (4, 3, 16, 16)
    assert len(FaceSequenceDataset(labels, root, 4, split=["train", "val"])) == 6
    with pytest.raises(ValueError, match=r"no rows with split in \['test'\].*\['train', 'val'\]"):
        FaceSequenceDataset(labels, root, 4, split="test")
    with pytest.raises(ValueError, match="no 'split' column"):
        FaceSequenceDataset(df.drop(columns="split"), root, 4, split="train")


def test_dataset_takes_the_labels_table_not_a_csv(processed, tmp_path):
    root, labels = processed
    csv = tmp_path / "labels.csv"
    with pytest.raises(TypeError, match=r"labels table.*dfdlib.read_labels\("):
        FaceSequenceDataset(csv, root, 4)
    with pytest.raises(FileNotFoundError, match="processed folder"):
        FaceSequenceDataset(labels, tmp_path / "nowhere", 4)
    text = labels.assign(label=["REAL" if y == 0 else "fake" for y in labels["label"]])  # the one label parser
    assert FaceSequenceDataset(text, root, 4).labels == FaceSequenceDataset(labels, root, 4).labels


def test_frames_to_clip_matches_dataset(processed):
    root, labels = processed
    ds = FaceSequenceDataset(labels, root, 7, split="train", image_size=20)
    folder = root / ds.filenames[1]
    fresh = [cv2.cvtColor(cv2.imread(str(folder / f"frame_{i}.jpg")), cv2.COLOR_BGR2RGB) for i in range(12)]
    assert torch.allclose(frames_to_clip(fresh, 7, 20), ds[1][0], atol=0.05)
    with pytest.raises(ValueError, match="RGB uint8"):
        frames_to_clip([np.zeros((8, 8), np.uint8)], 2, 8)
    with pytest.raises(ValueError, match="no face frames"):
        frames_to_clip([], 2, 8)


def test_cache_returns_same_tensor_without_decoding_again(processed, monkeypatch):
    root, labels = processed
    calls = []
    decode = data._decode_frames
    monkeypatch.setattr(data, "_decode_frames", lambda paths: calls.append(len(paths)) or decode(paths))
    ds = FaceSequenceDataset(labels, root, 6, split="train", cache=True, image_size=16)
    first = ds[1][0]
    assert len(calls) == 1
    second = ds[1][0]
    assert len(calls) == 1 and torch.equal(first, second)
    uncached = FaceSequenceDataset(labels, root, 6, split="train", image_size=16)
    assert torch.equal(uncached[1][0], first) and len(calls) == 2
    uncached[1]
    assert len(calls) == 3


@pytest.mark.parametrize("bad", ["../outside", "/etc", "real/../../outside", "C:\\videos\\x"])
def test_paths_must_stay_inside_root(processed, bad):
    root, _ = processed
    write_frames(root.parent / "outside", 3)
    df = pd.DataFrame({"filename": ["real/v1", bad], "label": [0, 1]})
    with pytest.raises(ValueError, match=r"row 2 .*relative to the processed root"):
        FaceSequenceDataset(df, root, 3)


def test_bad_rows_named_or_skipped(processed):
    root, _ = processed
    (root / "fake" / "empty").mkdir()
    df = pd.DataFrame({"filename": ["real/v1", "real/gone", "fake/empty"], "label": [0, 0, 1]})
    with pytest.raises(ValueError, match=r"2 labelled video\(s\).*row 2 \('real/gone'\).*does not exist"):
        FaceSequenceDataset(df, root, 3)
    with pytest.warns(UserWarning, match="skipped 2"):
        ds = FaceSequenceDataset(df, root, 3, skip_bad=True)
    assert ds.filenames == ["real/v1"] and [s[0] for s in ds.skipped] == ["real/gone", "fake/empty"]
    with pytest.raises(ValueError, match=r"row 1 .*label 'maybe'"):
        FaceSequenceDataset(pd.DataFrame({"filename": ["real/v1"], "label": ["maybe"]}), root, 3)
    with pytest.raises(ValueError, match="lacks column"):
        FaceSequenceDataset(pd.DataFrame({"filename": ["real/v1"]}), root, 3)


@pytest.fixture
def pipeline_outputs(request):
    """conftest's processed_dir/labels_csv, when the earlier stages are installed in this checkout."""
    for mod in ("sample", "preprocess", "labels"):
        pytest.importorskip(f"dfdlib.{mod}")
    return request.getfixturevalue("processed_dir"), request.getfixturevalue("labels_csv")


def test_dataset_on_preprocessed_sample(pipeline_outputs):
    processed_dir, labels_csv = pipeline_outputs
    ds = FaceSequenceDataset(read_labels(labels_csv), processed_dir, 8, image_size=32)
    assert ds.padded == [] and sorted(set(ds.labels)) == [0, 1]
    x, y = ds[0]
    assert x.shape == (8, 3, 32, 32) and torch.isfinite(x).all() and y in (0, 1)


def test_a_short_folder_is_padded_with_frames_the_model_leaves_out(tmp_path):
    from dfdlib.model import frame_mask

    write_frames(tmp_path / "p" / "real" / "v", 5)
    ds = FaceSequenceDataset(pd.DataFrame({"filename": ["real/v"], "label": [0]}), tmp_path / "p", 8, image_size=32)
    clip, _ = ds[0]
    assert frame_mask(clip[None]).tolist() == [[True] * 5 + [False] * 3]
    fresh = frames_to_clip([np.full((20, 20, 3), 90, np.uint8)] * 3, 6, 16)  # prediction pads the same way
    assert frame_mask(fresh[None]).tolist() == [[True] * 3 + [False] * 3]
