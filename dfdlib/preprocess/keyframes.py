"""Detect faces on fewer frames: keyframes of the sampled frames, the faces followed in between.

Within one shot a face moves smoothly between sampled frames, so detecting on every `every`-th sampled
frame (and the last) and interpolating the boxes in between loses little, where MTCNN is most of the
face stage's cost. A gap between two keyframes is interpolated only when nothing suggests a change: the
frames in between belong to the keyframes' shot (consecutive coarse layouts correlate, `video.layout`),
and the faces at both ends pair up one to one with enough overlap. Each interpolated box is then moved
onto its face: the face's pictures at both keyframes, matched (normalised cross-correlation) in a window
around the box, must agree where it is, so a head that moves away and back between two keyframes (a
talking head) is followed, not averaged. Otherwise (a cut, a face that appeared, left, jumped, turned, or
cannot be matched) every frame of the gap is detected, as with `every=1`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dfdlib.boxes import iou
from dfdlib.video import SAME_SHOT, layout

FOLLOW_IOU = 0.5     # faces at both ends of a gap pair up when their boxes overlap at least this much
FOLLOW_MATCH = 0.5   # an in-between face is followed when its keyframe picture matches this well (normalised
                     # cross-correlation); else the gap is detected
FOLLOW_AGREE = 0.08  # the two keyframes' matches must agree within this share of the face's size
TEMPLATE_SIDE = 32   # the face is matched at most this many px across


def grey(frame_rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)


def follow(key_grey: np.ndarray, key_box, grey_t: np.ndarray, box_t) -> tuple[float, float] | None:
    """Where the face in `key_box` of a keyframe (grey frame, boxes in its pixels) is in another frame near
    `box_t`: its picture, at most TEMPLATE_SIDE px across, matched (normalised cross-correlation, peak refined
    to a fraction of a step) in a window of half a box around `box_t`. Returns the shift (dx, dy) in px that
    moves `box_t` onto the match (0 where it is under one matching step: a still face keeps its box), or None
    when the best match is weaker than FOLLOW_MATCH (the face turned, was covered, or left)."""
    import cv2

    x1, y1, x2, y2 = (float(v) for v in key_box[:4])
    size = max(x2 - x1, y2 - y1, 1.0)
    k = min(1.0, TEMPLATE_SIDE / size)
    h, w = key_grey.shape[:2]
    kx1, ky1, kx2, ky2 = max(0, round(x1)), max(0, round(y1)), min(w, round(x2)), min(h, round(y2))
    tx1, ty1, tx2, ty2 = (float(v) for v in box_t[:4])
    pad = 0.5 * size
    sx1, sy1 = max(0, round(tx1 - pad)), max(0, round(ty1 - pad))
    sx2, sy2 = min(w, round(tx2 + pad)), min(h, round(ty2 + pad))
    tw, th = round((kx2 - kx1) * k), round((ky2 - ky1) * k)
    ww, wh = round((sx2 - sx1) * k), round((sy2 - sy1) * k)
    if min(tw, th) < 4 or ww < tw or wh < th:
        return None
    tmpl = cv2.resize(key_grey[ky1:ky2, kx1:kx2], (tw, th), interpolation=cv2.INTER_AREA)
    win = cv2.resize(grey_t[sy1:sy2, sx1:sx2], (ww, wh), interpolation=cv2.INTER_AREA)
    score = cv2.matchTemplate(win, tmpl, cv2.TM_CCOEFF_NORMED)
    _, best, _, (mx, my) = cv2.minMaxLoc(score)
    if best < FOLLOW_MATCH:
        return None

    def peak(c_minus, c0, c_plus) -> float:  # the parabola's vertex through three samples, in (-0.5, 0.5)
        d = c_minus - 2 * c0 + c_plus
        return float(np.clip(0.5 * (c_minus - c_plus) / d, -0.5, 0.5)) if d < 0 else 0.0

    fx = mx + (peak(score[my, mx - 1], best, score[my, mx + 1]) if 0 < mx < score.shape[1] - 1 else 0.0)
    fy = my + (peak(score[my - 1, mx], best, score[my + 1, mx]) if 0 < my < score.shape[0] - 1 else 0.0)
    # the matched picture's corner in the frame (each resize's own scale), against where box_t puts it
    step_x, step_y = (sx2 - sx1) / ww, (sy2 - sy1) / wh
    dx = sx1 + fx * step_x - (tx1 + (kx1 - x1))
    dy = sy1 + fy * step_y - (ty1 + (ky1 - y1))
    return (dx if abs(dx) >= step_x else 0.0), (dy if abs(dy) >= step_y else 0.0)


def agreed(ends: list, size: float) -> tuple[float, float] | None:
    """The shift both keyframes' matches give (their mean) when they agree within FOLLOW_AGREE of the face's
    size, else None: one of them lost the face, or matched something else (a turned head, a flat region)."""
    if any(e is None for e in ends):
        return None
    (ax, ay), (bx, by) = ends
    if max(abs(ax - bx), abs(ay - by)) > FOLLOW_AGREE * size:
        return None
    return (ax + bx) / 2, (ay + by) / 2


def pair_up(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]] | None:
    """One-to-one pairs (i, j) of detections a[i] ~ b[j] (greedy by IoU >= FOLLOW_IOU), or None when some
    face of either end has no partner."""
    if len(a) != len(b):
        return None
    cand = sorted(((iou(a[i], b[j]), i, j) for i in range(len(a)) for j in range(len(b))), reverse=True)
    used_a, used_b, pairs = set(), set(), []
    for v, i, j in cand:
        if v >= FOLLOW_IOU and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return pairs if len(pairs) == len(a) else None


def detect_sparse(frames: list[np.ndarray], detect: Callable[[list], list[np.ndarray]],
                  every: int, scale: tuple[float, float] = (1.0, 1.0)) -> tuple[list[np.ndarray], list[bool]]:
    """Per-frame detections of `frames`, running `detect` (frames → (k, 5+) arrays) on keyframes only where
    the faces can be followed in between.

    Takes the sampled frames, the detector call (already thresholded, boxes at full resolution), the
    keyframe spacing (1: every frame) and (fx, fy): full resolution over the frames' resolution. Returns
    (detections per frame, per frame whether the detector ran on it: False where the boxes were followed
    between the keyframes, confidence = the lower end's).
    """
    n = len(frames)
    if every <= 1 or n <= 2:
        return list(detect(frames)), [True] * n
    keys = sorted(set(range(0, n, every)) | {n - 1})
    dets: dict[int, np.ndarray] = dict(zip(keys, detect([frames[k] for k in keys]), strict=True))
    looks = [layout(f) for f in frames]
    greys: dict[int, np.ndarray] = {}
    to_frame = np.array([1 / scale[0], 1 / scale[1], 1 / scale[0], 1 / scale[1]])

    def grey_of(t: int) -> np.ndarray:
        if t not in greys:
            greys[t] = grey(frames[t])
        return greys[t]

    redo: list[int] = []
    for a, b in zip(keys, keys[1:], strict=False):
        if b - a < 2:
            continue
        same_shot = all(float(looks[t] @ looks[t + 1]) >= SAME_SHOT for t in range(a, b))
        pairs = pair_up(dets[a], dets[b]) if same_shot else None
        if pairs is None:
            redo += range(a + 1, b)
            continue
        for t in range(a + 1, b):
            w = (t - a) / (b - a)
            rows = [np.concatenate([(1 - w) * dets[a][i][:4] + w * dets[b][j][:4],
                                    [min(dets[a][i][4], dets[b][j][4])]]) for i, j in pairs]
            dets[t] = np.array(rows).reshape(len(rows), 5)
        # each interpolated box moved onto its face, matched from both keyframes' pictures of it
        shifts = {}
        for t in range(a + 1, b):
            for f, (i, j) in enumerate(pairs):
                box = dets[t][f][:4] * to_frame
                ends = [follow(grey_of(a), dets[a][i][:4] * to_frame, grey_of(t), box),
                        follow(grey_of(b), dets[b][j][:4] * to_frame, grey_of(t), box)]
                shifts[t, f] = agreed(ends, max(box[2] - box[0], box[3] - box[1]))
        if any(v is None for v in shifts.values()):
            redo += range(a + 1, b)
            continue
        for (t, f), (dx, dy) in shifts.items():
            dets[t][f, :4] += np.array([dx, dy, dx, dy]) * np.array(scale * 2)
    if redo:
        dets.update(zip(redo, detect([frames[t] for t in redo]), strict=True))
    ran = set(keys) | set(redo)
    return [dets[t] for t in range(n)], [t in ran for t in range(n)]
