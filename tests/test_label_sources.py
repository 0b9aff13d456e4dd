"""`dfd labels` on the processed output of any layout (samples.csv from preprocess: groups, methods, official
splits), leakage checks of a user's CSV, and face-frame datasets (faces already cropped, any frame naming).

Processed trees are built without the detector: the layout scan of a tree of empty "videos" gives the
samples.csv preprocess would write, and each sample's folder gets empty frame_<i>.jpg files."""
from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfdlib import cli
from dfdlib.datasets.layouts import find_samples, samples_frame
from dfdlib.labels.io import read_labels, validate_labels
from dfdlib.labels.sources import from_frames_dataset, from_processed
from dfdlib.labels.splits import split_official
from dfdlib.utils import frame_files, frame_number

METHODS = ("Deepfakes", "FaceSwap")


def touch(root, *rels):
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def ffpp_src(root, pairs, methods=METHODS):
    for a, b in pairs:
        touch(root, f"original_sequences/youtube/c23/videos/{a}.mp4", f"original_sequences/youtube/c23/videos/{b}.mp4",
              *[f"manipulated_sequences/{m}/c23/videos/{x}.mp4" for m in methods for x in (f"{a}_{b}", f"{b}_{a}")])
    return root


def processed_from(src, out, frames=3, no_face=(), faces=None, **kw):
    """What `dfd preprocess src out` leaves, minus the crops' pixels: samples.csv, layout.json, frame folders
    (`faces`: filename → number of people, written as `<video>/face_<k>/` as max_faces > 1 does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layout, samples, _ = find_samples(src, **kw)
    df = samples_frame(samples)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "samples.csv", index=False)
    (out / "layout.json").write_text(json.dumps({"layout": layout}))
    for f in df["filename"]:
        n = (faces or {}).get(f, 0)
        if f not in no_face:
            touch(out, *[f"{f}/frame_{i}.jpg" if not n else f"{f}/face_{k}/frame_{i}.jpg"
                         for i in range(frames) for k in range(max(n, 1))])
    return out


def pairs_of(n):
    return [(f"{2 * i:03d}", f"{2 * i + 1:03d}") for i in range(n)]


def pair_split(df, pairs):
    """pair → set of splits its originals and fakes (every method) landed in."""
    pair_of = {x: a for a, b in pairs for x in (a, b)}
    ids = df["filename"].str.extract(r"/(\d{3})(?:_\d{3})?$")[0].map(pair_of)
    return df.groupby(ids)["split"].agg(set)


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


# ---------------------------------------------------------------- processed output of any layout
def test_ffpp_processed_nested_names_groups_methods(tmp_path):
    pairs = pairs_of(4)
    out = processed_from(ffpp_src(tmp_path / "ff", pairs), tmp_path / "proc", no_face={"fake/FaceSwap/c23/000_001"})
    with pytest.warns(UserWarning, match=r"1 sample\(s\) have no frames.*fake/FaceSwap/c23/000_001"):
        df = from_processed(out, tmp_path / "labels.csv", seed=1)
    assert len(df) == 8 + 4 * 2 * 2 - 1
    assert "fake/Deepfakes/c23/000_001" in set(df["filename"]) and "real/youtube/c23/000" in set(df["filename"])
    on_disk = pd.read_csv(tmp_path / "labels.csv", keep_default_na=False)
    assert {"group", "method", "split", "original", "source"} <= set(on_disk.columns)
    assert set(on_disk["method"]) == {"real", *METHODS} and set(on_disk["source"]) == {"ffpp"}
    assert (on_disk.groupby("group")["split"].nunique() == 1).all()
    assert on_disk["group"].nunique() == 4
    assert all(len(s) == 1 for s in pair_split(on_disk, pairs))
    assert set(on_disk["split"]) == {"train", "val", "test"}
    checked = validate_labels(tmp_path / "labels.csv", out, require_split=True)  # leak check passes
    assert len(checked) == len(df)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), n_pairs=st.integers(3, 10))
def test_ffpp_pairs_always_in_one_split_through_dfd_labels(tmp_path_factory, seed, n_pairs):
    """Over many seeds: `A`, `B`, `A_B`, `B_A` (every method) of the processed tree land in one split."""
    base = tmp_path_factory.mktemp("p")
    pairs = pairs_of(n_pairs)
    out = processed_from(ffpp_src(base / "ff", pairs), base / "proc", frames=1)
    df = quiet(from_processed, out, seed=seed)
    splits = pair_split(df, pairs)
    assert len(splits) == n_pairs and all(len(s) == 1 for s in splits), splits
    assert (df.groupby("group")["split"].nunique() == 1).all()


def test_ffpp_official_lists_recorded_by_preprocess_are_honoured(tmp_path):
    pairs = pairs_of(5)
    src = ffpp_src(tmp_path / "ff", pairs)
    (src / "splits").mkdir()
    for split, chosen in (("train", pairs[:3]), ("val", pairs[3:4]), ("test", pairs[4:])):
        (src / "splits" / f"{split}.json").write_text(json.dumps([list(p) for p in chosen]))
    touch(src, "original_sequences/actors/c23/videos/01__walking.mp4",
          "original_sequences/actors/c23/videos/02__hugging.mp4",
          "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walking__ABCDEFGH.mp4")
    out = processed_from(src, tmp_path / "proc")
    for seed in (0, 7):
        df = quiet(from_processed, out, seed=seed)
        got = pair_split(df, pairs)
        assert got["000"] == got["002"] == got["004"] == {"train"}
        assert got["006"] == {"val"} and got["008"] == {"test"}
        dfd = df[df["filename"].str.contains("actors|DeepFakeDetection")]
        assert dfd["split"].nunique() == 1  # not in any list: split by ratios, still as one group


def test_celebdf_test_list_goes_to_test_the_rest_to_train_val(tmp_path):
    src = tmp_path / "cdf"
    ids = [f"id{i}" for i in range(8)]
    touch(src, *[f"Celeb-real/{i}_0000.mp4" for i in ids], *[f"YouTube-real/{k:05d}.mp4" for k in range(4)],
          *[f"Celeb-synthesis/{a}_{b}_0000.mp4" for a, b in zip(ids, ids[1:] + ids[:1], strict=True)])
    (src / "List_of_testing_videos.txt").write_text(
        "1 Celeb-real/id0_0000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n1 YouTube-real/00003.mp4\n")
    df = quiet(from_processed, processed_from(src, tmp_path / "proc"), seed=3)
    test = set(df.loc[df["split"] == "test", "filename"])
    assert test == {"real/Celeb-real/id0_0000", "fake/Celeb-synthesis/id0_id1_0000", "real/YouTube-real/00003"}
    assert set(df["split"]) == {"train", "val", "test"}
    assert set(df.loc[df["method"] != "real", "method"]) == {"Celeb-synthesis"}


def test_tree_without_samples_csv_groups_by_name(tmp_path):
    root = tmp_path / "proc"
    touch(root, *[f"{d}/frame_{i}.jpg" for d in ("real/yt/000", "real/yt/003", "real/yt/001", "real/yt/002",
                                                 "fake/Deepfakes/000_003", "fake/FaceSwap/003_000",
                                                 "fake/FaceSwap/001_002", "fake/Deepfakes/002_001") for i in range(2)])
    df = quiet(from_processed, root, seed=5)
    g = dict(zip(df["filename"], df["group"], strict=True))
    assert g["real/yt/000"] == g["real/yt/003"] == g["fake/Deepfakes/000_003"] == g["fake/FaceSwap/003_000"]
    assert g["real/yt/001"] == g["fake/Deepfakes/002_001"] != g["real/yt/000"]
    assert dict(zip(df["filename"], df["method"], strict=True))["fake/FaceSwap/001_002"] == "FaceSwap"
    assert (df.groupby("group")["split"].nunique() == 1).all()


def test_faces_of_one_video_share_its_row_and_split(tmp_path):
    """max_faces=2 output (`<video>/face_<k>/`): one row per face, each with the video's group, method and
    original, and all faces of a video (and its original's) in one split, over several seeds."""
    pairs = pairs_of(6)
    src = ffpp_src(tmp_path / "ff", pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        videos = list(samples_frame(find_samples(src)[1])["filename"])
    two = {f: 2 for f in videos[::2]} | {videos[1]: 1}  # face_0 + face_1, or face_0 only, or a plain folder
    out = processed_from(src, tmp_path / "proc", faces=two)
    samples = pd.read_csv(out / "samples.csv", keep_default_na=False).set_index("filename")
    for seed in range(6):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no face folder is "missing" from or "extra" to samples.csv
            df = from_processed(out, seed=seed)
        assert len(df) == len(videos) + sum(n - 1 for n in two.values())
        for f, n in two.items():
            rows = df[df["filename"].str.startswith(f + "/face_")]
            assert list(rows["filename"]) == [f"{f}/face_{k}" for k in range(n)]
            for col in ("group", "method", "original"):
                assert set(rows[col]) == {samples.loc[f, col]}, (f, col)
            assert rows["split"].nunique() == 1
        assert (df.groupby("group")["split"].nunique() == 1).all()
        assert all(len(s) == 1 for s in pair_split(df.assign(filename=df["filename"].str.replace(
            r"/face_\d+$", "", regex=True)), pairs))
    # without samples.csv the faces still share their video's group (from its name) and method
    (out / "samples.csv").unlink()
    df = quiet(from_processed, out, seed=2)
    f = next(f for f in two if f.startswith("fake/") and two[f] == 2)
    rows = df[df["filename"].str.startswith(f + "/")]
    assert len(rows) == 2 and rows["group"].nunique() == rows["split"].nunique() == 1
    assert set(rows["method"]) == {f.split("/")[1]}
    real = df[df["filename"].str.startswith(f"real/youtube/c23/{f.split('/')[-1][:3]}")]
    assert len(real) and set(real["group"]) == set(rows["group"])  # A_B with its original A


def test_check_finds_faces_of_one_video_in_two_splits(tmp_path, capsys):
    out = processed_from(ffpp_src(tmp_path / "ff", pairs_of(2)), tmp_path / "proc",
                         faces={"fake/Deepfakes/c23/000_001": 2})
    user = tmp_path / "mine.csv"
    user.write_text("filename,label,split\nfake/Deepfakes/c23/000_001/face_0,1,train\n"
                    "fake/Deepfakes/c23/000_001/face_1,1,test\nreal/youtube/c23/002,0,val\n")
    assert cli.main(["labels", "--check", str(user), str(out)]) == 1
    assert "rows of one group" in capsys.readouterr().err


def test_split_official_keeps_placed_groups_whole():
    df = pd.DataFrame({"filename": list("abcdefgh"), "label": [0, 1, 0, 1, 0, 1, 0, 1],
                       "group": ["g1", "g1", "g2", "g2", "g3", "g3", "g4", "g4"],
                       "official": ["test", "", "", "", "", "", "", ""]})
    out = split_official(df, (0.7, 0.15, 0.15), seed=0)
    assert out.loc[out["group"] == "g1", "split"].tolist() == ["test", "test"]
    assert set(out.loc[out["group"] != "g1", "split"]) <= {"train", "val"}  # only a test list: rest is train/val
    assert "official" not in out.columns


# ---------------------------------------------------------------- dfd labels CLI
def test_cli_labels_on_ffpp_output_and_check_reports_leaking_rows(tmp_path, capsys):
    pairs = pairs_of(4)
    out = processed_from(ffpp_src(tmp_path / "ff", pairs), tmp_path / "proc")
    csv = tmp_path / "labels.csv"
    assert cli.main(["labels", str(out), "--out", str(csv)]) == 0
    assert "with group, method columns" in capsys.readouterr().out
    assert cli.main(["labels", "--check", str(csv), str(out)]) == 0
    # a user's own split without groups: original 000 in train, its fake 000_001 in test → leakage, exit 1
    user = tmp_path / "mine.csv"
    user.write_text("filename,label,split\nreal/youtube/c23/000,0,train\nreal/youtube/c23/002,0,val\n"
                    "fake/Deepfakes/c23/000_001,1,test\nfake/Deepfakes/c23/002_003,1,val\n")
    assert cli.main(["labels", "--check", str(user), str(out)]) == 1
    err = capsys.readouterr().err
    assert "line 2: rows of one group" in err
    assert "real/youtube/c23/000 (train)" in err and "fake/Deepfakes/c23/000_001 (test)" in err
    assert "[lines 2, 4]" in err and "002_003" not in err


def test_cli_labels_unreadable_samples_csv_names_the_file(tmp_path, capsys):
    root = tmp_path / "proc"
    touch(root, "real/a/frame_0.jpg", "fake/b/frame_0.jpg")
    (root / "samples.csv").write_text("video,whatever\nx,y\n")
    assert cli.main(["labels", str(root), "--out", str(tmp_path / "l.csv")]) == 1
    err = capsys.readouterr().err
    assert "samples.csv" in err and "filename,label" in err and "rerun" in err


# ---------------------------------------------------------------- face-frame datasets
def write_images(folder, names, size=24, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for n in names:
        assert cv2.imwrite(str(folder / n), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def test_frame_number_one_definition():
    assert [frame_number(n) for n in ("0001.png", "frame_12.jpg", "img_00003.jpg", "face2_07.JPEG", "frame_3.jpg")] \
        == [1, 12, 3, 7, 3]
    assert [frame_number(n) for n in ("faces.json", "thumb.jpg", "frame_1.gif", "0001.png.tmp")] == [None] * 4


def test_frames_dataset_validated_labelled_and_readable(tmp_path, capsys):
    from dfdlib.data import FaceSequenceDataset
    from dfdlib.data import frame_files as data_frame_files

    assert data_frame_files is frame_files  # data.py and labels/io.py share one definition
    root = tmp_path / "faces"
    for i in range(3):
        write_images(root / f"real/r{i}", [f"{k:04d}.png" for k in range(1, 6)], seed=i)
        write_images(root / f"fake/swapA/v{i}", [f"frame_{k}.jpg" for k in (0, 10, 20, 30, 2)], seed=10 + i)
        write_images(root / f"fake/swapB/w{i}", [f"img_{k:05d}.jpg" for k in range(3, 8)], seed=20 + i)
    write_images(root / "real/short", ["0001.png"])
    write_images(root / "fake/swapA/broken", [f"{k}.jpg" for k in range(4)])
    (root / "fake/swapA/broken/2.jpg").write_bytes(b"not an image")
    write_images(root / "fake/swapB/mixed", ["1.png", "2.png"])
    write_images(root / "fake/swapB/mixed", ["3.png"], size=40)
    csv = tmp_path / "faces.csv"
    assert cli.main(["labels", str(root), "--frames-dataset", "--min-frames", "2", "--out", str(csv)]) == 0
    out, err = capsys.readouterr()
    assert "9 usable video folder(s), 3 unusable" in out
    assert "real/short: 1 frame(s), fewer than --min-frames 2" in err
    assert "fake/swapA/broken: 1 unreadable image(s): 2.jpg" in err
    assert "fake/swapB/mixed: images of 2 different sizes" in err
    df = pd.read_csv(csv, keep_default_na=False)
    assert len(df) == 9 and set(df["method"]) == {"real", "swapA", "swapB"} and set(df["source"]) == {"frames"}
    assert len(validate_labels(csv, root, sequence_length=4, require_split=True)) == 9  # numbering not 0..N-1
    ds = FaceSequenceDataset(read_labels(csv), root, 4, image_size=16)
    i = ds.filenames.index("fake/swapA/v0")
    clip, label = ds[i]
    assert clip.shape == (4, 3, 16, 16) and label == 1
    assert ds._frames[i] == ["frame_0.jpg", "frame_2.jpg", "frame_10.jpg", "frame_20.jpg", "frame_30.jpg"]
    # detected without the flag: the folders were not written by dfd preprocess
    assert cli.main(["labels", str(root), "--out", str(tmp_path / "auto.csv")]) == 0
    assert "face-frame dataset" in capsys.readouterr().out


def test_frames_dataset_nothing_usable_says_the_tree(tmp_path):
    write_images(tmp_path / "faces/real/a", ["1.png"])
    with pytest.raises(ValueError, match=r"no usable face-frame folder.*ROOT/real/<video>/0001.png"):
        quiet(from_frames_dataset, tmp_path / "faces", min_frames=3)


def test_training_reads_a_face_frame_dataset_without_detection(tmp_path):
    from dfdlib.training.loop import TrainConfig, train

    root = tmp_path / "faces"
    for i in range(6):
        write_images(root / f"real/r{i}", [f"{k:04d}.png" for k in range(1, 6)], size=32, seed=i)
        write_images(root / f"fake/m/f{i}", [f"img_{k:03d}.jpg" for k in range(5)], size=32, seed=50 + i)
    csv = tmp_path / "faces.csv"
    quiet(from_frames_dataset, root, csv, seed=0)
    cfg = TrainConfig(dataset_path=str(root), csv_file=str(csv), out_dir=str(tmp_path / "run"), sequence_length=4,
                      batch_size=4, num_epochs=1, device="cpu", num_workers=0, backbone="tiny", weights=None,
                      hidden_dim=16, image_size=32, early_stopping=0, warmup_epochs=0, show_progress=False)
    result = quiet(train, cfg)
    assert result.best_model_path.is_file() and len(result.history) == 1
    assert result.test_metrics is not None and result.test_metrics["n"] == (pd.read_csv(csv)["split"] == "test").sum()


def test_make_labels_picks_the_reader_the_tree_needs(tmp_path):
    """make_labels (the Create_csv notebook's call) = `dfd labels`: layout-aware on dfd preprocess output,
    face-frame mode on cropped datasets, plain folder globs only when custom globs are given."""
    from dfdlib.labels.sources import make_labels

    pairs = pairs_of(3)
    out = processed_from(ffpp_src(tmp_path / "ff", pairs), tmp_path / "proc")
    df = quiet(make_labels, out, tmp_path / "a.csv", seed=2)
    assert {"group", "method"} <= set(df.columns) and (pair_split(df, pairs).map(len) == 1).all()
    assert set(df["method"]) == {"real", *METHODS}
    by_glob = quiet(make_labels, out, None, seed=2, real_glob="real/*/*/*", fake_glob="fake/Deepfakes/*/*")
    assert "method" not in by_glob.columns and set(by_glob["label"]) == {0, 1}
    assert not by_glob["filename"].str.contains("FaceSwap").any()
    faces = tmp_path / "faces"
    for i in range(4):
        write_images(faces / f"real/r{i}", [f"{k:04d}.png" for k in range(1, 4)], seed=i)
        write_images(faces / f"fake/m/v{i}", [f"{k:04d}.png" for k in range(1, 4)], seed=9 + i)
    framed = quiet(make_labels, faces, None, seed=0)
    assert set(framed["source"]) == {"frames"} and len(framed) == 8
