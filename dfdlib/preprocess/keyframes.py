"""Detect faces on fewer frames: keyframes of the sampled frames, the faces followed in between.

Within one shot a face moves smoothly between sampled frames, so detecting on every `every`-th sampled
frame (and the last) and interpolating the boxes in between loses little, where MTCNN is most of the
face stage's cost. A gap between two keyframes is interpolated only when nothing suggests a change: the
frames in between belong to the keyframes' shot (consecutive coarse layouts correlate, `video.layout`),
and the faces at both ends pair up one to one with enough overlap. Otherwise (a cut, a face that
appeared, left or jumped) every frame of the gap is detected, as with `every=1`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dfdlib.boxes import iou
from dfdlib.video import SAME_SHOT, layout

FOLLOW_IOU = 0.5  # faces at both ends of a gap pair up when their boxes overlap at least this much


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
                  every: int) -> tuple[list[np.ndarray], list[bool]]:
    """Per-frame detections of `frames`, running `detect` (frames → (k, 5+) arrays) on keyframes only where
    the faces can be followed in between.

    Takes the sampled frames, the detector call (already thresholded, boxes at full resolution) and the
    keyframe spacing (1: every frame). Returns (detections per frame, per frame whether the detector ran
    on it: False where the boxes were interpolated between the keyframes, confidence = the lower end's).
    """
    n = len(frames)
    if every <= 1 or n <= 2:
        return list(detect(frames)), [True] * n
    keys = sorted(set(range(0, n, every)) | {n - 1})
    dets: dict[int, np.ndarray] = dict(zip(keys, detect([frames[k] for k in keys]), strict=True))
    looks = [layout(f) for f in frames]
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
    if redo:
        dets.update(zip(redo, detect([frames[t] for t in redo]), strict=True))
    ran = set(keys) | set(redo)
    return [dets[t] for t in range(n)], [t in ran for t in range(n)]
