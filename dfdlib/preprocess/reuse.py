"""A fake cut with its original's face boxes instead of detecting faces again.

FaceForensics++ and DFDC fakes are their original video with the face region changed: same size, frame
count and fps, the faces in the same places. The DFDC winners detected faces on the originals only and
cut the fakes with the same boxes; so do we, after a cheap check. The fake must match the original's
size, frame count and fps, and MTCNN run on two of its sampled frames (those where the original's main
face was most confident) must find a face on each of the original's boxes there (IoU >= REUSE_IOU).
Anything else, and the caller detects as usual. faces.json says where the boxes came from.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dfdlib.boxes import iou
from dfdlib.preprocess.config import PreprocessConfig
from dfdlib.preprocess.faces import FRAME_BUDGET_BYTES, Face, FaceResult, crop_faces, default_detector
from dfdlib.video import VideoError, read_frames_at, video_header

REUSE_IOU = 0.6      # a detection on the fake must overlap the original's box this much, on each check frame
CHECK_FRAMES = 2     # frames of the fake that are detected to check the boxes


def original_manifests(folder: str | Path) -> list[dict]:
    """The faces.json of a processed original, one per face (face_<k>/ folders in order), or [] when it is
    missing or unreadable (not processed, or no face)."""
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
        out.append(m)
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


def extract_with_boxes(video_path, manifests: list[dict], config: PreprocessConfig, detector, threads=None,
                       source: str = "") -> tuple[FaceResult | None, str]:
    """Cut a fake with its original's boxes (`manifests`: original_manifests), after the check.

    Takes the fake's path, the original's manifests, the PreprocessConfig (crop size, margin, style), a
    FaceDetector for the check, the decoder's threads and the original's name for faces.json. Returns
    (FaceResult, "") when the boxes were reused, else (None, why not) and the caller detects as usual.
    """
    t0 = time.perf_counter()
    main = manifests[0]
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
    conf = [c if not f else -1.0 for c, f in zip(main["confidences"], main["filled"], strict=True)]
    checks = sorted(np.argsort(conf, kind="stable")[::-1][:CHECK_FRAMES].tolist())
    side = int(main.get("detect_side") or 0)
    side = 0 if side >= max(kh, kw) else side
    found = detector.detect([frames[t] for t in checks], side)
    overlaps = []
    for t, d in zip(checks, found, strict=True):
        d = d * np.array([fx, fy, fx, fy, 1.0]) if len(d) else d
        for m in manifests:
            if m["filled"][t]:
                continue
            best = max((iou(m["boxes"][t], r) for r in d), default=0.0)
            overlaps.append(best)
            if best < REUSE_IOU:
                return None, (f"the boxes disagree on sampled frame {t} (IoU {best:.2f} < {REUSE_IOU} with the "
                              "original's face there)")
    res = FaceResult(status="ok", config=config, source=str(video_path), indices=indices, info=info,
                     detect_side=int(main.get("detect_side") or 0), detect_sides=[],
                     replaced=list(main.get("replaced") or [""] * len(indices)),
                     detected=[t in checks for t in range(len(indices))])
    for k, m in enumerate(manifests):
        res.faces.append(Face(k, crop_faces(frames, m["boxes"], config, fx, fy), [list(b) for b in m["boxes"]],
                              list(m["confidences"]), list(m["filled"]), float(m.get("prominence", 0.0))))
    first = res.faces[0]
    res.crops, res.boxes, res.confidences, res.filled = first.crops, first.boxes, first.confidences, first.filled
    res.seen = [int(sum(not x for x in f.filled)) for f in res.faces]
    res.reused = {"from": source, "checked_frames": checks, "check_iou": [round(v, 3) for v in overlaps]}
    res.seconds = time.perf_counter() - t0
    return res, ""


def reuse_or_none(video_path, original_dir, config: PreprocessConfig, detector=None, threads=None,
                  source: str = "") -> FaceResult | None:
    """extract_with_boxes from the processed original in `original_dir` (the process-wide detector if None),
    or None when the original has no usable manifest or the check fails."""
    manifests = original_manifests(original_dir)
    if not manifests:
        return None
    return extract_with_boxes(video_path, manifests, config, detector or default_detector(config.detector), threads,
                              source)[0]


def link_originals(tasks: list) -> None:
    """Set each fake's `original_dir` (its original's output folder) where the original is among `tasks`."""
    where = {t.path: f"{t.label}/{t.name}" for t in tasks}
    for t in tasks:
        t.original_dir = where.get(t.original, "") if t.original else ""
