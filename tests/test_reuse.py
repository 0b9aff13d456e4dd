"""Fakes cut with their original's boxes (issue 22): a generated FaceForensics++-shaped tree whose fakes
change only the face region, reuse on and off, and the fallbacks when a fake is not its original's copy."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdlib.boxes import iou, square_box
from dfdlib.cli import main
from dfdlib.preprocess.faces import PreprocessConfig
from dfdlib.preprocess.run import VideoTask, in_shard, preprocess_dataset
from dfdlib.sample import scenes

pytest.importorskip("skvideo")
CFG = PreprocessConfig(frames=12, size=48)


@pytest.fixture(scope="module")
def ffpp(tmp_path_factory):
    root = tmp_path_factory.mktemp("reuse") / "FaceForensics++"
    truth = scenes.ffpp_tree(root, originals=2, methods=("Deepfakes", "NeuralTextures"), frames=36)
    (root.parent / "truth.json").write_text(json.dumps(truth))  # the face box per frame of each video
    return root


@pytest.fixture(scope="module")
def runs(ffpp, tmp_path_factory):
    base = tmp_path_factory.mktemp("reuse_out")
    on = preprocess_dataset(ffpp, base / "on", CFG, progress=False)
    rc = main(["preprocess", str(ffpp), str(base / "off"), "--frames", "12", "--size", "48", "--no-reuse-boxes",
               "--no-progress"])
    assert rc == 0
    return base, on, pd.read_csv(base / "off" / "preprocess_report.csv", keep_default_na=False)


def manifest(out, rel):
    return json.loads((out / rel / "faces.json").read_text())


def test_fakes_take_their_originals_boxes(runs):
    base, on, off = runs
    assert (on["status"] == "ok").all() and (off["status"] == "ok").all()
    fakes = on[on["label"] == "fake"]
    assert len(fakes) == 4 and set(fakes["boxes_from"]) == {"real/youtube/c23/000", "real/youtube/c23/001"}
    assert (on.loc[on["label"] == "real", "boxes_from"].fillna("") == "").all()
    assert (off["boxes_from"] == "").all()
    for rel in ("fake/Deepfakes/c23/000_100", "fake/NeuralTextures/c23/001_101"):
        m = manifest(base / "on", rel)
        orig = manifest(base / "on", m["boxes_reused"]["from"])
        assert m["boxes"] == orig["boxes"] and m["indices"] == orig["indices"]
        # The surroundings of the face agree with the original's crops: no face detected on the fake at all.
        assert m["boxes_reused"]["check"] == "background" and m["boxes_reused"]["agreement_min"] >= 0.7
        assert m["boxes_reused"]["agreement_median"] >= 0.9 and sum(m["detected_frames"]) == 0
        # The same crops as detecting the fake itself (--no-reuse-boxes), within the detector's own jitter.
        alone = manifest(base / "off", rel)
        assert alone["boxes_reused"] is None and alone["indices"] == m["indices"]
        crops = [iou(square_box(a, CFG.margin), square_box(b, CFG.margin))
                 for a, b in zip(m["boxes"], alone["boxes"], strict=True)]
        assert sum(crops) / len(crops) >= 0.9 and min(crops) >= 0.75, crops
        n = len(list((base / "on" / rel).glob("frame_*.jpg")))
        assert n == 12


def test_a_fake_that_is_not_its_originals_copy_is_detected(ffpp, tmp_path):
    src = tmp_path / "FaceForensics++"
    shutil.copytree(ffpp / "original_sequences", src / "original_sequences")
    fakes = src / "manipulated_sequences" / "Deepfakes" / "c23" / "videos"
    fakes.mkdir(parents=True)
    # 000_100 is really the other original (same size, frame count, fps; the face elsewhere and bigger).
    shutil.copyfile(ffpp / "original_sequences/youtube/c23/videos/001.mp4", fakes / "000_100.mp4")
    # 001_101 has another size: resized copies are never cut with the original's boxes.
    import cv2

    cap = cv2.VideoCapture(str(ffpp / "manipulated_sequences/Deepfakes/c23/videos/001_101.mp4"))
    w = cv2.VideoWriter(str(fakes / "001_101.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (240, 180))
    while True:
        ok, f = cap.read()
        if not ok:
            break
        w.write(cv2.resize(f, (240, 180)))
    w.release()
    report = preprocess_dataset(src, tmp_path / "out", CFG, progress=False)
    assert (report["status"] == "ok").all()
    assert (report["boxes_from"].fillna("") == "").all()  # both fell back to their own detection
    m = manifest(tmp_path / "out", "fake/Deepfakes/c23/000_100")
    other = manifest(tmp_path / "out", "real/youtube/c23/001")
    assert m["boxes_reused"] is None and iou(m["boxes"][0], other["boxes"][0]) > 0.8


def test_a_blend_past_the_box_is_checked_by_detection(ffpp, tmp_path):
    """A fake whose change spills past the face box (here: noise all around the face) fails the background
    check, and is then checked by MTCNN on two frames, which finds the face on the original's box."""
    import cv2
    import numpy as np

    src = tmp_path / "FaceForensics++"
    shutil.copytree(ffpp / "original_sequences", src / "original_sequences")
    fakes = src / "manipulated_sequences" / "Deepfakes" / "c23" / "videos"
    fakes.mkdir(parents=True)
    first = json.loads((ffpp.parent / "truth.json").read_text())["original_sequences/youtube/c23/videos/000.mp4"]
    cap = cv2.VideoCapture(str(ffpp / "original_sequences/youtube/c23/videos/000.mp4"))
    w = cv2.VideoWriter(str(fakes / "000_100.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25,
                        (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))))
    rng = np.random.default_rng(0)
    for box in first:
        ok, f = cap.read()
        assert ok
        x1, y1, x2, y2 = (int(v) for v in box)
        noisy = rng.integers(0, 256, f.shape, dtype=np.uint8)
        noisy[y1:y2, x1:x2] = f[y1:y2, x1:x2]
        w.write(noisy)
    w.release()
    report = preprocess_dataset(src, tmp_path / "out", CFG, progress=False)
    assert (report["status"] == "ok").all()
    m = manifest(tmp_path / "out", "fake/Deepfakes/c23/000_100")
    how = m["boxes_reused"]
    assert how["check"] == "detection" and how["agreement_median"] < 0.9, how
    assert len(how["checked_frames"]) == 2 and min(how["check_iou"]) >= 0.6 and sum(m["detected_frames"]) == 2
    assert m["boxes"] == manifest(tmp_path / "out", "real/youtube/c23/000")["boxes"]


