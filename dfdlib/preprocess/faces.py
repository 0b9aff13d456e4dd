"""Faces of one video: MTCNN detection on sampled frames, the main face tracked across cuts, square crops.

MTCNN is Zhang et al., "Joint Face Detection and Alignment using Multitask Cascaded Convolutional
Networks" (2016), the `mtcnn` package's (detector.py). Detection runs on a downscaled copy of each
sampled frame (batched, one call per video chunk) and boxes are mapped back to full resolution, so a
1080p video costs about as much as a 480p one. mtcnn 1.0.0 silently finds nothing when its
min_face_size is above ~24 (its image pyramid shrinks below the 12 px PNet input), so we keep its
default and drop small boxes ourselves. When the main face is found in too few sampled frames (a small
face in a large frame), detection is retried at twice the resolution, then at full resolution.
Tracking (IoU within a shot, re-acquisition after a cut by size and appearance, prominence) is tracks.py.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dfdlib import __version__
from dfdlib.boxes import square_box
from dfdlib.preprocess.config import PreprocessConfig
from dfdlib.preprocess.detector import FaceDetector, default_detector, detector_backend
from dfdlib.preprocess.keyframes import detect_sparse
from dfdlib.preprocess.tracks import (
    appearance,
    build_tracks,
    fill_missing,
    rank_tracks,
    seen_summary,
)
from dfdlib.utils import strict
from dfdlib.video import VideoError, VideoInfo, read_frames, replace_unusable

# Sampled full-resolution frames are held in memory until tracking has chosen the boxes; above this
# many bytes per video (8K/huge videos, many frames) they are kept downscaled instead.
FRAME_BUDGET_BYTES = 1 << 30
LARGE_FACE = 48  # px on the half-size copy: faces this large are found as well there (start_small)


@dataclass
class Face:
    """One person's face over the sampled frames (face 0 is the main, most prominent one)."""
    index: int                                         # rank by prominence, 0 = main face
    crops: list = field(default_factory=list)          # RGB uint8 (size, size, 3) per sampled frame
    boxes: list = field(default_factory=list)          # box [x1, y1, x2, y2] at full resolution per frame
    confidences: list = field(default_factory=list)    # MTCNN confidence per frame (0.0 where filled)
    filled: list = field(default_factory=list)         # True where not detected and the nearest box was used
    prominence: float = 0.0                            # sum over frames of box area x confidence


@dataclass
class FaceResult:
    status: str                                        # "ok" | "no_face" | "too_short" | "unreadable" | "error"
    reason: str = ""                                   # what went wrong and what to do (empty when ok)
    crops: list = field(default_factory=list)          # RGB uint8 (size, size, 3) per sampled frame; empty unless ok
    indices: list = field(default_factory=list)        # sampled frame indices
    boxes: list = field(default_factory=list)          # main-face box [x1, y1, x2, y2] at full resolution per frame
    confidences: list = field(default_factory=list)    # MTCNN confidence per frame (0.0 where filled)
    filled: list = field(default_factory=list)         # True where no detection matched and the nearest box was used
    info: VideoInfo | None = None                      # the video's properties (None if it could not be opened)
    config: PreprocessConfig | None = None             # settings used
    seconds: float = 0.0                               # wall time of extract_faces
    source: str = ""                                   # the video path as given
    detect_side: int = 0                               # longer side (px) of the copy the faces were found on
    detect_sides: list = field(default_factory=list)   # every detection resolution tried, in order
    faces: list = field(default_factory=list)          # Face per kept person (max_faces), main first; [] unless ok
    seen: list = field(default_factory=list)           # sampled frames each person was detected in, ranked
    replaced: list = field(default_factory=list)       # per sampled frame: "" or why it was replaced (flat, blurred)
    detected: list = field(default_factory=list)       # per sampled frame: the detector ran (False: followed)
    reused: dict = field(default_factory=dict)         # boxes taken from the original (reuse.py): from, checks
    traceback: str = ""                                # status "error": the bug's traceback

    def manifest(self, face: int = 0) -> dict:
        """The faces.json content of face `face` (0: the main face): source, video properties, per-frame
        boxes/confidences/filled, the detection resolution, settings."""
        from importlib import metadata

        try:
            mtcnn_version = metadata.version("mtcnn")
        except metadata.PackageNotFoundError:
            mtcnn_version = "unknown"
        info = self.info
        f = self.faces[face] if face < len(self.faces) else Face(face, self.crops, self.boxes, self.confidences,
                                                                  self.filled)
        return {
            "format": "dfdlib-faces/1",
            "source": self.source,
            "status": self.status,
            "reason": self.reason,
            "fps": info.fps if info else None,
            "total_frames": info.frame_count if info else None,
            "width": info.width if info else None,
            "height": info.height if info else None,
            "rotation": info.rotation if info else None,
            "indices": [int(i) for i in self.indices],
            "face": face,
            "faces_in_video": len(self.faces),
            "boxes": [[round(float(v), 1) for v in b] if b is not None else None for b in f.boxes],
            "confidences": [round(float(c), 4) for c in f.confidences],
            "filled": [bool(x) for x in f.filled],
            "prominence": round(float(f.prominence), 1),
            "detect_side": int(self.detect_side),
            "detect_sides": [int(v) for v in self.detect_sides],
            "replaced": [str(k) for k in self.replaced],
            "detected_frames": [bool(x) for x in self.detected],
            "boxes_reused": self.reused or None,
            "people_seen": [int(v) for v in self.seen],
            "preprocess": asdict(self.config) if self.config else None,
            "detector": {"name": "mtcnn", "version": mtcnn_version, "stages": "face_and_landmarks_detection",
                         "backend": detector_backend(self.config.detector if self.config else "auto")},
            "dfdlib_version": __version__,
            "seconds": round(self.seconds, 3),
        }


