"""Decode videos and sample frames by streaming.

Frames are read front to back with `grab()` (decode only) and `retrieve()` (colour conversion) only
for the sampled ones. We never seek with CAP_PROP_POS_FRAMES: on many codecs it lands on the wrong
frame or silently re-decodes from the last keyframe, which is both slower and wrong. Rotation
metadata (phone videos) is applied by OpenCV's FFmpeg backend (CAP_PROP_ORIENTATION_AUTO), so
frames, width and height are as a viewer sees them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Extensions we treat as videos; other files are tried too if OpenCV can decode them (see preprocess).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                    ".3gp", ".ts", ".mts", ".m2ts", ".ogv")
# How frames are picked from a video (sample_indices) and from a folder of crops (data.select_indices).
SAMPLING = ("even", "first")


def is_video_file(path: str | Path) -> bool:
    """The one definition of "is a video" in dfdlib: the extension (any case) is in VIDEO_EXTENSIONS."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def find_videos(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Video files (is_video_file) in `folder`, sorted by path; hidden files and folders are skipped; a
    video file gives itself. A dangling or looping symlink is kept, so that the stage reading it reports it
    instead of the video silently missing. Raises FileNotFoundError when `folder` is neither."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is neither a video file nor a folder")
    found = []
    for d, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(x for x in dirs if not x.startswith(".")) if recursive else []
        found += [Path(d) / f for f in files if not f.startswith(".") and is_video_file(f)]
    return sorted((p for p in found if p.is_file() or (p.is_symlink() and not p.exists())), key=lambda p: p.as_posix())


class VideoError(Exception):
    """A video that cannot be used; `kind` is "unreadable" or "too_short" (the preprocess report status)."""

    def __init__(self, message: str, kind: str = "unreadable"):
        super().__init__(message)
        self.kind = kind


@dataclass
class VideoInfo:
    path: str           # the video file as given
    fps: float          # frames per second from the container (0.0 when it does not say)
    frame_count: int    # frames in the video: the header's count, or the decoded count when we streamed to the end
    width: int          # frame width after rotation, as decoded
    height: int         # frame height after rotation, as decoded
    rotation: int       # rotation metadata in degrees (0/90/180/270), already applied to the frames


def _open(path: str | Path, threads: int | None = None):
    """Open `path` with OpenCV; returns (capture, header VideoInfo). Raises VideoError (unreadable)."""
    import cv2

    p = Path(path)
    if not p.exists():
        if p.is_symlink():  # exists() follows links: a dangling link or a loop lands here
            raise VideoError(f"{p}: a symbolic link to {os.readlink(p)!r}, which does not exist or loops back; "
                             "replace the link by the video file or remove it")
        raise VideoError(f"{p}: no such file; check the path")
    if not p.is_file():
        raise VideoError(f"{p}: is not a file")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: the file is empty (0 bytes); the copy or download probably failed, copy it again")
    params = [cv2.CAP_PROP_N_THREADS, int(threads)] if threads else []  # open-time only
    cap = cv2.VideoCapture(str(p), cv2.CAP_ANY, params)
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{p}: OpenCV cannot open it as a video (not a video, corrupt or truncated, or an "
                         "unsupported codec); re-encode it to H.264 MP4 or remove it")
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # the default for FFmpeg already; explicit for other builds
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    info = VideoInfo(
        path=str(path),
        fps=float(fps) if math.isfinite(fps) and fps > 0 else 0.0,
        frame_count=int(count) if math.isfinite(count) and count > 0 else 0,
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        rotation=int(cap.get(cv2.CAP_PROP_ORIENTATION_META)) % 360,
    )
    return cap, info


def _count_frames(path: str | Path, threads: int | None = None) -> int:
    """Decoded frame count, by grabbing to the end (for containers without a usable count)."""
    cap, _ = _open(path, threads)
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n


def video_header(path: str | Path) -> VideoInfo:
    """What the container says (size, frame count, fps, rotation) without decoding a frame; counts and sizes
    may be missing (0) or differ from the decoded frames. Raises VideoError (unreadable)."""
    cap, info = _open(path)
    cap.release()
    return info


def probe_video(path: str | Path) -> VideoInfo:
    """Open a video and describe it without decoding more than needed.

    Takes a path. Returns a VideoInfo; when the container has no frame count the video is streamed to
    the end to count frames. Raises VideoError (kind "unreadable") if it cannot be opened or has no
    decodable frame.
    """
    cap, info = _open(path)
    try:
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f"{path}: opens but no frame decodes (corrupt or unsupported codec); "
                             "re-encode it to H.264 MP4 or remove it")
        info.height, info.width = frame.shape[:2]
    finally:
        cap.release()
    if info.frame_count <= 0:
        info.frame_count = _count_frames(path)
    return info