def test_shards_keep_an_original_and_its_fakes_together():
    tasks = [VideoTask(f"/d/{i}.mp4", f"v{i}.mp4", "fake" if i % 5 else "real", f"v{i}", group=f"ff:{i // 5}")
             for i in range(200)]
    for n in (2, 3, 7):
        for g in range(40):
            members = [t for t in tasks if t.group == f"ff:{g}"]
            assert len({next(k for k in range(n) if in_shard(t, (k, n))) for t in members}) == 1


@settings(max_examples=150, deadline=None)
@given(w=st.integers(24, 400), aspect=st.floats(0.6, 1.6), cx=st.floats(0.0, 1.0), cy=st.floats(0.0, 1.0),
       margin=st.floats(0.15, 0.8), stretch=st.booleans(), size=st.sampled_from([32, 48, 112, 224]),
       seed=st.integers(0, 2**16))
def test_the_background_check_never_sees_the_face(w, aspect, cx, cy, margin, stretch, size, seed):
    """Whatever happens inside the face box (the part a fake changes) leaves the ring agreement at ~1, for any
    box size, shape and place (at the frame edge too), margin, crop style and crop size; a fake whose picture
    is moved by half a face disagrees."""
    import numpy as np

    from dfdlib.preprocess.faces import crop_face
    from dfdlib.preprocess.reuse import MIN_RING, RING_AGREE, ring_agreement, ring_mask, thumbnail

    rng = np.random.default_rng(seed)
    H, W = 480, 640
    bw, bh = w, min(int(w * aspect), H - 2)
    bw = min(bw, W - 2)
    x1, y1 = cx * (W - bw), cy * (H - bh)
    box = [x1, y1, x1 + bw, y1 + bh]
    # a textured background (blobs a few px wide, as real scenes have) and a fake that changes the box only
    import cv2

    frame = cv2.resize(rng.integers(0, 256, (H // 4, W // 4, 3), dtype=np.uint8), (W, H),
                       interpolation=cv2.INTER_CUBIC)
    fake = frame.copy()
    ix1, iy1, ix2, iy2 = int(np.ceil(box[0])), int(np.ceil(box[1])), int(box[2]), int(box[3])
    fake[iy1:iy2, ix1:ix2] = rng.integers(0, 256, (iy2 - iy1, ix2 - ix1, 3), dtype=np.uint8)
    mask = ring_mask(box, W, H, margin, stretch)

    def grey(img, b):
        return thumbnail(cv2.cvtColor(crop_face(img, b, margin, size, stretch), cv2.COLOR_RGB2GRAY))

    a = ring_agreement(grey(fake, box), grey(frame, box), mask)
    assert np.isnan(a) or a >= 0.97, a
    if box[0] > bw and box[1] > bh and box[2] < W - bw and box[3] < H - bh:  # away from the frame's edges
        assert mask.sum() >= MIN_RING
        # a fake whose picture is the original's moved by half a face: the same boxes no longer fit it
        moved = np.roll(fake, bw // 2, axis=1)
        b = ring_agreement(grey(moved, box), grey(frame, box), mask)
        assert np.isnan(b) or b < RING_AGREE, b