def crop_region(box_xyxy, frame_w: int, frame_h: int, margin: float = 0.3, stretch: bool = False
                ) -> tuple[int, int, int, int]:
    """The part of a frame (xyxy, integer px) that crop_face resizes to its square: the square around the box
    (+margin, may extend past the frame, where it is black), or with `stretch` the box itself (+margin as a
    fraction of its width/height) clipped to the frame."""
    if not stretch:
        return square_box(box_xyxy, margin)
    x1, y1, x2, y2 = (float(v) for v in box_xyxy[:4])
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    x0, y0 = min(max(0, round(x1 - mx)), frame_w - 1), min(max(0, round(y1 - my)), frame_h - 1)
    return x0, y0, max(min(frame_w, round(x2 + mx)), x0 + 1), max(min(frame_h, round(y2 + my)), y0 + 1)


def crop_face(frame_rgb: np.ndarray, box_xyxy, margin: float = 0.3, size: int = 224,
              stretch: bool = False) -> np.ndarray:
    """Square crop around a face box, resized to size x size.

    Takes an RGB frame, a box (x1, y1, x2, y2) in its pixels, the margin added on each side (fraction
    of the box's longer side) and the output side. Parts outside the frame are black, so the face
    stays centred and unstretched at the frame edge. `stretch=True` crops the box itself instead (margin
    as a fraction of its width/height, clipped to the frame) and stretches it to the square, as the
    original project did. Returns an RGB uint8 (size, size, 3) array.
    """
    import cv2

    h, w = frame_rgb.shape[:2]
    left, top, right, bottom = crop_region(box_xyxy, w, h, margin, stretch)
    if stretch:
        region = frame_rgb[top:bottom, left:right]
        interp = cv2.INTER_AREA if max(region.shape[:2]) > size else cv2.INTER_LINEAR
        return np.ascontiguousarray(cv2.resize(region, (size, size), interpolation=interp))
    s = right - left
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    if x0 == left and y0 == top and x1 == right and y1 == bottom:
        region = frame_rgb[y0:y1, x0:x1]
    else:
        region = np.zeros((s, s, 3), np.uint8)
        if x1 > x0 and y1 > y0:
            region[y0 - top:y1 - top, x0 - left:x1 - left] = frame_rgb[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(region, (size, size), interpolation=interp))


def detection_sides(config: PreprocessConfig, long_side: int) -> list[int]:
    """The detection resolutions to try, in order, for frames whose longer side is `long_side` px.

    `detect_max_side` first; with `detect_retry`, then twice that while clearly below the frame's size,
    then full resolution. 0 stands for full resolution (also when detect_max_side is not below it).
    """
    first = config.detect_max_side
    if not first or first >= long_side:
        return [0]
    sides = [first]
    if config.detect_retry:
        while sides[-1] * 2 < 0.8 * long_side:
            sides.append(sides[-1] * 2)
        sides.append(0)
    return sides


