"""Face tracks over the sampled frames of one video: link detections by IoU, re-acquire a person after a
shot cut by appearance (size a soft cue), rank people by prominence.

Detections are rows (x1, y1, x2, y2, confidence, ...) in full-resolution pixels. Within one shot a face
moves little between sampled frames, so IoU with a track's latest box links it. After a camera cut the
same person reappears elsewhere and often at another size (close-up, medium shot): a detection that
overlaps no track then joins the absent track it looks most like (`appearance`: colour histograms of the
head and of the body below it, plus a small grey thumbnail of the face, all measured in regions scaled to
the box), if similar enough once a size change has cost its `size_penalty`. A track's prominence is the sum
over its frames of box area x confidence, so the main face is a large, confident face seen often over
the whole video, not the first one found.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dfdlib.boxes import iou

HIST_BINS = (12, 4, 4)  # hue, saturation, value bins of each colour histogram
THUMB = 16              # side of the grey face thumbnail (px), taken from the box normalised to THUMB x THUMB
SIZE_SOFT = 1.5         # box sides within this factor of the track's: no size penalty at re-acquisition
SIZE_PENALTY = 0.12     # similarity taken off per unit of |ln(size ratio)| beyond SIZE_SOFT (a soft cue)
VISIBLE = 0.6           # share of a region that must lie inside the frame for its histogram to be compared

# Regions of a face's appearance, as (left, top, right, bottom) in units of the box's width/height from its
# corners, so they scale with the face: the head (hair, skin, a little background) and the body below it
# (clothes). A close-up cuts the body off at the frame edge; a medium shot shows it: the body counts only
# where both looks see enough of it.
HEAD = (-0.25, -0.35, 0.25, 0.1)
BODY = (-0.5, 0.25, 0.5, 1.25)


@dataclass(frozen=True)
class Look:
    """What a face looks like, normalised to its box so a close-up and a medium shot compare alike."""
    head: np.ndarray           # HSV histogram of the head region (L1-normalised)
    body: np.ndarray | None    # HSV histogram of the body region, None when too little of it is in the frame
    thumb: np.ndarray          # grey face box at THUMB x THUMB, zero-mean, unit-norm


def _hist(hsv: np.ndarray, box, rel, frame_hw: tuple[int, int], origin: tuple[int, int] = (0, 0)):
    """(L1 histogram, share of the region inside the frame) of a region placed relative to `box`; `hsv` is
    the part of the frame (frame_hw: its full height, width) whose top-left corner is at `origin`."""
    import cv2

    h, w = frame_hw
    bw, bh = box[2] - box[0], box[3] - box[1]
    x1, y1, x2, y2 = box[0] + rel[0] * bw, box[1] + rel[1] * bh, box[2] + rel[2] * bw, box[3] + rel[3] * bh
    area = max((x2 - x1) * (y2 - y1), 1e-6)
    c = [int(round(v)) for v in (max(x1, 0), max(y1, 0), min(x2, w), min(y2, h))]
    if c[2] - c[0] < 2 or c[3] - c[1] < 2:
        return None, 0.0
    region = np.ascontiguousarray(hsv[c[1] - origin[1]:c[3] - origin[1], c[0] - origin[0]:c[2] - origin[0]])
    hist = cv2.calcHist([region], [0, 1, 2], None, list(HIST_BINS), [0, 180, 0, 256, 0, 256]).ravel()
    return (hist / max(float(hist.sum()), 1.0)).astype(np.float32), (c[2] - c[0]) * (c[3] - c[1]) / area


def appearance(frame_rgb: np.ndarray, box, scale: tuple[float, float] = (1.0, 1.0)) -> Look | None:
    """What a face looks like, for re-acquisition after a cut (a `Look`), or None for a box outside the frame.

    Takes an RGB frame, a face box in full-resolution pixels and the factors (fx, fy) from the frame's
    pixels to full resolution (frames kept downscaled). Every part is measured in a region placed and sized
    relative to the box (HEAD, BODY, the box itself for the thumbnail), so the same person filmed in
    close-up and in a medium shot gives comparable values; raw pixels of different sizes are never compared.
    """
    import cv2

    b = (float(box[0]) / scale[0], float(box[1]) / scale[1], float(box[2]) / scale[0], float(box[3]) / scale[1])
    h, w = frame_rgb.shape[:2]
    c = [int(round(v)) for v in (max(b[0], 0), max(b[1], 0), min(b[2], w), min(b[3], h))]
    if c[2] - c[0] < 2 or c[3] - c[1] < 2:
        return None
    # HSV of the part of the frame that HEAD and BODY can cover (with a pixel to spare for rounding), not of
    # the whole frame: appearance runs once per detection.
    bw, bh = b[2] - b[0], b[3] - b[1]
    ox, oy = (max(0, int(math.floor(v)) - 1) for v in (b[0] + min(HEAD[0], BODY[0]) * bw, b[1] + HEAD[1] * bh))
    ex, ey = (int(math.ceil(v)) + 1 for v in (b[2] + max(HEAD[2], BODY[2]) * bw, b[3] + BODY[3] * bh))
    hsv = cv2.cvtColor(np.ascontiguousarray(frame_rgb[oy:max(oy, min(ey, h)), ox:max(ox, min(ex, w))]),
                       cv2.COLOR_RGB2HSV)
    head, seen = _hist(hsv, b, HEAD, (h, w), (ox, oy))
    if head is None or seen < VISIBLE / 2:
        return None
    body, body_seen = _hist(hsv, b, BODY, (h, w), (ox, oy))
    face = np.ascontiguousarray(frame_rgb[c[1]:c[3], c[0]:c[2]])
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = cv2.GaussianBlur(grey, (3, 3), 0).ravel()  # small misalignments of the box matter less
    grey -= grey.mean()
    return Look(head, body if body_seen >= VISIBLE else None, grey / max(float(np.linalg.norm(grey)), 1e-6))


def similarity(a: Look | None, b: Look | None) -> float:
    """How alike two `appearance` values are, 0..1: the lower of the colours' agreement (histogram
    intersection of the heads, averaged with the bodies' where both show enough of the body) and the
    thumbnails' correlation (clipped at 0), so both colours and face layout must agree."""
    if a is None or b is None:
        return 0.0
    colour = float(np.minimum(a.head, b.head).sum())
    if a.body is not None and b.body is not None:
        colour = (colour + float(np.minimum(a.body, b.body).sum())) / 2
    return min(colour, max(0.0, float(a.thumb @ b.thumb)))


