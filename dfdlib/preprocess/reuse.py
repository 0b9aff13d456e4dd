"""A fake cut with its original's face boxes instead of detecting faces again.

FaceForensics++ and DFDC fakes are their original video with the face region changed: same size, frame
count and fps, the faces in the same places. The DFDC winners detected faces on the originals only and
cut the fakes with the same boxes; so do we, after a cheap check. The fake must match the original's
size, frame count and fps. Then, on every sampled frame, the fake is cut with the original's box and the
part of the crop around the face (the margin ring outside the box) is compared with the original's saved
crop: a fake that is its original with the face changed agrees there (correlation ~1.0 on generated FF++
fakes, 0.08 for another video, 0.57 for boxes 10 % of a face off), so no face is detected at all. Where
that is inconclusive (no margin, flat backgrounds, the original's crops made with other settings, or a
weaker agreement, e.g. a blend that spills past the box), MTCNN is run on two of the fake's sampled frames
(those where the original's main face was most confident) and must find a face on each of the original's
boxes there (IoU >= REUSE_IOU). Anything else, and the caller detects as usual. faces.json says where the
boxes came from and how they were checked.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from dfdlib.boxes import iou
from dfdlib.preprocess.config import PreprocessConfig
from dfdlib.preprocess.faces import (
    FRAME_BUDGET_BYTES,
    Face,
    FaceResult,
    crop_faces,
    crop_region,
    default_detector,
)
from dfdlib.video import VideoError, read_frames_at, video_header

REUSE_IOU = 0.6      # a detection on the fake must overlap the original's box this much, on each check frame
CHECK_FRAMES = 2     # frames of the fake that are detected to check the boxes
RING_SIDE = 32       # crops are compared as RING_SIDE x RING_SIDE grey thumbnails, outside the box only
RING_AGREE = 0.9     # median correlation of the rings over the sampled frames that takes the boxes unchecked...
RING_FRAME = 0.7     # ... when no compared frame is below this either
MIN_RING = 64        # thumbnail pixels outside the box needed to compare a frame (a margin of ~0.15 or more)


def original_manifests(folder: str | Path) -> list[tuple[Path, dict]]:
    """(sample folder, faces.json) of a processed original, one per face (face_<k>/ folders in order), or []
    when it is missing or unreadable (not processed, or no face)."""
    folder = Path(folder)
    files = [folder / "faces.json"] if (folder / "faces.json").is_file() else sorted(
        folder.glob("face_*/faces.json"), key=lambda p: int(p.parent.name.split("_")[1]))
    out = []
    for f in files:
        try:
            m = json.loads(f.read_text())
        except (OSError, ValueError):
            return []
        if m.get("status") != "ok" or not m.get("indices") or None in m.get("boxes", [None]):
            return []
        out.append((f.parent, m))
    return out


def same_geometry(info, m: dict) -> str:
    """Why a fake (VideoInfo) cannot take its original's boxes (manifest `m`), or "" when it can."""
    if (info.width, info.height) != (m.get("width"), m.get("height")):
        return f"size {info.width}x{info.height} vs the original's {m.get('width')}x{m.get('height')}"
    if info.frame_count != m.get("total_frames"):
        return f"{info.frame_count} frames vs the original's {m.get('total_frames')}"
    fps = m.get("fps") or 0.0
    if abs((info.fps or 0.0) - fps) > 0.01 * max(fps, 1.0):
        return f"{info.fps:g} fps vs the original's {fps:g}"
    return ""


