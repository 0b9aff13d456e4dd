"""Layout detection on miniature copies of the public datasets' trees (one tiny generated video copied under
the real names): samples, labels, groups, methods, official splits, collisions, and bad trees."""
from __future__ import annotations

import json
import shutil
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdlib.datasets.layouts import LAYOUTS, detect_layout, find_samples, samples_frame
from dfdlib.datasets.scan import LayoutError
from dfdlib.labels.splits import split_labels


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """One tiny generated video (160x120, 1 s at 10 fps), copied under every name below."""
    from dfdlib import SampleConfig, make_sample_dataset

    out = make_sample_dataset(tmp_path_factory.mktemp("clip") / "v",
                              SampleConfig(n_real=1, n_fake=0, seconds=1.0, fps=10, width=160, height=120))
    return next((out / "real").glob("*.mp4"))


def put(clip, root, *rels):
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, root / rel)


def quiet(root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return find_samples(root, **kw)


def by_video(samples):
    return {s.video: s for s in samples}


def groups_disjoint(df):
    """No group in two splits (after a group-aware split)."""
    return (df.groupby("group")["split"].nunique() == 1).all()


FF_IDS = ["000", "001", "002", "003", "004", "005"]
FF_PAIRS = [("000", "003"), ("001", "004"), ("002", "005")]


def ffpp_tree(clip, root, methods=("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"), comps=("c23",),
              pairs=FF_PAIRS):
    for c in comps:
        put(clip, root, *[f"original_sequences/youtube/{c}/videos/{i}.mp4" for i in sorted({x for p in pairs for x in p})])
        for m in methods:
            put(clip, root, *[f"manipulated_sequences/{m}/{c}/videos/{a}_{b}.mp4" for a, b in pairs],
                *[f"manipulated_sequences/{m}/{c}/videos/{b}_{a}.mp4" for a, b in pairs])
            (root / f"manipulated_sequences/{m}/{c}/masks/videos").mkdir(parents=True, exist_ok=True)
            put(clip, root, f"manipulated_sequences/{m}/{c}/masks/videos/{pairs[0][0]}_{pairs[0][1]}.mp4")
    return root


# ---------------------------------------------------------------- FaceForensics++
def test_ffpp_samples_groups_methods_and_names(clip, tmp_path):
    root = ffpp_tree(clip, tmp_path / "ff", comps=("c23", "c40"))
    layout, samples, problems = find_samples(root)
    assert layout == "ffpp" and problems == []
    assert len(samples) == 2 * (6 + 4 * 6)  # masks/ are not samples
    names = [(s.label, s.name) for s in samples]
    assert len(set(names)) == len(names)  # 000_003 exists in 4 methods x 2 compressions: no collision
    v = by_video(samples)
    f = v["manipulated_sequences/Face2Face/c40/videos/000_003.mp4"]
    assert (f.label, f.method, f.name) == ("fake", "Face2Face", "Face2Face/c40/000_003")
    assert f.original == v["original_sequences/youtube/c40/videos/000.mp4"].path
    real0, real3 = v["original_sequences/youtube/c23/videos/000.mp4"], v["original_sequences/youtube/c23/videos/003.mp4"]
    assert real0.method == "real" and real0.label == "real" and real0.name == "youtube/c23/000"
    assert f.group == real0.group == real3.group == v["manipulated_sequences/Deepfakes/c23/videos/003_000.mp4"].group
    assert len({s.group for s in samples}) == 3  # one per pair
    df = samples_frame(samples)
    assert set(df["method"]) == {"real", "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
    assert df.loc[df["video"] == f.video, "original"].item() == "real/youtube/c40/000"
    assert groups_disjoint(split_labels(df, seed=3))


def test_ffpp_subset_and_deepfakedetection_actors(clip, tmp_path):
    root = ffpp_tree(clip, tmp_path / "ff", methods=("NeuralTextures",))
    put(clip, root, "original_sequences/actors/c23/videos/01__exit_phone_room.mp4",
        "original_sequences/actors/c23/videos/02__walking.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4")
    _, samples, _ = quiet(root)
    v = by_video(samples)
    dfd = v["manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4"]
    assert dfd.method == "DeepFakeDetection"
    assert dfd.original == v["original_sequences/actors/c23/videos/01__exit_phone_room.mp4"].path
    # footage (actor 01, scene) and identity (actor 02) are shared: all three in one group
    assert dfd.group == v["original_sequences/actors/c23/videos/01__exit_phone_room.mp4"].group \
        == v["original_sequences/actors/c23/videos/02__walking.mp4"].group
    assert {s.method for s in samples} == {"real", "NeuralTextures", "DeepFakeDetection"}


def test_ffpp_official_split_lists_honoured(clip, tmp_path):
    root = ffpp_tree(clip, tmp_path / "ff", methods=("Deepfakes",))
    lists = tmp_path / "lists"
    lists.mkdir()
    for split, pair in zip(("train", "val", "test"), FF_PAIRS, strict=True):
        (lists / f"{split}.json").write_text(json.dumps([list(pair)]))
    _, samples, _ = find_samples(root, split_file=lists / "train.json")
    want = {i: s for s, p in zip(("train", "val", "test"), FF_PAIRS, strict=True) for i in p}
    for s in samples:
        assert s.split == want[s.name.split("/")[-1][:3]], s.video
    (root / "splits").mkdir()  # found in the tree without --split-file
    (root / "splits" / "test.json").write_text(json.dumps([["000", "003"]]))
    _, samples, _ = find_samples(root)
    assert {s.split for s in samples if "000" in s.name} == {"test"} and \
        {s.split for s in samples if "001" in s.name} == {None}


def test_ffpp_empty_method_folder_reported_rest_goes_on(clip, tmp_path):
    root = ffpp_tree(clip, tmp_path / "ff", methods=("Deepfakes",))
    (root / "manipulated_sequences/FaceSwap/c23/videos").mkdir(parents=True)
    (root / "manipulated_sequences/Face2Face").mkdir(parents=True)
    with pytest.warns(UserWarning, match=r"FaceSwap/c23/videos has no videos"):
        _, samples, problems = find_samples(root)
    assert len(problems) == 2 and "Face2Face has no compression folder" in problems[0]
    assert len(samples) == 6 + 6


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_pairs=st.integers(3, 12), ratios=st.sampled_from(
    [(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.8, 0.2, 0.0)]))
def test_ffpp_pairs_always_in_one_split(tmp_path_factory, seed, n_pairs, ratios):
    """Over many seeds and sizes, `A`, `B`, `A_B` and `B_A` of every method land in one split."""
    root = tmp_path_factory.mktemp("prop")
    pairs = [(f"{2 * i:03d}", f"{2 * i + 1:03d}") for i in range(n_pairs)]
    for a, b in pairs:
        for rel in (f"original_sequences/youtube/c23/videos/{a}.mp4", f"original_sequences/youtube/c23/videos/{b}.mp4",
                    *[f"manipulated_sequences/{m}/c23/videos/{x}.mp4" for m in ("Deepfakes", "FaceSwap")
                      for x in (f"{a}_{b}", f"{b}_{a}")]):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"")
    _, samples, _ = find_samples(root)
    df = split_labels(samples_frame(samples), ratios, seed=seed)
    ident = df["filename"].str.extract(r"/(\d{3})(?:_(\d{3}))?$")
    pair_of = {x: a for a, b in pairs for x in (a, b)}
    df["pair"] = ident[0].map(pair_of)
    assert (df.groupby("pair")["split"].nunique() == 1).all()
    assert groups_disjoint(df)


