"""labels/originals.py: the faces of a two-person fake compared with its original; only the swapped one stays fake."""
from __future__ import annotations

import json
import shutil

import pytest
import torchvision  # noqa: F401  before TensorFlow loads (the other order segfaults)

from dfdlib import PreprocessConfig, preprocess_dataset
from dfdlib.labels.originals import DIFF_THRESHOLD, changed_faces, relabel_fake_faces
from dfdlib.labels.sources import from_processed


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """A DFDC part: the two-person original, its fake with the man's face swapped, and a "fake" that is a
    copy of the original (nothing changed), preprocessed with max_faces=2."""
    from two_faces import write_pair

    base = tmp_path_factory.mktemp("originals")
    part = base / "src" / "dfdc_train_part_0"
    original, fake = write_pair(part)
    shutil.copy(original, part / "two_copy.mp4")
    meta = {"two_original.mp4": {"label": "REAL"},
            "two_fake.mp4": {"label": "FAKE", "original": "two_original.mp4"},
            "two_copy.mp4": {"label": "FAKE", "original": "two_original.mp4"}}
    (part / "metadata.json").write_text(json.dumps(meta))
    report = preprocess_dataset(base / "src", base / "proc", PreprocessConfig(frames=6, size=64, max_faces=2),
                                progress=False)
    assert list(report["faces"]) == [2, 2, 2], report
    return base / "proc"


def name(df, part):
    return next(f for f in df["filename"] if part in f)


def test_the_swapped_face_differs_the_other_does_not(processed):
    fake = next(p for p in (processed / "fake").rglob("two_fake") if p.is_dir()).relative_to(processed).as_posix()
    orig = next(p for p in (processed / "real").rglob("two_original") if p.is_dir()).relative_to(processed)
    faces = changed_faces(processed, fake, orig.as_posix())
    assert [c["filename"].rsplit("/", 1)[1] for c in faces] == ["face_0", "face_1"]
    left, right = faces  # face 0: the photo's person (untouched), face 1: the man, swapped
    assert left["frames"] == right["frames"] == 6
    # The fake was cut with its original's boxes (preprocess/reuse.py), so only the swap itself differs.
    assert left["diff"] < 3 and right["diff"] > DIFF_THRESHOLD and (left["changed"], right["changed"]) == (False, True)


def test_labels_keep_only_the_changed_faces_fake(processed):
    with pytest.warns(UserWarning, match=r"2 face\(s\) of fake videos equal their original.*left out"):
        df = from_processed(processed, split=None)
    labels = dict(zip(df["filename"], df["label"], strict=True))
    assert sorted(labels) == sorted([name(df, "two_original/face_0"), name(df, "two_original/face_1"),
                                     name(df, "two_fake/face_1"), name(df, "two_copy/face_")])
    assert labels[name(df, "two_fake/face_1")] == 1 and labels[name(df, "two_original/face_0")] == 0
    # the copy changed nothing, but it is a known fake: its most different face stays fake
    assert labels[name(df, "two_copy/face_")] == 1
    changes = {c["filename"]: c for c in df.attrs["face_changes"]}
    assert len(changes) == 4 and sum(c["changed"] for c in changes.values()) == 2

    with pytest.warns(UserWarning, match="labelled real"):
        real = from_processed(processed, split=None, unchanged="real")
    got = real.set_index("filename")
    fake0 = name(real, "two_fake/face_0")
    assert len(real) == 6 and got.loc[fake0, "label"] == 0 and got.loc[fake0, "method"] == "real"
    assert got.loc[name(real, "two_fake/face_1"), "label"] == 1
    assert got.loc[fake0, "group"] == got.loc[name(real, "two_fake/face_1"), "group"]  # still one video's group
    kept = from_processed(processed, split=None, unchanged="keep")
    assert len(kept) == 6 and kept["label"].sum() == 4
    with pytest.raises(ValueError, match="unchanged must be one of"):
        relabel_fake_faces(kept, processed, unchanged="maybe")
