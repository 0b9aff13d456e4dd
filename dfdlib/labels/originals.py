"""Which faces of a fake were manipulated: each face track of the fake against the same region of its original.

A face-swap dataset (DFDC, FaceForensics++, Celeb-DF) makes a fake by replacing one person's face in a real
video; the other people keep the original's pixels up to compression noise. With several faces per video
(`max_faces` > 1) the labels stage therefore compares each face folder of a fake (`fake/v/face_<k>`) with the
original's face crops at the same place (boxes overlapping, same sampled frame): the mean absolute grey-level
difference of the crops (downscaled and blurred, so compression noise counts little) is large for a swapped
face and small for an untouched one. Only the changed faces keep the label fake; the others are dropped or
labelled real. Reads only what `dfd preprocess` wrote (crops + faces.json), never the source videos.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dfdlib.boxes import iou
from dfdlib.utils import split_face

DIFF_THRESHOLD = 8.0  # mean absolute grey difference (0-255) from which a face counts as changed
PATCH = 64            # crops are compared at this size (px), so big and small faces weigh alike
MIN_IOU = 0.5         # a fake's box and an original's box on one frame are the same place above this IoU
UNCHANGED = ("drop", "real", "keep")  # what becomes of a fake's faces that equal the original


def _patch(path: Path) -> np.ndarray | None:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        return None
    small = cv2.resize(img, (PATCH, PATCH), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (5, 5), 0).astype(np.float32)


def _face_folders(folder: Path) -> list[Path]:
    faces = sorted(p for p in folder.glob("face_*") if p.is_dir() and (p / "faces.json").is_file())
    return faces or ([folder] if (folder / "faces.json").is_file() else [])


def crop_difference(fake: Path, original: Path) -> tuple[float, int]:
    """(mean absolute grey difference of the crops, frames compared) of two sample folders written by
    `dfd preprocess`, over the sampled frames that both saw at the same place (same frame index, boxes
    with IoU >= MIN_IOU, neither filled in). (nan, 0) when no frame qualifies or a file is unreadable."""
    try:
        a, b = (json.loads((p / "faces.json").read_text()) for p in (fake, original))
    except (OSError, ValueError):
        return math.nan, 0
    where = {int(i): t for t, i in enumerate(b.get("indices", []))}
    diffs = []
    for t, i in enumerate(a.get("indices", [])):
        u = where.get(int(i))
        if u is None or a["filled"][t] or b["filled"][u] or iou(a["boxes"][t], b["boxes"][u]) < MIN_IOU:
            continue
        pa, pb = _patch(fake / f"frame_{t}.jpg"), _patch(original / f"frame_{u}.jpg")
        if pa is not None and pb is not None:
            diffs.append(float(np.abs(pa - pb).mean()))
    return (float(np.mean(diffs)), len(diffs)) if diffs else (math.nan, 0)


def changed_faces(root, fake: str, original: str, threshold: float = DIFF_THRESHOLD) -> list[dict]:
    """Each face folder of the fake video `fake` (`fake/v`, relative to the processed `root`) against the
    original's (`real/o`, its face_<j> folders or the folder itself). Returns per fake face
    `{"filename", "diff" (smallest over the original's faces; nan: no original face at that place),
    "frames", "changed"}`; a face with no original face at its place counts as changed."""
    root = Path(root)
    originals = _face_folders(root / original)
    out = []
    for face in _face_folders(root / fake):
        best = (math.nan, 0)
        for o in originals:
            d, n = crop_difference(face, o)
            if n and (not best[1] or d < best[0]):
                best = (d, n)
        out.append({"filename": face.relative_to(root).as_posix(), "diff": round(best[0], 2), "frames": best[1],
                    "changed": not best[1] or best[0] >= threshold})
    return out


def relabel_fake_faces(df, root, unchanged: str = "drop", threshold: float = DIFF_THRESHOLD):
    """Labels rows of the faces of fakes whose original is in `root`: changed faces stay fake, unchanged
    ones are dropped (`unchanged="drop"`), labelled real with method real ("real") or kept as fake
    ("keep": no comparison). When no face of a fake differs, the most different one stays fake (the
    video is known to be fake). Takes and returns a labels frame (`filename,label,original,...`); the
    comparison of every face is in `out.attrs["face_changes"]`. Raises ValueError for another `unchanged`."""
    if unchanged not in UNCHANGED:
        raise ValueError(f"unchanged must be one of {', '.join(UNCHANGED)}, got {unchanged!r}")
    if unchanged == "keep" or "original" not in df.columns:
        return df
    root = Path(root)
    videos = {}
    for f, label, orig in zip(df["filename"], df["label"], df["original"], strict=True):
        video, k = split_face(f)
        if int(label) == 1 and k is not None and str(orig) and (root / str(orig)).is_dir():
            videos[video] = str(orig)
    drop, real, report = set(), set(), []
    for video, orig in videos.items():
        faces = changed_faces(root, video, orig, threshold)
        if faces and not any(c["changed"] for c in faces):
            max(faces, key=lambda c: c["diff"])["changed"] = True
        report += faces
        for c in faces:
            if not c["changed"]:
                (drop if unchanged == "drop" else real).add(c["filename"])
    out = df[~df["filename"].isin(drop)].copy()
    mask = out["filename"].isin(real)
    out.loc[mask, "label"] = 0
    if "method" in out.columns:
        out.loc[mask, "method"] = "real"
    out.attrs["face_changes"] = report
    return out.reset_index(drop=True)