def size_penalty(side_a: float, side_b: float) -> float:
    """The similarity taken off for a size change between two boxes: 0 within SIZE_SOFT, then SIZE_PENALTY
    per unit of |ln ratio| (a zoom from a medium shot to a close-up, 2.5x, costs 0.07)."""
    r = abs(math.log(max(side_a, 1e-6) / max(side_b, 1e-6)))
    return SIZE_PENALTY * max(0.0, r - math.log(SIZE_SOFT))


@dataclass(eq=False)  # compared by identity: `list.remove` must never compare the numpy fields
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
        if look is not None:
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
    similar-looking track not yet in this frame (similarity less `size_penalty`: a zoom is allowed, a
    size change only costs), else start a new track. Every detection lands in exactly one track, and a
    track holds at most one detection per frame. Returns the tracks sorted by prominence (score), highest
    first.
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
        for i in pending:  # pass 2: re-acquire by appearance, size a soft cue (a cut moved or zoomed the person)
            d, look = dets[i], frame_looks[i]
            best, best_sim = None, min_similarity
            if look is not None:
                for tr in free:
                    sim = tr.looks_like(look) - size_penalty(_side(d), _side(tr.last))
                    if sim >= best_sim:
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


def seen_summary(tracks: list, need: int) -> str:
    """Who was seen and in how many sampled frames, for a no_face reason: "3 people seen: 9 frames (face
    ~190 px), 4 frames (~70 px), 1 frame (~40 px); 10 needed"."""
    if not tracks:
        return ""
    parts = []
    for k, tr in enumerate(sorted(tracks, key=lambda tr: (-len(tr.dets), -tr.score))[:5]):
        side = float(np.median([_side(d) for d in tr.dets.values()]))
        n = len(tr.dets)
        parts.append(f"{n} frame{'s' if n != 1 else ''} ({'face ' if k == 0 else ''}~{side:.0f} px)")
    more = f" and {len(tracks) - 5} more" if len(tracks) > 5 else ""
    people = f"{len(tracks)} {'person' if len(tracks) == 1 else 'people'}"
    return f"{people} seen: {', '.join(parts)}{more}; {need} needed"
