"""preprocess/faces.py: config, cropping, main-face tracking, and extract_faces on small real-photo videos."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from test_video import set_rotation, write_video

from dfdlib.boxes import iou
from dfdlib.preprocess import faces
from dfdlib.preprocess.faces import FaceDetector, PreprocessConfig, crop_face, extract_faces
from dfdlib.preprocess.tracks import fill_missing, track_main_face


def still(i):
    return (100, 20, 200)  # photo at x=100, y=20, 200 px high: face box ~58x73 px


def half_face(i):
    return still(i) if i < 15 else None  # face only in the first half of the video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("faces")
    boxes = write_video(d / "face.mp4", n=40, face=still)
    write_video(d / "half.mp4", n=30, face=half_face)
    write_video(d / "blank.mp4", n=30, value=lambda i: 90)
    write_video(d / "short.mp4", n=3, face=still)
    # 1080p with a ~29x37 px face: ~7x9 px at detect_max_side=480, below what MTCNN can find; fine at 960.
    small = write_video(d / "small_1080p.mp4", n=8, size=(1920, 1080), face=lambda i: (1200, 300, 100))
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("not a video\n" * 40)
    return d, boxes[0], small[0]


@pytest.fixture(scope="module")
def detector():
    return faces.default_detector()


CFG = PreprocessConfig(frames=6, size=64)


# --- config -----------------------------------------------------------------------------------------
def test_config_defaults_and_from_dict():
    c = PreprocessConfig()
    assert (c.frames, c.sampling, c.size, c.margin, c.min_confidence, c.min_face_size, c.jpeg_quality) == (
        20, "even", 224, 0.3, 0.9, 20, 95)
    d = dataclasses.asdict(PreprocessConfig(frames=8, size=112))
    assert PreprocessConfig.from_dict(d) == PreprocessConfig(frames=8, size=112)
    assert PreprocessConfig.from_dict(None) == PreprocessConfig()
    with pytest.raises(ValueError, match=r"unknown PreprocessConfig field\(s\) \['from_a_newer_version'\]; valid "
                                         r"fields: .*frames"):
        PreprocessConfig.from_dict(d | {"from_a_newer_version": 1})
    json.dumps(dataclasses.asdict(c))  # model metadata must be plain JSON types


@pytest.mark.parametrize("bad", [dict(frames=0), dict(sampling="random"), dict(margin=-0.1),
                                 dict(min_confidence=1.5), dict(jpeg_quality=0), dict(detect_max_side=10)])
def test_config_is_validated_when_made(bad):
    with pytest.raises(ValueError, match=f"PreprocessConfig.{next(iter(bad))}"):
        PreprocessConfig(**bad)


# --- cropping and tracking (no detector) ------------------------------------------------------------
def test_crop_face_margin_and_square():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[50:150, 100:160] = 255  # a 60x100 "face"
    tight = crop_face(frame, (100, 50, 160, 150), margin=0.0, size=50)
    assert tight.shape == (50, 50, 3) and tight.dtype == np.uint8
    # Square of the longer side (100 px), centred: the 60 px wide face is the middle 60 %.
    cols = tight[25, :, 0] > 128
    assert 9 <= cols.argmax() <= 11 and 29 <= cols.sum() <= 31
    wide = crop_face(frame, (100, 50, 160, 150), margin=0.5, size=50)  # 100 px + 50 px each side
    rows = wide[:, 25, 0] > 128
    assert 12 <= rows.argmax() <= 13 and 24 <= rows.sum() <= 26


def test_crop_face_stretch_is_the_box_itself_as_the_original_project_cropped():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[50:150, 100:160] = 255  # a 60x100 "face"
    crop = crop_face(frame, (100, 50, 160, 150), margin=0.0, size=50, stretch=True)
    assert crop.shape == (50, 50, 3) and crop.min() == 255  # the whole square is the face, stretched
    wide = crop_face(frame, (100, 50, 160, 150), margin=0.5, size=50, stretch=True)  # +30 px / +50 px per side
    assert 24 <= (wide[25, :, 0] > 100).sum() <= 26 and 24 <= (wide[:, 25, 0] > 100).sum() <= 26  # the middle half
    edge = crop_face(frame, (-20, -10, 40, 30), margin=0.0, size=40, stretch=True)  # clipped, not padded
    assert edge.shape == (40, 40, 3) and edge.max() == 0
    assert PreprocessConfig(crop="stretch").crop == "stretch"
    with pytest.raises(ValueError, match="PreprocessConfig.crop='round': choose one of square, stretch"):
        PreprocessConfig(crop="round")


def test_crop_face_at_the_edge_pads_black_and_keeps_the_face_centred():
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_face(frame, (0, 0, 40, 40), margin=0.5, size=80)  # region (-20,-20)-(60,60)
    assert crop.shape == (80, 80, 3)
    assert crop[:15, :15].max() == 0 and crop[25:, 25:].min() == 200


def test_track_main_face_follows_one_person_and_fill_nearest():
    big = np.array([100, 100, 200, 200, 0.99])
    small = np.array([10, 10, 40, 40, 0.95])
    stranger = np.array([250, 100, 350, 200, 0.99])  # same size, elsewhere: only when the main face is gone
    dets = [np.stack([big, small]), np.stack([big + [5, 0, 5, 0, 0], small]), np.stack([stranger]),
            np.empty((0, 5)), np.stack([big + [10, 0, 10, 0, 0]])]
    boxes, confs = track_main_face(dets)
    assert boxes[0] == [100, 100, 200, 200] and boxes[1] == [105, 100, 205, 200] and boxes[4] == [110, 100, 210, 200]
    assert boxes[2] is None and boxes[3] is None and confs[2] == 0.0
    filled_boxes, filled = fill_missing(boxes)
    assert filled == [False, False, True, True, False]
    assert filled_boxes[2] == boxes[1] and filled_boxes[3] == boxes[4]  # nearest detected frame
    assert track_main_face([np.empty((0, 5))] * 3) == ([None] * 3, [0.0] * 3)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


# --- extract_faces ----------------------------------------------------------------------------------
def test_detector_batch_returns_full_resolution_boxes(videos, detector):
    from dfdlib.video import read_frames

    d, truth, _ = videos
    frames, _, _ = read_frames(d / "face.mp4", 3)
    small = detector.detect(frames, max_side=160)  # detect at half resolution
    full = detector.detect(frames, max_side=0)
    for a, b in zip(small, full, strict=True):
        assert len(a) == 1 and len(b) == 1
        assert iou(a[0], truth) > 0.75 and iou(b[0], truth) > 0.75
        assert iou(a[0], b[0]) > 0.8


def test_extract_faces_ok(videos, detector):
    d, truth, _ = videos
    res = extract_faces(d / "face.mp4", CFG, detector=detector)
    assert res.status == "ok" and res.reason == ""
    assert len(res.crops) == 6 and all(c.shape == (64, 64, 3) and c.dtype == np.uint8 for c in res.crops)
    assert res.indices == [3, 10, 16, 23, 30, 36] and res.filled == [False] * 6
    assert all(iou(b, truth) > 0.75 for b in res.boxes)
    assert all(c >= 0.9 for c in res.confidences)
    m = json.loads(json.dumps(res.manifest()))
    assert m["source"] == str(d / "face.mp4") and m["total_frames"] == 40 and m["fps"] == pytest.approx(25)
    assert m["indices"] == res.indices and len(m["boxes"]) == 6 and m["filled"] == [False] * 6
    assert PreprocessConfig.from_dict(m["preprocess"]) == CFG and m["detector"]["name"] == "mtcnn"


def test_extract_faces_without_a_detector_builds_one(videos):
    res = extract_faces(videos[0] / "face.mp4", dataclasses.replace(CFG, frames=2, sampling="first"))
    assert res.status == "ok" and res.indices == [0, 1]


def test_missing_frames_are_filled_from_the_nearest_detection(videos, detector):
    d, truth, _ = videos
    res = extract_faces(d / "half.mp4", CFG, detector=detector)  # face in frames 0-14 of 30
    assert res.status == "ok"
    assert res.filled == [False, False, False, True, True, True]
    assert res.boxes[3] == res.boxes[2] == res.boxes[5] and res.confidences[3] == 0.0
    strict = extract_faces(d / "half.mp4", dataclasses.replace(CFG, min_detected=0.8), detector=detector)
    assert strict.status == "no_face" and strict.crops == []
    assert "only 3 of 6" in strict.reason and "1 person seen: 3 frames (face ~" in strict.reason


def test_min_face_size_is_filtered_by_us(videos, detector):
    # The face is ~58x73 px; mtcnn itself would find nothing with min_face_size > ~24 (its bug).
    d, _, _ = videos
    assert extract_faces(d / "face.mp4", dataclasses.replace(CFG, min_face_size=50), detector=detector).status == "ok"
    res = extract_faces(d / "face.mp4", dataclasses.replace(CFG, min_face_size=80), detector=detector)
    assert res.status == "no_face" and "size >= 80 px" in res.reason


@pytest.mark.parametrize("name,status,words", [
    ("blank.mp4", "no_face", "no face"), ("short.mp4", "too_short", "fewer than the 6"),
    ("zero.mp4", "unreadable", "empty"), ("text.mp4", "unreadable", "cannot open"),
    ("missing.mp4", "unreadable", "no such file"),
])
def test_bad_videos_are_reported_not_raised(videos, detector, name, status, words):
    d, _, _ = videos
    res = extract_faces(d / name, CFG, detector=detector)
    assert res.status == status and words in res.reason and name in res.reason
    assert res.crops == []
    json.dumps(res.manifest())


def test_detection_sides():
    cfg = PreprocessConfig()
    assert faces.detection_sides(cfg, 1920) == [480, 960, 0]
    assert faces.detection_sides(cfg, 640) == [480, 0] and faces.detection_sides(cfg, 320) == [0]
    assert faces.detection_sides(dataclasses.replace(cfg, detect_max_side=720), 1920) == [720, 1440, 0]
    assert faces.detection_sides(dataclasses.replace(cfg, detect_retry=False), 1920) == [480]
    assert faces.detection_sides(dataclasses.replace(cfg, detect_max_side=0), 1920) == [0]


def test_small_face_in_1080p_is_found_by_the_retry(videos, detector):
    d, _, truth = videos
    cfg = dataclasses.replace(CFG, frames=4)
    once = extract_faces(d / "small_1080p.mp4", dataclasses.replace(cfg, detect_retry=False), detector=detector)
    assert once.status == "no_face" and once.detect_sides == [480] and once.crops == []
    res = extract_faces(d / "small_1080p.mp4", cfg, detector=detector)
    assert res.status == "ok" and res.detect_sides == [480, 960] and res.detect_side == 960
    assert len(res.crops) == 4 and res.filled == [False] * 4 and all(iou(b, truth) > 0.7 for b in res.boxes)
    m = res.manifest()
    assert m["detect_side"] == 960 and m["detect_sides"] == [480, 960]


def test_huge_frames_are_kept_downscaled_with_full_resolution_boxes(videos, detector, monkeypatch):
    d, truth, _ = videos
    normal = extract_faces(d / "face.mp4", CFG, detector=detector)
    monkeypatch.setattr(faces, "FRAME_BUDGET_BYTES", 6 * 3 * 160 * 120)  # keep frames at 160x120
    small = extract_faces(d / "face.mp4", CFG, detector=detector)
    assert small.status == "ok" and (small.info.width, small.info.height) == (320, 240)
    assert all(iou(a, b) > 0.8 for a, b in zip(small.boxes, normal.boxes, strict=True))
    diff = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(small.crops, normal.crops, strict=True)])
    assert diff < 25  # the same face region, only softer


def test_rotated_video(videos, detector, tmp_path):
    # Film the photo lying on its side, then tag the file as rotated: the viewer (and we) see it upright.
    import cv2

    d, _, _ = videos
    from test_video import _photo

    photo = cv2.rotate(cv2.resize(_photo(), (170, 200)), cv2.ROTATE_90_COUNTERCLOCKWISE)  # 200x170 → w x h
    w = cv2.VideoWriter(str(tmp_path / "side.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for _ in range(8):
        frame = np.full((240, 320, 3), 100, np.uint8)
        frame[35:205, 60:260] = photo
        w.write(frame)
    w.release()
    set_rotation(tmp_path / "side.mp4", tmp_path / "upright.mp4", 90)
    assert extract_faces(tmp_path / "side.mp4", CFG, detector=detector).status == "no_face"  # sideways face
    res = extract_faces(tmp_path / "upright.mp4", CFG, detector=detector)
    assert res.status == "ok" and res.info.rotation == 90 and (res.info.width, res.info.height) == (240, 320)


def test_detector_is_reusable_object():
    det = faces.default_detector()
    assert isinstance(det, FaceDetector) and faces.default_detector() is det
    out = det.detect([np.full((120, 160, 3), 128, np.uint8)] * 2)  # a batch with no face in it
    assert len(out) == 2 and all(x.shape == (0, 5) for x in out)


class _FakeTFConfig:
    """Records what hide_gpus_from_tensorflow asks of tf.config, with two GPUs present."""

    def __init__(self):
        self.visible, self.growth = ["GPU:0", "GPU:1"], []
        self.experimental = self

    def list_physical_devices(self, kind):
        return ["GPU:0", "GPU:1"] if kind == "GPU" else ["CPU:0"]

    def set_visible_devices(self, devices, kind):
        assert kind == "GPU"
        self.visible = list(devices)

    def get_visible_devices(self, kind):
        return self.visible

    def set_memory_growth(self, gpu, on):
        self.growth.append((gpu, on))


def test_tensorflow_is_kept_off_the_gpus_unless_the_detector_runs_there():
    from types import SimpleNamespace

    from dfdlib.preprocess.detector import hide_gpus_from_tensorflow

    tf = SimpleNamespace(config=_FakeTFConfig())
    assert hide_gpus_from_tensorflow(tf) == [] and tf.config.growth == []
    tf = SimpleNamespace(config=_FakeTFConfig())
    assert hide_gpus_from_tensorflow(tf, keep=True) == ["GPU:0", "GPU:1"]
    assert tf.config.growth == [("GPU:0", True), ("GPU:1", True)]
    from dfdlib.preprocess.detector import import_tensorflow

    real_tf = import_tensorflow()  # on this CPU machine: no GPU, nothing to hide, no error
    assert hide_gpus_from_tensorflow(real_tf) == []