def ring_mask(box, frame_w: int, frame_h: int, margin: float, stretch: bool, side: int = RING_SIDE) -> np.ndarray:
    """True where a side x side thumbnail of crop_face(frame, box, margin, ..., stretch) lies outside the face
    box: the box's place in the crop region (centred for 'square', anywhere for a 'stretch' crop clipped at the
    frame's edge), widened by half a thumbnail cell each way so resampling never carries the face into it."""
    x0, y0, x3, y3 = crop_region(box, frame_w, frame_h, margin, stretch)
    sx, sy = side / max(x3 - x0, 1), side / max(y3 - y0, 1)
    c0, c1 = math.floor((box[0] - x0) * sx - 0.5), math.ceil((box[2] - x0) * sx + 0.5)
    r0, r1 = math.floor((box[1] - y0) * sy - 0.5), math.ceil((box[3] - y0) * sy + 0.5)
    mask = np.ones((side, side), bool)
    mask[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = False
    return mask


def thumbnail(grey: np.ndarray, side: int = RING_SIDE) -> np.ndarray:
    """A grey crop as a side x side float thumbnail (area-averaged, so JPEG noise and resampling wash out)."""
    import cv2

    return cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)


def ring_agreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of two thumbnails on `mask`; nan when either is flat there (nothing to compare)."""
    x, y = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    sxx, syy = float((x * x).sum()), float((y * y).sum())
    if min(sxx, syy) < mask.sum() * 1.0:  # std below 1 grey level: a flat wall or black padding
        return float("nan")
    return float((x * y).sum() / math.sqrt(sxx * syy))


def background_agreement(crops: list, folder: Path, m: dict, config: PreprocessConfig, frame_wh: tuple[int, int],
                         fx: float, fy: float) -> list[float]:
    """ring_agreement of each crop of the fake (cut from frames of size `frame_wh`, (fx, fy) being full
    resolution over theirs) with the original's saved crop of the same sampled frame (`folder`/frame_<i>.jpg,
    made with manifest `m`'s settings); [] when they cannot be compared (other margin or crop style, a crop
    missing)."""
    import cv2

    made = m.get("preprocess") or {}
    if (made.get("margin"), made.get("crop", "square")) != (config.margin, config.crop):
        return []
    flag = next((f for k, f in ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                                (2, cv2.IMREAD_REDUCED_GRAYSCALE_2)) if (made.get("size") or 0) >= k * RING_SIDE),
                cv2.IMREAD_GRAYSCALE)
    out = []
    for i, (crop, b) in enumerate(zip(crops, m["boxes"], strict=True)):
        saved = cv2.imread(str(folder / f"frame_{i}.jpg"), flag)  # decoded straight to a reduced size
        if saved is None:
            return []
        mask = ring_mask([b[0] / fx, b[1] / fy, b[2] / fx, b[3] / fy], *frame_wh, config.margin,
                         config.crop == "stretch")
        out.append(ring_agreement(thumbnail(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)), thumbnail(saved), mask)
                   if mask.sum() >= MIN_RING else float("nan"))
    return out


def detection_check(frames, originals: list[tuple[Path, dict]], detector, fx: float, fy: float
                    ) -> tuple[list[int], list[float], str]:
    """MTCNN on CHECK_FRAMES of the fake's sampled frames (where the original's main face was most confident):
    (those frames, the best IoU with each original box there, "" or why the boxes disagree)."""
    main = originals[0][1]
    kh, kw = frames[0].shape[:2]
    conf = [c if not f else -1.0 for c, f in zip(main["confidences"], main["filled"], strict=True)]
    checks = sorted(np.argsort(conf, kind="stable")[::-1][:CHECK_FRAMES].tolist())
    side = int(main.get("detect_side") or 0)
    side = 0 if side >= max(kh, kw) else side
    found = detector.detect([frames[t] for t in checks], side)
    overlaps = []
    for t, d in zip(checks, found, strict=True):
        d = d * np.array([fx, fy, fx, fy, 1.0]) if len(d) else d
        for _, m in originals:
            if m["filled"][t]:
                continue
            best = max((iou(m["boxes"][t], r) for r in d), default=0.0)
            overlaps.append(round(best, 3))
            if best < REUSE_IOU:
                return checks, overlaps, (f"the boxes disagree on sampled frame {t} (IoU {best:.2f} < {REUSE_IOU} "
                                          "with the original's face there)")
    return checks, overlaps, ""


def extract_with_boxes(video_path, originals: list[tuple[Path, dict]], config: PreprocessConfig, detector=None,
                       threads=None, source: str = "") -> tuple[FaceResult | None, str]:
    """Cut a fake with its original's boxes (`originals`: original_manifests), after the check.

    Takes the fake's path, the original's sample folders and manifests, the PreprocessConfig (crop size,
    margin, style), a FaceDetector for the fallback check (None: the process-wide one, built only if that check
    runs), the decoder's and detector's threads and the original's name for faces.json. Returns (FaceResult, "") when the boxes were reused, else (None, why not) and the caller
    detects as usual.
    """
    t0 = time.perf_counter()
    main = originals[0][1]
    try:  # the header first (no decoding), then the decoded frames' size
        why = same_geometry(video_header(video_path), main)
        if why:
            return None, why
        indices = [int(i) for i in main["indices"]]
        frames, info = read_frames_at(video_path, indices, max(1, FRAME_BUDGET_BYTES // (3 * len(indices))), threads)
    except VideoError as e:
        return None, str(e)
    why = same_geometry(info, main)
    if why:
        return None, why
    kh, kw = frames[0].shape[:2]
    fx, fy = info.width / kw, info.height / kh
    crops = [crop_faces(frames, m["boxes"], config, fx, fy) for _, m in originals]
    agree = [v for (folder, m), c in zip(originals, crops, strict=True)
             for v in background_agreement(c, folder, m, config, (kw, kh), fx, fy)]
    seen = [v for v in agree if not math.isnan(v)]
    if len(seen) >= max(2, len(agree) // 2) and np.median(seen) >= RING_AGREE and min(seen) >= RING_FRAME:
        checks, how = [], {"check": "background", "agreement_median": round(float(np.median(seen)), 3),
                           "agreement_min": round(min(seen), 3)}
    else:
        detector = detector or default_detector(config.detector, threads)
        checks, overlaps, why = detection_check(frames, originals, detector, fx, fy)
        if why:
            return None, why
        how = {"check": "detection", "checked_frames": checks, "check_iou": overlaps,
               "agreement_median": round(float(np.median(seen)), 3) if seen else None}
    res = FaceResult(status="ok", config=config, source=str(video_path), indices=indices, info=info,
                     detect_side=int(main.get("detect_side") or 0), detect_sides=[],
                     replaced=list(main.get("replaced") or [""] * len(indices)),
                     detected=[t in checks for t in range(len(indices))])
    for k, ((_, m), c) in enumerate(zip(originals, crops, strict=True)):
        res.faces.append(Face(k, c, [list(b) for b in m["boxes"]], list(m["confidences"]), list(m["filled"]),
                              float(m.get("prominence", 0.0))))
    first = res.faces[0]
    res.crops, res.boxes, res.confidences, res.filled = first.crops, first.boxes, first.confidences, first.filled
    res.seen = [int(sum(not x for x in f.filled)) for f in res.faces]
    res.reused = {"from": source, **how}
    res.seconds = time.perf_counter() - t0
    return res, ""


def reuse_or_none(video_path, original_dir, config: PreprocessConfig, detector=None, threads=None,
                  source: str = "") -> FaceResult | None:
    """extract_with_boxes from the processed original in `original_dir`, or None when the original has no usable
    manifest or the check fails."""
    originals = original_manifests(original_dir)
    if not originals:
        return None
    return extract_with_boxes(video_path, originals, config, detector, threads, source)[0]


def link_originals(tasks: list) -> None:
    """Set each fake's `original_dir` (its original's output folder) where the original is among `tasks`."""
    where = {t.path: f"{t.label}/{t.name}" for t in tasks}
    for t in tasks:
        t.original_dir = where.get(t.original, "") if t.original else ""
