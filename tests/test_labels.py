"""Stage 2: labels CSV creation, import, validation and leakage-free splitting.

Processed folders are faked with empty frame_<i>.jpg files: only their count matters here, so these
tests need neither TensorFlow nor video decoding.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfdlib import cli
from dfdlib.labels.io import LabelsError, read_labels, validate_labels, write_labels
from dfdlib.labels.metadata import from_dfdc_metadata, from_folders, from_gobal_metadata
from dfdlib.labels.schema import split_summary
from dfdlib.labels.splits import split_labels


def make_folders(root: Path, folders: dict[str, int]) -> Path:
    """Create `root/<name>/frame_0.jpg ... frame_<n-1>.jpg` (empty files) for each name → n."""
    for name, n in folders.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (d / f"frame_{i}.jpg").touch()
    return root


@pytest.fixture
def proc(tmp_path):
    """4 real + 4 fake folders of 8 frames each."""
    return make_folders(tmp_path / "processed", {f"{c}/v{i}": 8 for c in ("real", "fake") for i in range(4)})


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(excinfo) -> dict[int | None, str]:
    return {ln: msg for ln, msg in excinfo.value.problems}


# ---------------------------------------------------------------- from_folders


def test_from_folders_writes_sorted_split_csv(proc, tmp_path):
    (proc / "real" / ".v9.tmp-123").mkdir()  # leftover of an interrupted preprocessing run
    (proc / "real" / ".v9.tmp-123" / "frame_0.jpg").touch()
    (proc / "fake" / "noface").mkdir()  # preprocessing found no face: no frames
    (proc / "preprocess_report.csv").write_text("video,label\n")
    out = tmp_path / "labels" / "labels.csv"
    with pytest.warns(UserWarning, match=r"1 folder\(s\).*no frame_\*\.jpg.*fake/noface"):
        df = from_folders(proc, out_csv=out, seed=0)
    assert list(df["filename"]) == sorted(f"{c}/v{i}" for c in ("real", "fake") for i in range(4))
    assert all("\\" not in f for f in df["filename"])
    assert dict(zip(df["filename"], df["label"], strict=True))["real/v0"] == 0
    assert set(df["label"]) == {0, 1}
    on_disk = pd.read_csv(out)
    assert list(on_disk.columns) == ["filename", "label", "split"]
    pd.testing.assert_frame_equal(on_disk, df.reset_index(drop=True), check_dtype=False)
    assert [p.name for p in out.parent.iterdir()] == ["labels.csv"]  # atomic write left no temp file
    # 8-video set: every split has both classes (ROC-AUC defined on val and test)
    summary = split_summary(df)
    assert summary.loc[["train", "val", "test"], "real"].tolist() == [2, 1, 1]
    assert summary.loc[["train", "val", "test"], "fake"].tolist() == [2, 1, 1]
    # the written file validates as is
    assert len(validate_labels(out, proc, sequence_length=8, require_split=True)) == 8


def test_from_folders_seed_reproducible_and_no_split(proc):
    a, b = from_folders(proc, seed=3), from_folders(proc, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert "split" not in from_folders(proc, split=None).columns


def test_from_folders_custom_globs_and_errors(tmp_path):
    root = make_folders(tmp_path / "p", {"celeb/real_a": 3, "celeb/fake_b": 3, "dfdc/real_c": 3, "dfdc/fake_d": 3})
    df = from_folders(root, real_glob="*/real_*", fake_glob="*/fake_*", split=None)
    assert dict(zip(df["filename"], df["label"], strict=True)) == {
        "celeb/fake_b": 1, "celeb/real_a": 0, "dfdc/fake_d": 1, "dfdc/real_c": 0}
    with pytest.raises(ValueError, match="matches both"):
        from_folders(root, real_glob="*/*", fake_glob="*/fake_*", split=None)
    with pytest.raises(ValueError, match="must be relative to the processed root"):
        from_folders(root, real_glob=str(root / "celeb" / "*"), split=None)
    with pytest.raises(ValueError, match="run `dfd preprocess` first"):
        from_folders(root, split=None)  # default real/* and fake/* match nothing here
    with pytest.raises(FileNotFoundError, match=os.getcwd().replace("\\", "\\\\")):
        from_folders(tmp_path / "nope")


# ---------------------------------------------------------------- read / write


def test_read_labels_not_found_names_path_and_cwd(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        read_labels("no/such/labels.csv")
    assert "no/such/labels.csv" in str(e.value) and os.getcwd() in str(e.value)


def test_read_write_roundtrip_keeps_optional_and_extra_columns(tmp_path):
    df = pd.DataFrame({"note": ["x", "y"], "label": [0, 1], "filename": ["real/a", "fake/b"],
                       "original": ["", "a.mp4"], "frames": [8, 8]})
    path = write_labels(df, tmp_path / "sub" / "l.csv")
    back = read_labels(path)
    assert list(back.columns) == ["filename", "label", "original", "note"]  # canonical order, no `frames`
    assert back["label"].tolist() == [0, 1] and back["original"].tolist() == ["", "a.mp4"]


def test_read_labels_accepts_real_fake_text(tmp_path):
    path = write_csv(tmp_path / "l.csv", "filename,label\nreal/a,REAL\nfake/b,fake\n")
    with pytest.warns(UserWarning, match="REAL=0, FAKE=1"):
        assert read_labels(path)["label"].tolist() == [0, 1]


# ---------------------------------------------------------------- validate: one test per error


def test_empty_file(proc, tmp_path):
    path = write_csv(tmp_path / "l.csv", "")
    with pytest.raises(LabelsError, match=r"l\.csv, line 1: the file is empty"):
        validate_labels(path, proc)
    with pytest.raises(LabelsError, match="no rows"):
        validate_labels(write_csv(tmp_path / "h.csv", "filename,label\n"), proc)


def test_missing_columns(proc, tmp_path):
    with pytest.raises(LabelsError, match=r"line 1: missing column\(s\) label"):
        validate_labels(write_csv(tmp_path / "a.csv", "filename,kind\nreal/v0,0\n"), proc)
    with pytest.raises(LabelsError, match="add the header line"):
        validate_labels(write_csv(tmp_path / "b.csv", "real/v0,0\nfake/v0,1\n"), proc)
    with pytest.raises(LabelsError, match="Gobal_metadata"):
        validate_labels(write_csv(tmp_path / "c.csv", "file,label\nv0.mp4,REAL\n"), proc)
    with pytest.raises(LabelsError, match="';'"):
        validate_labels(write_csv(tmp_path / "d.csv", "filename;label\nreal/v0;0\n"), proc)


def test_bad_labels_collected_with_line_numbers(proc, tmp_path):
    path = write_csv(tmp_path / "l.csv", "filename,label\nreal/v0,0\n\nreal/v1,2\nfake/v0,maybe\nfake/v1,1\n")
    with pytest.raises(LabelsError) as e:
        validate_labels(path, proc)
    probs = problems_of(e)
    assert set(probs) == {4, 5}  # blank line 3 still counts as a line of the file
    assert "'2' is not 0/1" in probs[4] and "'maybe'" in probs[5] and "use 0 for real" in probs[5]
    assert str(path) in str(e.value)


def test_real_fake_strings_accepted_and_reported(proc, tmp_path):
    path = write_csv(tmp_path / "l.csv", "filename,label\nreal/v0,REAL\nfake/v0,Fake\nfake/v1,1\n")
    with pytest.warns(UserWarning, match=r"2 label\(s\) given as REAL/FAKE"):
        df = validate_labels(path, proc)
    assert df["label"].tolist() == [0, 1, 1] and df["frames"].tolist() == [8, 8, 8]


def test_duplicate_filenames(proc, tmp_path):
    path = write_csv(tmp_path / "l.csv", "filename,label\nreal/v0,0\nfake/v0,1\nreal\\v0,0\n")
    with pytest.raises(LabelsError, match=r"line 4: duplicate filename 'real/v0' \(first on line 2\)"):
        validate_labels(path, proc)


def test_missing_folder_and_video_name_hint(proc, tmp_path):
    path = write_csv(tmp_path / "l.csv", "filename,label\nreal/v0,0\nreal/ghost,0\nfake/v1.mp4,1\n")
    with pytest.raises(LabelsError) as e:
        validate_labels(path, proc)
    probs = problems_of(e)
    assert "'real/ghost' does not exist" in probs[3]
    assert "give the processed folder 'fake/v1', not the video" in probs[4]


def test_paths_escaping_root_and_absolute_paths(proc, tmp_path):
    outside = make_folders(tmp_path, {"elsewhere/x": 8}) / "elsewhere" / "x"
    text = f"filename,label\n../elsewhere/x,0\nreal/../../elsewhere/x,0\n{outside},1\nC:\\data\\x,1\nfake/v0,1\n"
    with pytest.raises(LabelsError) as e:
        validate_labels(write_csv(tmp_path / "l.csv", text), proc)
    probs = problems_of(e)
    assert "outside the processed root" in probs[2] and "outside the processed root" in probs[3]
    assert "absolute path" in probs[4] and "absolute path" in probs[5]
    assert 6 not in probs


def test_only_one_class(proc, tmp_path):
    with pytest.raises(LabelsError, match=r"only one class present: all 2 rows are real \(0\)"):
        validate_labels(write_csv(tmp_path / "l.csv", "filename,label\nreal/v0,0\nreal/v1,0\n"), proc)


def test_short_folders_error_drop_pad(tmp_path):
    root = make_folders(tmp_path / "p", {"real/a": 20, "real/b": 5, "fake/c": 20, "fake/d": 0, "fake/e": 20})
    path = write_csv(tmp_path / "l.csv", "filename,label\nreal/a,0\nreal/b,0\nfake/c,1\nfake/d,1\nfake/e,1\n")
    with pytest.raises(LabelsError) as e:
        validate_labels(path, root, sequence_length=10)
    probs = problems_of(e)
    assert "5 frames, fewer than sequence_length=10" in probs[3] and "no frame_*.jpg" in probs[5]
    assert "short='drop'" in str(e.value) and "short='pad'" in str(e.value)
    with pytest.warns(UserWarning, match=r"left out 2 folder\(s\).*real/b \(5\), fake/d \(0\)"):
        dropped = validate_labels(path, root, sequence_length=10, short="drop")
    assert dropped["filename"].tolist() == ["real/a", "fake/c", "fake/e"]
    with pytest.raises(LabelsError, match="fake/d' holds no frame"):  # nothing to pad from
        validate_labels(path, root, sequence_length=10, short="pad")
    path2 = write_csv(tmp_path / "l2.csv", "filename,label\nreal/a,0\nreal/b,0\nfake/c,1\n")
    with pytest.warns(UserWarning, match="last frame will be repeated: real/b"):
        padded = validate_labels(path2, root, sequence_length=10, short="pad")
    assert padded["frames"].tolist() == [20, 5, 20]


def test_drop_that_removes_a_class_is_an_error(tmp_path):
    root = make_folders(tmp_path / "p", {"real/a": 10, "fake/b": 3})
    path = write_csv(tmp_path / "l.csv", "filename,label\nreal/a,0\nfake/b,1\n")
    with pytest.warns(UserWarning), pytest.raises(LabelsError, match=r"only one class.*after leaving out short"):
        validate_labels(path, root, sequence_length=5, short="drop")


def test_frames_not_numbered_from_zero(tmp_path):
    root = make_folders(tmp_path / "p", {"real/a": 4, "fake/b": 4})
    (root / "fake" / "b" / "frame_1.jpg").unlink()
    path = write_csv(tmp_path / "l.csv", "filename,label\nreal/a,0\nfake/b,1\n")
    with pytest.raises(LabelsError, match=r"line 3: 'fake/b' has 3 frames but frame_1\.jpg is missing"):
        validate_labels(path, root)


def test_split_values_and_require_split(proc, tmp_path):
    path = write_csv(tmp_path / "l.csv", "filename,label,split\nreal/v0,0,train\nfake/v0,1,holdout\nfake/v1,1,\n")
    with pytest.raises(LabelsError) as e:
        validate_labels(path, proc, require_split=True)
    probs = problems_of(e)
    assert "'holdout' is not train/val/test" in probs[3] and "empty split" in probs[4]
    with pytest.raises(LabelsError, match="line 1: no split column"):
        validate_labels(write_csv(tmp_path / "n.csv", "filename,label\nreal/v0,0\nfake/v0,1\n"), proc,
                        require_split=True)


def test_leaky_split_is_an_error(proc, tmp_path):
    text = ("filename,label,split,original\nreal/v0,0,train,\nfake/v0,1,test,v0.mp4\n"
            "real/v1,0,val,\nfake/v1,1,val,\n")
    with pytest.raises(LabelsError, match=r"line 2: rows of one group .* real/v0 \(train\), fake/v0 \(test\)"):
        validate_labels(write_csv(tmp_path / "l.csv", text), proc)


def test_errors_collect_all_rows_and_cap_the_listing(proc, tmp_path):
    rows = "".join(f"real/missing{i},0\n" for i in range(30))
    with pytest.raises(LabelsError) as e:
        validate_labels(write_csv(tmp_path / "l.csv", "filename,label\nfake/v0,1\n" + rows), proc)
    assert len(e.value.problems) == 30
    assert "30 problems" in str(e.value) and "... and 10 more" in str(e.value)


def test_validate_accepts_dataframe(proc):
    df = pd.DataFrame({"filename": ["real/v0", "fake/v0"], "label": [0.0, 1.0], "group": [np.nan, "g"]})
    out = validate_labels(df, proc, sequence_length=8)
    assert out["label"].tolist() == [0, 1] and out["group"].tolist() == ["", "g"]
    with pytest.raises(LabelsError, match=r"labels \(DataFrame\), line 3"):
        validate_labels(df.assign(label=[0, 7]), proc)


def test_validate_missing_csv_names_cwd(proc):
    with pytest.raises(FileNotFoundError, match="labels CSV not found: tried 'x/labels.csv'") as e:
        validate_labels("x/labels.csv", proc)
    assert os.getcwd() in str(e.value)


# ---------------------------------------------------------------- split


def test_split_ratios_exact_on_balanced_set():
    df = pd.DataFrame({"filename": [f"v{i}" for i in range(200)], "label": [0] * 100 + [1] * 100})
    out = split_labels(df, seed=1)
    counts = out.groupby(["split", "label"]).size()
    assert counts.loc[("train", 0)] == counts.loc[("train", 1)] == 70
    assert counts.loc[("val", 0)] == counts.loc[("test", 1)] == 15
    other = split_labels(df, seed=2)
    assert not (other["split"] == out["split"]).all()  # the seed matters
    pd.testing.assert_frame_equal(split_labels(df, seed=1), out)  # and reproduces


def test_split_keeps_fakes_with_their_original_and_keeps_ratios_per_class():
    rows = []
    for i in range(200):  # DFDC-like: each real video with 0..5 fakes made from it
        rows.append((f"real/r{i}", 0, ""))
        rows += [(f"fake/r{i}_f{k}", 1, f"r{i}.mp4") for k in range(i % 6)]
    df = pd.DataFrame(rows, columns=["filename", "label", "original"])
    out = split_labels(df, ratios=(0.6, 0.2, 0.2), seed=0)
    group = out["filename"].str.extract(r"/(r\d+)")[0]
    assert out.groupby(group)["split"].nunique().max() == 1
    # big groups must not all pour into train: each class keeps the ratios in every split
    shares = pd.crosstab(out["split"], out["label"], normalize="columns")
    assert np.allclose(shares.loc[["train", "val", "test"]].to_numpy(), [[0.6] * 2, [0.2] * 2, [0.2] * 2], atol=0.02)


def test_split_warns_on_strong_imbalance():
    df = pd.DataFrame({"filename": [f"v{i}" for i in range(40)], "label": [0] * 4 + [1] * 36})
    with pytest.warns(UserWarning, match=r"strong class imbalance .*train: 2 real / 2[56] fake; val: 1 real"):
        split_labels(df)


def test_split_rejects_bad_ratios_and_labels():
    df = pd.DataFrame({"filename": ["a", "b"], "label": [0, 1]})
    with pytest.raises(ValueError, match="ratios"):
        split_labels(df, ratios=(0.5, 0.5))
    with pytest.raises(ValueError, match="ratios"):
        split_labels(df, ratios="0.7,x,0.15")
    with pytest.raises(LabelsError, match="line 3: label 'x'"):
        split_labels(df.assign(label=[0, "x"]))


def test_split_zero_test_ratio():
    df = pd.DataFrame({"filename": [f"v{i}" for i in range(20)], "label": [0, 1] * 10})
    assert set(split_labels(df, ratios="80,20,0")["split"]) == {"train", "val"}


@st.composite
def grouped_sets(draw):
    n = draw(st.integers(1, 60))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    groups = draw(st.lists(st.one_of(st.just(""), st.sampled_from("abcdefghij")), min_size=n, max_size=n))
    # fakes may name a real row as their original (matched by stem), or an unknown video
    originals = [draw(st.sampled_from([""] + [f"v{j}.mp4" for j in range(n)] + ["ghost.mp4"])) if lab else ""
                 for lab in labels]
    return pd.DataFrame({"filename": [f"{('real', 'fake')[lab]}/v{i}" for i, lab in enumerate(labels)],
                         "label": labels, "group": groups, "original": originals})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=grouped_sets(), seed=st.integers(0, 2**31 - 1))
def test_property_no_group_crosses_splits(df, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = split_labels(df, seed=seed)
    assert len(out) == len(df) and set(out["split"]) <= {"train", "val", "test"}
    for g, part in out[out["group"] != ""].groupby("group"):
        assert part["split"].nunique() == 1, g
    split_of = dict(zip(out["filename"], out["split"], strict=True))
    for name, lab, orig, s in zip(out["filename"], out["label"], out["original"], out["split"], strict=True):
        real = f"real/{orig[:-len('.mp4')]}"  # the real row this fake was made from, if in the set
        if lab == 1 and orig and real in split_of:
            assert split_of[real] == s, (name, real)


@settings(max_examples=100, deadline=None)
@given(labels=st.lists(st.integers(0, 1), min_size=3, max_size=40),
       groups=st.lists(st.integers(0, 12), min_size=40, max_size=40), seed=st.integers(0, 1000))
def test_property_each_split_gets_a_group_of_each_class(labels, groups, seed):
    df = pd.DataFrame({"filename": [f"v{i}" for i in range(len(labels))], "label": labels,
                       "group": [f"g{g}" for g in groups[: len(labels)]]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = split_labels(df, seed=seed)
    for c in (0, 1):
        if out.loc[out["label"] == c, "group"].nunique() >= 3:
            assert set(out.loc[out["label"] == c, "split"]) == {"train", "val", "test"}, c


# ---------------------------------------------------------------- importers


def test_from_dfdc_metadata(tmp_path):
    root = make_folders(tmp_path / "p", {"real/aa": 8, "fake/bb": 8, "fake/cc": 8, "real/dd": 8, "fake/ee": 8,
                                         "real/ff": 8, "fake/gg": 8})
    meta = {"aa.mp4": {"label": "REAL", "split": "train", "original": None},
            "bb.mp4": {"label": "FAKE", "split": "train", "original": "aa.mp4"},
            "cc.mp4": {"label": "FAKE", "split": "train", "original": "aa.mp4"},
            "dd.mp4": {"label": "REAL", "split": "train", "original": None},
            "ee.mp4": {"label": "FAKE", "split": "train", "original": "dd.mp4"},
            "zz.mp4": {"label": "FAKE", "split": "train", "original": "dd.mp4"}}  # not preprocessed
    meta2 = {"ff.mp4": {"label": "REAL", "original": None}, "gg.mp4": {"label": "FAKE", "original": "ff.mp4"}}
    (tmp_path / "part0").mkdir()
    (tmp_path / "part1").mkdir()
    (tmp_path / "part0" / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / "part1" / "metadata.json").write_text(json.dumps(meta2))
    out = tmp_path / "labels.csv"
    with pytest.warns(UserWarning, match=r"1 of 8 video\(s\) have no processed folder.*zz\.mp4"):
        df = from_dfdc_metadata([tmp_path / "part0" / "metadata.json", tmp_path / "part1" / "metadata.json"],
                                root, out_csv=out, seed=0)
    assert df["filename"].tolist() == ["fake/bb", "fake/cc", "fake/ee", "fake/gg", "real/aa", "real/dd", "real/ff"]
    assert df["label"].tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert df["original"].tolist() == ["aa.mp4", "aa.mp4", "dd.mp4", "ff.mp4", "", "", ""]
    assert (df["source"] == "dfdc").all()
    split = dict(zip(df["filename"], df["split"], strict=True))
    assert split["fake/bb"] == split["fake/cc"] == split["real/aa"]
    assert split["fake/ee"] == split["real/dd"] and split["fake/gg"] == split["real/ff"]
    assert len(validate_labels(out, root, require_split=True)) == 7


def test_from_dfdc_metadata_bad_input(tmp_path):
    root = make_folders(tmp_path / "p", {"real/aa": 2})
    bad = tmp_path / "bad.json"
    bad.write_text('{"aa.mp4": {"label": "REAL"},\n "bb.mp4": }')
    with pytest.raises(LabelsError, match=r"bad\.json, line 2: not valid JSON"):
        from_dfdc_metadata(bad, root)
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"aa.mp4": {"label": "MAYBE"}}))
    with pytest.raises(LabelsError, match="entry 'aa.mp4' has label 'MAYBE'"):
        from_dfdc_metadata(odd, root)
    with pytest.raises(FileNotFoundError, match="DFDC metadata not found"):
        from_dfdc_metadata(tmp_path / "none.json", root)


def test_from_gobal_metadata(tmp_path):
    root = make_folders(tmp_path / "p", {"real/r1": 4, "real/r2": 4, "fake/f1": 4, "fake/f2": 4, "other/f3": 4})
    path = write_csv(tmp_path / "Gobal_metadata.csv",
                     "r1.mp4,REAL\nr2.mp4,REAL\nf1.mp4,FAKE\nf2.mp4,FAKE\nf3.mp4,FAKE\nmissing.mp4,REAL\n")
    with pytest.warns(UserWarning, match=r"1 of 6 .*missing\.mp4"):
        df = from_gobal_metadata(path, root, out_csv=tmp_path / "labels.csv", split=None)
    assert dict(zip(df["filename"], df["label"], strict=True)) == {
        "fake/f1": 1, "fake/f2": 1, "other/f3": 1, "real/r1": 0, "real/r2": 0}
    assert (df["source"] == "gobal_metadata").all() and "split" not in df.columns
    assert read_labels(tmp_path / "labels.csv")["filename"].tolist() == df["filename"].tolist()


def test_from_gobal_metadata_header_and_bad_rows(tmp_path):
    root = make_folders(tmp_path / "p", {"real/r1": 4, "fake/f1": 4})
    with_header = write_csv(tmp_path / "m.csv", "URI,label,original,split\nr1.mp4,REAL,,train\nf1.mp4,FAKE,r1.mp4,train\n")
    df = from_gobal_metadata(with_header, root, split=None)
    assert df["original"].tolist() == ["r1.mp4", ""]
    bad = write_csv(tmp_path / "bad.csv", "r1.mp4,REAL\nf1.mp4,SYNTH\nonlyname\n")
    with pytest.raises(LabelsError) as e:
        from_gobal_metadata(bad, root)
    assert set(problems_of(e)) == {2, 3} and "'SYNTH' is not REAL/FAKE" in problems_of(e)[2]
    conflict = write_csv(tmp_path / "c.csv", "r1.mp4,REAL\nr1.avi,FAKE\nf1.mp4,FAKE\n")
    with pytest.raises(LabelsError, match="labelled both REAL and FAKE"):
        from_gobal_metadata(conflict, root)


# ---------------------------------------------------------------- CLI


def test_cli_create_and_check(proc, tmp_path, capsys):
    out = tmp_path / "labels.csv"
    assert cli.main(["labels", str(proc), "--out", str(out), "--ratios", "0.5,0.25,0.25", "--seed", "1"]) == 0
    assert "wrote 8 rows" in capsys.readouterr().out
    assert read_labels(out)["split"].isin(["train", "val", "test"]).all()
    assert cli.main(["labels", "--check", str(out), str(proc), "--sequence-length", "8", "--require-split"]) == 0
    printed = capsys.readouterr().out
    assert "OK" in printed and "train" in printed and "fake_pct" in printed
    assert cli.main(["labels", "--check", str(out), str(proc), "--sequence-length", "20"]) == 1
    err = capsys.readouterr().err
    assert "fewer than sequence_length=20" in err and "--short drop|pad" in err
    assert cli.main(["labels", "--check", str(out), str(proc), "--sequence-length", "20", "--short", "pad"]) == 0
    assert "warning:" in capsys.readouterr().err
    assert cli.main(["labels", str(proc), "--out", str(out), "--no-split"]) == 0
    assert "split" not in read_labels(out).columns


def test_cli_importers(tmp_path, capsys):
    root = make_folders(tmp_path / "p", {"real/r1": 2, "fake/f1": 2})
    gobal = write_csv(tmp_path / "g.csv", "r1.mp4,REAL\nf1.mp4,FAKE\n")
    out = tmp_path / "l.csv"
    assert cli.main(["labels", str(root), "--gobal", str(gobal), "--out", str(out), "--no-split"]) == 0
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"r1.mp4": {"label": "REAL"}, "f1.mp4": {"label": "FAKE", "original": "r1.mp4"}}))
    assert cli.main(["labels", str(root), "--dfdc", str(meta), "--out", str(out), "--no-split"]) == 0
    assert read_labels(out)["original"].tolist() == ["r1.mp4", ""]
    assert cli.main(["labels", "--check", str(tmp_path / "nope.csv"), str(root)]) == 1
    assert "labels CSV not found" in capsys.readouterr().err


@pytest.mark.slow
def test_shared_labels_fixture_validates(labels_csv, processed_dir):
    """The session fixture other stages train on is a valid, split labels CSV."""
    df = validate_labels(labels_csv, processed_dir, sequence_length=8, require_split=True)
    assert len(df) == 8 and set(df["split"]) == {"train", "val", "test"}