def sample_indices(total: int, n: int, mode: str = "even") -> list[int]:
    """Which frames to keep: `n` distinct indices in [0, total).

    "even" takes the middle frame of each of n equal segments (covers the whole video and never the
    very last frame, which containers often miscount); "first" takes 0..n-1 like the original
    notebooks. Raises ValueError if n < 1, total < n or mode is unknown.
    """
    if mode not in SAMPLING:
        raise ValueError(f"sampling mode must be {' or '.join(map(repr, SAMPLING))}, not {mode!r}")
    if n < 1:
        raise ValueError(f"need at least 1 frame to sample, got n={n}")
    if total < n:
        raise ValueError(f"the video has {total} frames, fewer than the {n} requested")
    if mode == "first":
        return list(range(n))
    return [((2 * i + 1) * total) // (2 * n) for i in range(n)]


def _stream(cap, indices: list[int], max_pixels: int | None):
    """Grab frames up to the last index and retrieve the sampled ones as RGB.

    Returns (frames, frames decoded, reached the end early, (height, width) of the decoded frames).
    """
    wanted = set(indices)
    last = indices[-1] if indices else -1
    frames: list[np.ndarray] = []
    shape = (0, 0)
    i = 0
    while i <= last:
        if not cap.grab():
            return frames, i, True, shape
        if i in wanted:
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:  # grabs but does not decode: a damaged frame, treat it as the end
                return frames, i, True, shape
            shape = bgr.shape[:2]
            frames.append(_to_rgb(bgr, max_pixels))
        i += 1
    return frames, i, False, shape


def _to_rgb(bgr: np.ndarray, max_pixels: int | None) -> np.ndarray:
    import cv2

    h, w = bgr.shape[:2]
    if max_pixels and h * w > max_pixels:
        s = math.sqrt(max_pixels / (h * w))
        bgr = cv2.resize(bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_frames(path: str | Path, n: int, mode: str = "even", max_pixels: int | None = None,
                threads: int | None = None) -> tuple[list[np.ndarray], list[int], VideoInfo]:
    """Read `n` sampled frames of a video by streaming.

    Takes a path, the number of frames, the sampling mode ("even" | "first"), optionally `max_pixels`
    (larger frames are downscaled, keeping aspect, to bound memory on huge videos) and the decoder's
    thread count. Returns (RGB uint8 frames, their indices, VideoInfo; its width/height are those of
    the full-resolution frames). A missing or too-high container frame count costs one extra pass:
    the video is streamed to the end to count frames, then read again.
    Raises VideoError with kind "unreadable" (cannot open, nothing decodes) or "too_short" (< n frames).
    """
    sample_indices(max(n, 1), n, mode)  # validates n and mode before touching the file
    cap, info = _open(path, threads)
    try:
        if mode == "first" or info.frame_count >= n:
            indices = sample_indices(max(info.frame_count, n), n, mode)
            frames, decoded, ended, shape = _stream(cap, indices, max_pixels)
            if len(frames) == n:
                info.height, info.width = shape
                return frames, indices, info
            total = decoded  # streamed to the end early: this is the true count
        else:  # no usable count in the container: count by streaming
            total = 0
            while cap.grab():
                total += 1
        info.frame_count = total
        if total == 0:
            raise VideoError(f"{path}: opens but no frame decodes (corrupt or unsupported codec); "
                             "re-encode it to H.264 MP4 or remove it")
        if total < n:
            raise VideoError(f"{path}: has {total} decodable frames, fewer than the {n} frames to sample; "
                             "sample fewer frames (--frames) or drop this video", kind="too_short")
        cap.release()
        cap, _ = _open(path, threads)
        indices = sample_indices(total, n, mode)
        frames, decoded, _, shape = _stream(cap, indices, max_pixels)
        if len(frames) < n:
            raise VideoError(f"{path}: decoding stopped at frame {decoded} on the second read; the file is "
                             "damaged, re-encode it or remove it")
        info.height, info.width = shape
        return frames, indices, info
    finally:
        cap.release()


def read_frames_at(path: str | Path, indices: list[int], max_pixels: int | None = None,
                   threads: int | None = None) -> tuple[list[np.ndarray], VideoInfo]:
    """The frames at given indices (any order, repeats allowed), by streaming once; e.g. a fake cut at its
    original's sampled frames. Returns (RGB frames in the order asked, VideoInfo). Raises VideoError when
    the video cannot be opened or ends before the last index."""
    cap, info = _open(path, threads)
    try:
        wanted = sorted(set(int(i) for i in indices))
        frames, decoded, _, shape = _stream(cap, wanted, max_pixels)
    finally:
        cap.release()
    if len(frames) < len(wanted):
        raise VideoError(f"{path}: decoding stopped at frame {decoded}, before frame {wanted[-1]}")
    info.height, info.width = shape
    at = dict(zip(wanted, frames, strict=True))
    return [at[int(i)] for i in indices], info


# --- frames with no usable picture -----------------------------------------------------------------------
FLAT_STD = 6.0     # grey standard deviation (0-255) below which a frame is flat: black, a fade, a blank title
BLUR_RATIO = 0.3   # sharpness below this share of the video's median sharpness: heavy motion blur
QUALITY_WIDTH = 160  # frames are judged on a grey copy this wide (cheap, and blind to sensor noise)
SAME_SHOT = 0.6    # layout correlation above which a frame counts as the same shot as a blurred one
STRUCTURE = 100.0  # coarse Laplacian variance below which a frame has no shapes to judge blur by


def frame_quality(frame_rgb: np.ndarray) -> tuple[float, float, float]:
    """(contrast, sharpness, structure) of an RGB frame: the grey standard deviation; the variance of the
    Laplacian over the grey variance (contrast-normalised, so a dim frame is not taken for a blurred one);
    the Laplacian variance of a 4x smaller copy (shapes that survive blur: a plain wall or gradient has
    none, and is never judged blurred)."""
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)
    h = max(1, round(g.shape[0] * QUALITY_WIDTH / g.shape[1]))
    g = cv2.resize(g, (QUALITY_WIDTH, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    coarse = cv2.resize(g, (QUALITY_WIDTH // 4, max(1, h // 4)), interpolation=cv2.INTER_AREA)
    std = float(g.std())
    return (std, float(cv2.Laplacian(g, cv2.CV_32F).var() / (std * std + 1.0)),
            float(cv2.Laplacian(coarse, cv2.CV_32F).var()))


def unusable(qualities: list[tuple[float, float, float]]) -> tuple[list[str], float]:
    """Which frames show no usable picture: per frame "" (usable), "flat" or "blurred", and the reference
    sharpness (the median of the frames with contrast and structure) the blur test compared with."""
    judged = [s for c, s, k in qualities if c >= FLAT_STD and k >= STRUCTURE]
    ref = float(np.median(judged)) if judged else 0.0
    return ["flat" if c < FLAT_STD else "blurred" if k >= STRUCTURE and s < BLUR_RATIO * ref else ""
            for c, s, k in qualities], ref


def layout(frame_rgb: np.ndarray) -> np.ndarray:
    """A frame's coarse layout (16 px wide grey, zero-mean, unit-norm): motion blur keeps it, a cut changes it."""
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)
    g = cv2.resize(g, (16, max(1, round(g.shape[0] * 16 / g.shape[1]))), interpolation=cv2.INTER_AREA)
    v = g.astype(np.float32).ravel()
    v -= v.mean()
    return v / max(float(np.linalg.norm(v)), 1e-6)


def replace_unusable(path: str | Path, frames: list[np.ndarray], indices: list[int], max_pixels: int | None = None,
                     threads: int | None = None) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Replace sampled frames with no usable picture (flat: black, fades; blurred: heavy motion blur) by the
    nearest usable frame of the video between their sampled neighbours, before any face is looked for.

    Takes what `read_frames` returned. Only when some frame is unusable is the video streamed once more,
    decoding the gaps around those frames; a blurred frame only takes a frame of the same shot (same coarse
    layout), so soft footage next to a sharp shot is left alone. A flat frame with no usable frame in its gap takes the nearest
    usable sampled frame's picture (and index); a blurred one with none stays as it is (a soft shot is
    still a picture), as does every frame of a video with no usable frame at all. Returns (frames,
    indices, per sampled frame "" or why it was replaced: "flat" or "blurred"); indices never decrease
    (one repeats where a flat frame borrowed a neighbour's, or two replacements met in one gap).
    """
    kinds, ref = unusable([frame_quality(f) for f in frames])
    bad = [t for t, k in enumerate(kinds) if k]
    if not bad:
        return frames, indices, kinds
    frames, indices = list(frames), list(indices)
    windows = {t: (indices[t - 1] + 1 if t else 0, indices[t + 1] - 1 if t + 1 < len(indices) else indices[t] + 64)
               for t in bad}
    last = max(hi for _, hi in windows.values())
    layouts = {t: layout(frames[t]) for t in bad if kinds[t] == "blurred"}
    found: dict[int, tuple[int, np.ndarray]] = {}  # slot → (index, frame) of the nearest usable candidate
    cap, _ = _open(path, threads)
    try:
        i = 0
        while i <= last and cap.grab():
            slots = [t for t in bad if windows[t][0] <= i <= windows[t][1] and i != indices[t]
                     and (t not in found or abs(i - indices[t]) < abs(found[t][0] - indices[t]))]
            if slots:
                ok, bgr = cap.retrieve()
                if ok and bgr is not None:
                    f = _to_rgb(bgr, max_pixels)
                    c, s, _ = frame_quality(f)
                    if c >= FLAT_STD and s >= BLUR_RATIO * ref and f.shape == frames[slots[0]].shape:
                        shot = layout(f) if layouts else None
                        for t in slots:  # a blurred frame takes only a frame of its own shot, never across a cut
                            if kinds[t] == "flat" or shot @ layouts[t] >= SAME_SHOT:
                                found[t] = (i, f)
            i += 1
    finally:
        cap.release()
    good = [t for t, k in enumerate(kinds) if not k]
    for t in bad:
        if t in found:
            indices[t], frames[t] = found[t]
        elif kinds[t] == "flat" and good:
            near = min(good, key=lambda g: (abs(g - t), g))
            indices[t], frames[t] = indices[near], frames[near]
        else:
            kinds[t] = ""  # nothing better nearby: kept as it is, and not counted as replaced
    return frames, indices, kinds