def frames_needed(cfg: PreprocessConfig, n: int) -> int:
    """Sampled frames (of `n`) the main face must be detected in for training's clip: `min_detected` of them."""
    return max(1, math.ceil(cfg.min_detected * n - 1e-9))


def crop_faces(frames, boxes, cfg: PreprocessConfig, fx: float = 1.0, fy: float = 1.0) -> list:
    """crop_face of each frame at its full-resolution box, (fx, fy) being full resolution over the frames'."""
    return [crop_face(f, [b[0] / fx, b[1] / fy, b[2] / fx, b[3] / fy], cfg.margin, cfg.size, cfg.crop == "stretch")
            for f, b in zip(frames, boxes, strict=True)]


def start_small(frames, detector, cfg: PreprocessConfig) -> list[int]:
    """[half of detect_max_side] when the faces are large enough to be found there too (every face on the
    middle sampled frame >= LARGE_FACE px at half size: close-ups, interviews), else []. Detection then
    starts on that smaller copy, a quarter of the pixels; the usual sides follow if it finds too little."""
    half = cfg.detect_max_side // 2
    if not cfg.start_small or half < 160 or max(frames[0].shape[:2]) <= half:
        return []
    frame = frames[len(frames) // 2]
    d = detector.detect([frame], half)[0]  # boxes come back in the frame's pixels
    d = d[d[:, 4] >= cfg.min_confidence] if len(d) else d
    small = np.minimum(d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]) * half / max(frame.shape[:2]) if len(d) else np.zeros(0)
    return [half] if len(small) and small.min() >= LARGE_FACE else []


def _tracks(frames, detector: FaceDetector, side: int, cfg: PreprocessConfig, fx: float, fy: float, need: int):
    """Detections at one resolution (boxes at full resolution, above the thresholds; on keyframes only where
    the faces can be followed, keyframes.detect_sparse) linked into tracks, ranked (tracks.rank_tracks:
    seen in >= `need` frames first, then by prominence). Returns (tracks, per frame whether detection ran).
    The frames are downscaled to `side` once, and detection, following and the tracks' looks all work on
    that copy (a 1080p frame is 9x the pixels of its 480 px copy)."""
    import cv2

    kh, kw = frames[0].shape[:2]
    s = min(1.0, side / max(kh, kw)) if side else 1.0
    if s < 1.0:  # the size FaceDetector.detect would resize each frame to, so the boxes stay the same
        size = (max(1, round(kw * s)), max(1, round(kh * s)))
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        fx, fy = fx * kw / size[0], fy * kh / size[1]

    def detect(chunk):
        out = []
        for d in detector.detect(chunk, 0):
            d = d * np.array([fx, fy, fx, fy, 1.0])
            keep = (d[:, 4] >= cfg.min_confidence) & (np.minimum(d[:, 2] - d[:, 0], d[:, 3] - d[:, 1])
                                                      >= cfg.min_face_size)
            out.append(d[keep])
        return out

    dets, ran = detect_sparse(frames, detect, cfg.keyframes, (fx, fy))
    looks = ([[appearance(f, r, (fx, fy)) for r in d] for f, d in zip(frames, dets, strict=True)]
             if cfg.reacquire <= 1 else None)
    return rank_tracks(build_tracks(dets, looks, cfg.track_iou, cfg.reacquire), need), ran


