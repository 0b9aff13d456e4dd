"""Fakes cut with their original's boxes (issue 22): a generated FaceForensics++-shaped tree whose fakes
change only the face region, reuse on and off, and the fallbacks when a fake is not its original's copy."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

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
    scenes.ffpp_tree(root, originals=2, methods=("Deepfakes", "NeuralTextures"), frames=36)
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
        assert len(m["boxes_reused"]["checked_frames"]) == 2 and min(m["boxes_reused"]["check_iou"]) >= 0.6
        assert sum(m["detected_frames"]) == 2  # only the two check frames were detected
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


def test_shards_keep_an_original_and_its_fakes_together():
    tasks = [VideoTask(f"/d/{i}.mp4", f"v{i}.mp4", "fake" if i % 5 else "real", f"v{i}", group=f"ff:{i // 5}")
             for i in range(200)]
    for n in (2, 3, 7):
        for g in range(40):
            members = [t for t in tasks if t.group == f"ff:{g}"]
            assert len({next(k for k in range(n) if in_shard(t, (k, n))) for t in members}) == 1
