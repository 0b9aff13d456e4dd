"""Property tests of the tracker over many detection shapes: crowds (0-8 faces a frame, any order), cuts,
equal and degenerate boxes. It must never raise, and every detection lands in exactly one track."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfdlib.preprocess.faces import PreprocessConfig, extract_faces
from dfdlib.preprocess.tracks import Look, build_tracks, rank_tracks

W, H = 320, 240
coord = st.floats(0, 320, allow_nan=False, allow_infinity=False)


@st.composite
def box(draw, pool):
    """A detection row: a fresh box, one already used (equal boxes), or a degenerate one (zero or negative
    width/height, a point)."""
    kind = draw(st.sampled_from(["fresh", "fresh", "fresh", "reuse", "flat", "point", "inverted"]))
    if kind == "reuse" and pool:
        b = list(draw(st.sampled_from(pool)))
    else:
        x, y = draw(coord), draw(coord)
        w, h = draw(st.floats(1, 200)), draw(st.floats(1, 200))
        b = {"fresh": [x, y, x + w, y + h], "reuse": [x, y, x + w, y + h], "flat": [x, y, x + w, y],
             "point": [x, y, x, y], "inverted": [x + w, y + h, x, y]}[kind]
        pool.append(tuple(b))
    conf = draw(st.sampled_from([0.9, 0.95, 0.99, 1.0]) | st.floats(0.9, 1.0))
    return np.array([*b, conf], float)


@st.composite
def scenes(draw, with_looks: bool):
    pool: list = []
    n = draw(st.integers(1, 12))
    people = [draw(st.integers(0, 5)) for _ in range(8)]  # who each detection slot looks like
    frames, looks = [], []
    for _ in range(n):
        k = draw(st.integers(0, 8))
        rows = [draw(box(pool)) for _ in range(k)]
        order = draw(st.permutations(list(range(k))))
        frames.append(np.stack([rows[i] for i in order]) if k else np.empty((0, 5)))
        if with_looks:
            looks.append([look(people[i % 8], draw(st.booleans())) if draw(st.integers(0, 9)) else None
                          for i in order])
    return frames, (looks if with_looks else None)


def look(seed: int, body: bool) -> Look:
    rng = np.random.default_rng(seed)
    h, b, t = rng.random(192), rng.random(192), rng.standard_normal(256)
    return Look((h / h.sum()).astype(np.float32), (b / b.sum()).astype(np.float32) if body else None,
                (t / np.linalg.norm(t)).astype(np.float32))


def check_partition(frames, tracks):
    """Every detection is in exactly one track, and no track holds two detections of one frame."""
    for t, dets in enumerate(frames):
        got = sorted(tuple(tr.dets[t]) for tr in tracks if t in tr.dets)
        assert got == sorted(tuple(r) for r in dets), f"frame {t}: detections lost or duplicated"
    assert sum(len(tr.dets) for tr in tracks) == sum(len(d) for d in frames)
    assert all(tr.dets for tr in tracks)  # no empty track


@settings(max_examples=300, deadline=None)
@given(scenes(with_looks=False), st.floats(0, 0.9))
def test_iou_tracking_partitions_any_detections(scene, iou_min):
    frames, _ = scene
    tracks = build_tracks(frames, iou_min=iou_min)
    check_partition(frames, tracks)
    assert [tr.score for tr in tracks] == sorted((tr.score for tr in tracks), reverse=True)


@settings(max_examples=300, deadline=None)
@given(scenes(with_looks=True), st.floats(0, 1.5), st.integers(1, 12))
def test_reacquisition_partitions_any_detections(scene, min_similarity, need):
    frames, looks = scene
    tracks = build_tracks(frames, looks, min_similarity=min_similarity)
    check_partition(frames, tracks)
    ranked = rank_tracks(tracks, need)
    assert sorted(map(id, ranked)) == sorted(map(id, tracks))
    seen = [len(tr.dets) >= need for tr in ranked]
    assert seen == sorted(seen, reverse=True)  # tracks long enough for a clip come first


# --- the same through extract_faces: a real video, made-up detections ---------------------------------
class ScriptedDetector:
    """Stands in for MTCNN: returns the given detections (in the pixels of the frame it is handed)."""

    def __init__(self, frames):
        self.frames = frames

    def detect(self, frames_rgb, max_side=480):
        assert len(frames_rgb) == len(self.frames)
        out = []
        for f, d in zip(frames_rgb, self.frames, strict=True):
            s = f.shape[1] / W  # the video is W x H; detection may run on another size
            out.append(d * np.array([s, s, s, s, 1.0]) if len(d) else np.empty((0, 5)))
        return out


@pytest.fixture(scope="module")
def textured_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("prop") / "v.mp4"
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (W, H))
    for _ in range(24):
        writer.write(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    writer.release()
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenes(with_looks=False), st.integers(1, 4))
def test_extract_faces_tracks_any_detections(textured_video, scene, max_faces):
    frames, _ = scene
    n = len(frames)
    cfg = PreprocessConfig(frames=n, size=16, min_face_size=0, min_confidence=0.0, max_faces=max_faces,
                           detect_retry=False, keyframes=1, start_small=False)
    res = extract_faces(textured_video, cfg, detector=ScriptedDetector(frames))
    assert res.status in ("ok", "no_face"), res.reason  # never "error": the tracker must not raise
    if res.status == "ok":
        assert len(res.crops) == n and all(c.shape == (16, 16, 3) for c in res.crops)
        assert 1 <= len(res.faces) <= max_faces
    else:
        assert "sampled frames" in res.reason
    relaxed = extract_faces(textured_video, dataclasses.replace(cfg, reacquire=0.3), detector=ScriptedDetector(frames))
    assert relaxed.status in ("ok", "no_face"), relaxed.reason


# --- keyframes: detect on some frames, follow the faces in between ----------------------------------------
@settings(max_examples=200, deadline=None)
@given(scenes(with_looks=False), st.integers(1, 6), st.lists(st.booleans(), min_size=12, max_size=12))
def test_keyframe_detection_runs_where_it_must(scene, every, cuts):
    from dfdlib.preprocess.keyframes import detect_sparse

    dets, _ = scene
    n = len(dets)
    rng = np.random.default_rng(n)
    base = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)]
    for t in range(1, n):  # a cut: a new picture; else the same shot, slightly changed
        base.append(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) if cuts[t] else
                    np.clip(base[-1].astype(int) + rng.integers(-3, 4, base[-1].shape), 0, 255).astype(np.uint8))
    index = {id(f): t for t, f in enumerate(base)}
    calls = []

    def detect(chunk):
        calls.append([index[id(f)] for f in chunk])
        return [dets[index[id(f)]] for f in chunk]

    got, ran = detect_sparse(base, detect, every)
    ran_at = [t for c in calls for t in c]
    assert sorted(ran_at) == [t for t in range(n) if ran[t]] and len(set(ran_at)) == len(ran_at)
    assert ran[0] and ran[-1] and (every > 1 or all(ran))
    for t in range(n):
        if ran[t]:
            assert got[t] is dets[t]
        else:  # followed: between two keyframes of one shot that hold the same number of faces
            prev = max(k for k in range(t) if ran[k])
            nxt = min(k for k in range(t + 1, n) if ran[k])
            assert len(got[t]) == len(dets[prev]) == len(dets[nxt]) and not any(cuts[prev + 1:nxt + 1])
            assert got[t].shape == (len(dets[prev]), 5) and np.isfinite(got[t]).all()
            # moved onto its face from the linear interpolation by at most the search window (half a box);
            # the box's size stays the interpolated one
            w = (t - prev) / (nxt - prev)
            for row in got[t]:
                ends = [(a, b) for a in dets[prev] for b in dets[nxt]
                        if np.allclose(row[2:4] - row[:2], ((1 - w) * a + w * b)[2:4] - ((1 - w) * a + w * b)[:2])]
                assert ends, row
                a, b = ends[0]
                lin = (1 - w) * a[:4] + w * b[:4]
                near = a if t - prev <= nxt - t else b
                assert np.abs(row[:4] - lin).max() <= 0.5 * max(near[2] - near[0], near[3] - near[1]) + 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), st.integers(2, 5), st.integers(10, 28), st.floats(0.0, 0.45))
def test_a_face_that_moves_away_and_back_is_followed(seed, every, side, swing):
    """A textured face moving away and back between two keyframes (as a talking head does): the followed
    boxes sit on it, where linear interpolation between the keyframes would not."""
    from dfdlib.preprocess.keyframes import detect_sparse

    rng = np.random.default_rng(seed)
    H, W = 120, 160
    face = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    backdrop = rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    n = 2 * every + 1
    x0, y0 = 40, 40
    path = [(x0 + round(swing * side * abs(np.sin(np.pi * t / every))), y0) for t in range(n)]  # out and back
    frames = []
    for x, y in path:
        f = backdrop.copy()
        f[y:y + side, x:x + side] = face
        frames.append(f)
    truth = [np.array([[x, y, x + side, y + side, 0.99]], float) for x, y in path]
    scale = (2.0, 2.0)  # the detector's boxes are at full resolution, twice the frames'

    def detect(chunk):
        return [truth[next(t for t in range(n) if f is frames[t])] * [*scale, *scale, 1] for f in chunk]

    got, ran = detect_sparse(frames, detect, every, scale)
    for t in range(n):
        if not ran[t]:
            assert np.abs(got[t][0, :4] / scale[0] - truth[t][0, :4]).max() <= 1.0, (t, got[t], truth[t])
    assert not all(ran)  # the face was followed, not detected again on every frame
