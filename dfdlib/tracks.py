"""Face tracks over the sampled frames of one video: link detections by IoU, re-acquire a person after a
shot cut by size and appearance, rank people by prominence.

Detections are rows (x1, y1, x2, y2, confidence, ...) in full-resolution pixels. Within one shot a face
moves little between sampled frames, so IoU with a track's latest box links it. After a camera cut the
same person reappears elsewhere and at another size: a detection that overlaps no track then joins the
absent track it looks most like (`appearance`: a colour histogram of the head and shoulders plus a small
grey thumbnail of the face), if similar enough and of a comparable size. A track's prominence is the sum
over its frames of box area x confidence, so the main face is a large, confident face seen often over
the whole video, not the first one found.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HIST_BINS = (12, 4, 4)  # hue, saturation, value bins of the colour histogram
THUMB = 16              # side of the grey face thumbnail (px)
SIZE_RATIO = 3.0        # re-acquisition joins only faces whose box sides differ by less than this factor


def iou(a, b) -> float:
    """Intersection over union of two xyxy boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _region(frame: np.ndarray, box) -> np.ndarray:
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box[:4])
    return frame[max(y1, 0):min(y2, h), max(x1, 0):min(x2, w)]


def appearance(frame_rgb: np.ndarray, box, scale: tuple[float, float] = (1.0, 1.0)) -> tuple:
    """What a face looks like, for re-acquisition after a cut: (colour histogram, grey thumbnail).

    Takes an RGB frame, a face box in full-resolution pixels and the factors (fx, fy) from the frame's
    pixels to full resolution (frames kept downscaled). The histogram (HSV, HIST_BINS, L1-normalised)
    covers the box widened by half its width on each side and extended down by its height (hair,
    clothes: they tell people apart better than skin); the thumbnail is the face box at THUMB x THUMB,
    zero-mean and unit-norm. Returns (None, None) for a box outside the frame.
    """
    import cv2

    x1, y1, x2, y2 = (float(box[0]) / scale[0], float(box[1]) / scale[1], float(box[2]) / scale[0],
                      float(box[3]) / scale[1])
    bw, bh = x2 - x1, y2 - y1
    face = _region(frame_rgb, (x1, y1, x2, y2))
    person = _region(frame_rgb, (x1 - bw / 2, y1, x2 + bw / 2, y2 + bh))
    if face.size == 0 or person.size == 0:
        return None, None
    hsv = cv2.cvtColor(np.ascontiguousarray(person), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST_BINS), [0, 180, 0, 256, 0, 256]).ravel()
    grey = cv2.resize(cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2GRAY), (THUMB, THUMB),
                      interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    grey -= grey.mean()
    return (hist / max(float(hist.sum()), 1.0)).astype(np.float32), grey / max(float(np.linalg.norm(grey)), 1e-6)


def similarity(a: tuple, b: tuple) -> float:
    """How alike two `appearance` values are, 0..1: the lower of the histogram intersection and the
    thumbnails' correlation (clipped at 0), so both colours and face layout must agree."""
    if a[0] is None or b[0] is None:
        return 0.0
    return min(float(np.minimum(a[0], b[0]).sum()), max(0.0, float(a[1] @ b[1])))


@dataclass
class Track:
    """One person's face over the sampled frames."""
    dets: dict = field(default_factory=dict)  # sampled frame number t -> detection row (np.ndarray)
    score: float = 0.0                         # prominence: sum of box area x confidence
    looks: list = field(default_factory=list)  # `appearance` of each detection (for re-acquisition)
    last: np.ndarray | None = None             # the latest box (xyxy)

    def add(self, t: int, det: np.ndarray, look) -> None:
        self.dets[t] = det
        self.last = np.asarray(det[:4])
        self.score += float(det[4]) * float(det[2] - det[0]) * float(det[3] - det[1])
        if look is not None and look[0] is not None:
            self.looks.append(look)

    def looks_like(self, look) -> float:
        """Best similarity of `look` to any of this track's appearances (a person seen in several shots)."""
        return max((similarity(look, x) for x in self.looks), default=0.0)

    def boxes(self, n: int) -> list:
        """Box [x1, y1, x2, y2] per sampled frame (None where this face was not detected)."""
        return [[float(v) for v in self.dets[t][:4]] if t in self.dets else None for t in range(n)]

    def confidences(self, n: int) -> list[float]:
        return [float(self.dets[t][4]) if t in self.dets else 0.0 for t in range(n)]