def extract_faces(video_path: str | os.PathLike, config: PreprocessConfig | None = None,
                  detector: FaceDetector | None = None, threads: int | None = None,
                  min_frames: int | None = None) -> FaceResult:
    """Sample frames of one video and crop one consistent face (or `max_faces` people's) from each.

    Takes a video path, a PreprocessConfig (default settings if None), a FaceDetector to reuse (the
    process-wide one if None), the decoder's thread count, and `min_frames`: the sampled frames a person
    must be seen in to be kept (default: the config's `min_detected` share, training's bar; prediction
    asks for fewer, `predict.MIN_FACE_FRAMES`). Sampled frames with no usable picture are replaced first
    (`replace_blank`, video.replace_unusable). Detection runs at `detect_max_side`; when the main face is
    found in fewer than `min_detected` of the frames it is retried at higher resolutions (detection_sides),
    and `detect_side` records the one used. Returns a FaceResult (its crops/boxes/... are the main
    face's; `faces` holds up to `max_faces` people seen in enough frames); a bad video (unreadable, too
    short, no face) is reported in `status`/`reason`, never raised. An unexpected exception is a bug:
    status "error" with its traceback (raised instead under DFD_STRICT, see `strict`). Raises ValueError
    only for an invalid config.
    """
    import cv2

    t0 = time.perf_counter()
    cfg = config or PreprocessConfig()
    path = Path(video_path)
    res = FaceResult(status="unreadable", config=cfg, source=str(video_path))

    def done(status: str, reason: str = "") -> FaceResult:
        res.status, res.reason, res.seconds = status, reason, time.perf_counter() - t0
        if status != "ok":
            res.crops, res.faces = [], []
        return res

    max_pixels = max(1, FRAME_BUDGET_BYTES // (3 * cfg.frames))
    try:
        frames, res.indices, res.info = read_frames(path, cfg.frames, cfg.sampling, max_pixels=max_pixels,
                                                    threads=threads)
        if cfg.replace_blank:
            frames, res.indices, kinds = replace_unusable(path, frames, res.indices, max_pixels, threads)
            res.replaced = kinds
    except VideoError as e:
        return done(e.kind, str(e))
    except (cv2.error, MemoryError) as e:  # a decoder failure (or a huge frame) must not stop a batch
        return done("unreadable", f"{path}: decoding failed ({type(e).__name__}: {e}); re-encode it or remove it")
    try:
        return _faces(frames, res, cfg, detector or default_detector(cfg.detector), min_frames, done)
    except Exception as e:  # a bug, not a property of the video: its own status, loud, raised under tests
        if strict():
            raise
        import traceback

        res.traceback = traceback.format_exc()
        return done("error", f"{path}: unexpected {type(e).__name__} in the face stage: {e} (a bug in dfdlib; "
                             "please report it with the traceback)")


def _faces(frames, res: FaceResult, cfg: PreprocessConfig, detector, min_frames, done) -> FaceResult:
    """Detection, tracking and crops for extract_faces, on frames already read."""
    info, path = res.info, res.source
    kh, kw = frames[0].shape[:2]
    fx, fy = info.width / kw, info.height / kh  # kept frame → full resolution (1.0 unless over budget)
    n = len(frames)
    need = frames_needed(cfg, n)  # training's bar: a clip mostly of this face
    keep = need if min_frames is None else max(1, min(int(min_frames), need))
    best = None  # (found, side, tracks, detected) of the resolution that found the main face most often
    for side in start_small(frames, detector, cfg) + detection_sides(cfg, max(kh, kw)):
        res.detect_sides.append(side or max(kh, kw))
        tracks, detected = _tracks(frames, detector, side, cfg, fx, fy, need)
        found = len(tracks[0].dets) if tracks else 0
        if best is None or found > best[0]:
            best = (found, res.detect_sides[-1], tracks, detected)
        if found >= need:
            break
    found, res.detect_side, tracks, res.detected = best
    res.seen = [len(tr.dets) for tr in tracks]
    boxes = tracks[0].boxes(n) if tracks else [None] * n
    res.confidences = tracks[0].confidences(n) if tracks else [0.0] * n
    tried = (f" (detection tried at {', '.join(map(str, res.detect_sides))} px)" if len(res.detect_sides) > 1
             else "")
    hint = ("check that the video shows a face; for small or distant faces raise --detect-max-side "
            "(or 0 for full resolution), for unusual faces lower --min-confidence")
    if found == 0:
        res.boxes, res.filled = [None] * len(boxes), [True] * len(boxes)
        return done("no_face", f"{path}: no face (confidence >= {cfg.min_confidence}, size >= "
                               f"{cfg.min_face_size} px) in any of the {n} sampled frames{tried}; {hint}")
    res.boxes, res.filled = fill_missing(boxes)
    if found < keep:
        return done("no_face", f"{path}: the main face was found in only {found} of {n} sampled frames{tried} "
                               f"({seen_summary(tracks, keep)}; min_detected={cfg.min_detected}); {hint}, or "
                               "lower --min-detected")
    for tr in tracks[:cfg.max_faces]:
        if len(tr.dets) < keep:  # seen too briefly (ranked after those seen often enough, so none after it is)
            break
        bxs, filled = fill_missing(tr.boxes(n))
        res.faces.append(Face(len(res.faces), crop_faces(frames, bxs, cfg, fx, fy), bxs, tr.confidences(n), filled,
                              tr.score))
    res.crops = res.faces[0].crops
    return done("ok")