# ---------------------------------------------------------------- Celeb-DF
CELEB = ["Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4", "Celeb-real/id1_0000.mp4",
         "Celeb-real/id2_0000.mp4", "Celeb-real/id3_0000.mp4",
         "YouTube-real/00000.mp4", "YouTube-real/00001.mp4", "YouTube-real/00002.mp4", "YouTube-real/00003.mp4",
         "Celeb-synthesis/id0_id1_0000.mp4", "Celeb-synthesis/id1_id0_0000.mp4", "Celeb-synthesis/id2_id3_0000.mp4",
         "Celeb-synthesis/id0_id1_0001.mp4"]


def test_celebdf_groups_originals_and_test_list(clip, tmp_path):
    root = tmp_path / "Celeb-DF-v2"
    put(clip, root, *CELEB)
    (root / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00001.mp4\n1 Celeb-real/id2_0000.mp4\n0 Celeb-synthesis/id2_id3_0000.mp4\n"
        "0 Celeb-real/id3_0000.mp4\n1 Celeb-synthesis/id9_id8_0000.mp4\n")
    layout, samples, problems = quiet(root)
    assert layout == "celebdf" and len(samples) == len(CELEB)
    v = by_video(samples)
    fake = v["Celeb-synthesis/id0_id1_0001.mp4"]
    assert (fake.label, fake.method, fake.name) == ("fake", "Celeb-synthesis", "Celeb-synthesis/id0_id1_0001")
    assert fake.original == v["Celeb-real/id0_0001.mp4"].path
    assert v["YouTube-real/00000.mp4"].label == "real" and v["YouTube-real/00000.mp4"].method == "real"
    assert fake.group == v["Celeb-real/id1_0000.mp4"].group == v["Celeb-synthesis/id1_id0_0000.mp4"].group
    assert v["Celeb-real/id2_0000.mp4"].group != fake.group != v["YouTube-real/00000.mp4"].group
    assert {s.video for s in samples if s.split == "test"} == {
        "YouTube-real/00001.mp4", "Celeb-real/id2_0000.mp4", "Celeb-synthesis/id2_id3_0000.mp4",
        "Celeb-real/id3_0000.mp4"}
    # read as 1 = real (3 of 4 lines agree): the one contradicting line and the missing video are named
    assert any("line 4 Celeb-real/id3_0000.mp4" in p for p in problems)
    assert any("id9_id8_0000.mp4" in p and "not in" in p for p in problems)