def _side(box) -> float:
    return max(float(box[2] - box[0]), float(box[3] - box[1]), 1e-6)


def build_tracks(detections: list[np.ndarray], looks: list | None = None, iou_min: float = 0.2,
                 min_similarity: float = 0.6) -> list[Track]:
    """Link per-frame detections into tracks, most prominent first.

    Takes per sampled frame a (k, 5+) array of detections, optionally per frame a list of k `appearance`
    values, the IoU with a track's latest box that links a detection to it, and the appearance
    similarity that re-acquires a track after a cut (above 1, or without `looks`: never). In each frame,
    detections (most confident first) join the track they overlap most (if they look at least half as
    alike as re-acquisition asks: a cut can put someone else in the same place); the rest join the most
    similar-looking track of comparable size not yet in this frame, else start a new track.
    Returns the tracks sorted by prominence (score), highest first.
    """
    tracks: list[Track] = []
    for t, dets in enumerate(detections):
        frame_looks = looks[t] if looks is not None else [None] * len(dets)
        free = list(tracks)  # tracks this frame has not given a detection yet
        pending = []
        for i in sorted(range(len(dets)), key=lambda i: -dets[i][4]):  # pass 1: overlap within a shot
            best, best_iou = None, iou_min
            for tr in free:
                v = iou(tr.last, dets[i])
                # Someone else in the same place right after a cut overlaps too: it must also look alike.
                alike = frame_looks[i] is None or not tr.looks or tr.looks_like(frame_looks[i]) >= min_similarity / 2
                if v > 0 and v >= best_iou and alike:
                    best, best_iou = tr, v
            if best is None:
                pending.append(i)
            else:
                best.add(t, dets[i], frame_looks[i])
                free.remove(best)
        for i in pending:  # pass 2: re-acquire by appearance and size (a cut moved the person)
            d, look = dets[i], frame_looks[i]
            best, best_sim = None, min_similarity
            if look is not None:
                for tr in free:
                    ratio = _side(d) / _side(tr.last)
                    sim = tr.looks_like(look)
                    if 1 / SIZE_RATIO < ratio < SIZE_RATIO and sim >= best_sim:
                        best, best_sim = tr, sim
            if best is None:
                best = Track()
                tracks.append(best)
            else:
                free.remove(best)
            best.add(t, d, look)
    return sorted(tracks, key=lambda tr: -tr.score)


def rank_tracks(tracks: list[Track], need: int) -> list[Track]:
    """Tracks seen in at least `need` frames first (a face seen in too few frames cannot make a clip,
    however large), each group by prominence."""
    return sorted(tracks, key=lambda tr: (len(tr.dets) < need, -tr.score))


def track_main_face(detections: list[np.ndarray], iou_min: float = 0.2, looks: list | None = None,
                    min_similarity: float = 0.6, need: int = 1):
    """The main track's (boxes, confidences) per frame (see build_tracks, rank_tracks): None/0.0 where it
    was not detected; ([None]*n, [0.0]*n) if nothing was detected."""
    n = len(detections)
    tracks = rank_tracks(build_tracks(detections, looks, iou_min, min_similarity), need)
    if not tracks:
        return [None] * n, [0.0] * n
    return tracks[0].boxes(n), tracks[0].confidences(n)


def fill_missing(boxes: list) -> tuple[list, list[bool]]:
    """Replace None boxes by the nearest detected one (the earlier on a tie); returns (boxes, filled).
    Raises ValueError when no box is detected at all."""
    known = [t for t, b in enumerate(boxes) if b is not None]
    if not known:
        raise ValueError("no detected box to fill from")
    out, filled = [], []
    for t, b in enumerate(boxes):
        if b is None:
            near = min(known, key=lambda k: (abs(k - t), k))
            out.append(list(boxes[near]))
        else:
            out.append(list(b))
        filled.append(b is None)
    return out, filled