def test_celebdf_identity_links_dropped_when_one_group_would_hold_most(clip, tmp_path):
    root = tmp_path / "cdf"
    ids = [f"id{i}" for i in range(6)]
    put(clip, root, *[f"Celeb-real/{i}_0000.mp4" for i in ids],
        *[f"Celeb-synthesis/{a}_{b}_0000.mp4" for a, b in zip(ids, ids[1:] + ids[:1], strict=True)])
    _, samples, problems = quiet(root)
    assert any("grouping by footage only" in p for p in problems)
    v = by_video(samples)
    assert len({s.group for s in samples}) == 6  # each real with the fakes of its footage
    assert v["Celeb-synthesis/id0_id1_0000.mp4"].group == v["Celeb-real/id0_0000.mp4"].group


# ---------------------------------------------------------------- DFDC
def test_dfdc_parts_metadata_original_across_parts_and_missing_files(clip, tmp_path):
    root = tmp_path / "dfdc"
    put(clip, root, "dfdc_train_part_0/aaa.mp4", "dfdc_train_part_0/bbb.mp4", "dfdc_train_part_0/stray.mp4",
        "dfdc_train_part_1/ccc.mp4", "dfdc_train_part_1/ddd.mp4")
    (root / "dfdc_train_part_0/metadata.json").write_text(json.dumps({
        "aaa.mp4": {"label": "REAL", "split": "train", "original": None},
        "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
        "gone.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"}}))
    (root / "dfdc_train_part_1/metadata.json").write_text(json.dumps({
        "ccc.mp4": {"label": "FAKE", "original": "aaa.mp4"}, "ddd.mp4": {"label": "REAL", "original": None}}))
    layout, samples, problems = quiet(root)
    assert layout == "dfdc"
    v = by_video(samples)
    assert set(v) == {"dfdc_train_part_0/aaa.mp4", "dfdc_train_part_0/bbb.mp4", "dfdc_train_part_1/ccc.mp4",
                      "dfdc_train_part_1/ddd.mp4"}
    c = v["dfdc_train_part_1/ccc.mp4"]
    assert (c.label, c.method, c.name) == ("fake", "DFDC", "dfdc_train_part_1/ccc")
    assert c.original == v["dfdc_train_part_0/aaa.mp4"].path  # the original lives in another part
    assert c.group == v["dfdc_train_part_0/bbb.mp4"].group == v["dfdc_train_part_0/aaa.mp4"].group
    assert v["dfdc_train_part_1/ddd.mp4"].group != c.group
    assert any("gone.mp4" in p and "metadata.json" not in p and "dfdc_train_part_0" in p for p in problems)
    assert any("stray.mp4" in p and "no label" in p for p in problems)


def test_dfdc_test_set_labels_csv(clip, tmp_path):
    root = tmp_path / "dfdc"
    put(clip, root, "test/videos/x1.mp4", "test/videos/x2.mp4")
    (root / "test/labels.csv").write_text("filename,label\nx1.mp4,1\nx2.mp4,0\nx3.mp4,maybe\n")
    layout, samples, problems = quiet(root)
    assert layout == "dfdc"
    assert [(s.video, s.label, s.name) for s in samples] == [("test/videos/x2.mp4", "real", "test/x2"),
                                                             ("test/videos/x1.mp4", "fake", "test/x1")]
    assert any("labels.csv line 4" in p and "'maybe'" in p for p in problems)


def test_dfdc_unreadable_metadata_names_the_file(clip, tmp_path):
    root = tmp_path / "dfdc"
    put(clip, root, "dfdc_train_part_0/aaa.mp4", "dfdc_train_part_1/bbb.mp4")
    (root / "dfdc_train_part_0/metadata.json").write_text("{not json")
    (root / "dfdc_train_part_1/metadata.json").write_text(json.dumps({"bbb.mp4": {"label": "REAL"}}))
    _, samples, problems = quiet(root)
    assert [s.video for s in samples] == ["dfdc_train_part_1/bbb.mp4"]
    assert any("dfdc_train_part_0/metadata.json is not a readable" in p for p in problems)


# ---------------------------------------------------------------- manifest, real/fake, errors
def test_manifest_rows_groups_and_bad_rows(clip, tmp_path):
    root = tmp_path / "mine"
    put(clip, root, "clips/a.mp4", "clips/b.mp4", "other/a.mp4")
    (tmp_path / "outside.mp4").write_bytes(b"")
    (root / "manifest.csv").write_text(
        "path,label,group,method\nclips/a.mp4,real,g1,\nclips/b.mp4,FAKE,g1,myswap\nother/a.mp4,1,,\n"
        "clips/c.mp4,0,,\n../outside.mp4,real,,\nclips/a.mp4,fake,,\nclips/b.mp4,unsure,,\n")
    layout, samples, problems = quiet(root)
    assert layout == "manifest"
    assert [(s.video, s.label, s.name, s.method) for s in samples] == [
        ("clips/a.mp4", "real", "clips/a", "real"), ("clips/b.mp4", "fake", "clips/b", "myswap"),
        ("other/a.mp4", "fake", "other/a", "fake")]
    assert samples[0].group == samples[1].group != samples[2].group
    text = "\n".join(problems)
    for line, what in ((5, "does not exist"), (6, "outside the dataset root"), (7, "listed twice"),
                       (8, "'unsure' is not real/fake")):
        assert f"manifest.csv line {line}: " in text and what in text
    assert [s.video for s in quiet(root / "manifest.csv")[1]] == [s.video for s in samples]  # the CSV itself


def test_real_fake_recursive_nothing_collides(clip, tmp_path):
    root = tmp_path / "rf"
    put(clip, root, "real/a.mp4", "real/part1/a.mp4", "fake/Deepfakes/000_003.mp4", "fake/FaceSwap/000_003.mp4",
        "fake/x.avi", "fake/x.mp4")
    layout, samples, _ = find_samples(root)
    assert layout == "real_fake"
    assert [(s.label, s.name, s.method) for s in samples] == [
        ("real", "a", "real"), ("real", "part1/a", "real"), ("fake", "Deepfakes/000_003", "Deepfakes"),
        ("fake", "FaceSwap/000_003", "FaceSwap"), ("fake", "x", "fake"), ("fake", "x.mp4", "fake")]
    assert "fake/x is taken by x.avi" in samples[-1].note


def test_unknown_tree_names_the_layouts_and_layout_override(clip, tmp_path):
    (tmp_path / "clips").mkdir()
    with pytest.raises(LayoutError) as e:
        detect_layout(tmp_path)
    for name in LAYOUTS:
        assert name in str(e.value)
    assert "original_sequences/youtube/c23/videos/000.mp4" in str(e.value) and "Celeb-synthesis" in str(e.value)
    root = ffpp_tree(clip, tmp_path / "ff", methods=("Deepfakes",))
    put(clip, root, "real/extra.mp4")
    assert detect_layout(root) == "ffpp"
    layout, samples, _ = find_samples(root, layout="real_fake")
    assert layout == "real_fake" and [s.video for s in samples] == ["real/extra.mp4"]
    with pytest.raises(LayoutError, match="unknown layout 'kaggle'"):
        find_samples(root, layout="kaggle")
    with pytest.raises(LayoutError, match="no videos found for layout 'celebdf'"):
        find_samples(root, layout="celebdf")
