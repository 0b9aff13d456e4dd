"""Embedded sample set: a small labelled video dataset, generated offline and deterministically in seconds.

Real videos film a real face photo that ships with matplotlib (Grace Hopper, `sample_data/grace_hopper.jpg`)
with a virtual camera: pan, zoom, small rotation, hand shake, changing light and sensor noise, composed on
a background from scikit-learn's sample images or a studio backdrop. Fake videos are the same kind of
footage in which, frame by frame, the face region is replaced by a blended copy of itself that was
slightly warped, colour-shifted and resampled — the Self-Blended Images idea (Shiohara & Yamasaki,
"Detecting Deepfakes with Self-Blended Images", CVPR 2022): a fake made only of the blending-boundary
artefacts that real face swaps leave. Camera, light, noise, size, duration and codec are drawn the same
way for both classes, so the only difference between them is inside the (soft) face mask.

Layout written by `make_sample_dataset(out)`: `<out>/real/real_000.mp4 …`, `<out>/fake/fake_000.mp4 …`
and `<out>/sample_manifest.json` (config, every video's parameters and its ground-truth face boxes).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MANIFEST = "sample_manifest.json"
_FORMAT = "dfdlib-sample/1"  # bump when the same config would render different frames

# The face photo and its geometry (pixels of the 512x600 photo). The box is what MTCNN 1.0.0 finds
# (x1, y1, x2, y2); the ellipse covers brows, eyes, nose, mouth and chin — the region a swap replaces.
_PHOTO = "grace_hopper.jpg"
_PHOTO_FACE_BOX = (178.0, 110.0, 351.0, 330.0)
_PHOTO_FACE_ELLIPSE = ((266.0, 246.0), (84.0, 92.0))  # centre, semi-axes
_BACKGROUNDS = ("studio", "china.jpg", "flower.jpg")  # the last two ship with scikit-learn


@dataclass
class SampleConfig:
    n_real: int = 12                                # real videos, written to <out>/real
    n_fake: int = 12                                # fake (self-blended) videos, written to <out>/fake
    seconds: float = 3.0                            # duration of every video
    fps: int = 25                                   # frame rate of every video
    width: int = 640                                # frame width in pixels (even, as MPEG-4 needs)
    height: int = 480                               # frame height in pixels (even)
    seed: int = 0                                   # same seed + config → identical decoded frames
    codec: str = "mp4v"                             # OpenCV fourcc; pip OpenCV has no H.264 ('avc1') encoder
    face_height: tuple[float, float] = (0.32, 0.45)  # face box height / frame height, range over videos
    noise: tuple[float, float] = (1.5, 5.0)         # sensor noise std in grey levels, range over videos
    strength: float = 1.0                           # scales the fake artefacts; 0 makes fakes equal to reals
    crop_px: int = 112                              # side of the face crops the detector sees (box + 30 %
                                                    # margin per side); the resampling blur is sized for it

    def validate(self) -> None:
        """Raises ValueError naming the first field that is out of range."""
        checks = [
            (self.n_real >= 0 and self.n_fake >= 0 and self.n_real + self.n_fake > 0,
             "n_real and n_fake must be >= 0, and at least one video is needed"),
            (self.fps > 0 and self.seconds > 0 and round(self.seconds * self.fps) >= 1,
             "seconds and fps must be > 0 (at least one frame)"),
            (self.width >= 96 and self.height >= 96 and self.width % 2 == 0 and self.height % 2 == 0,
             f"width and height must be even and >= 96 (got {self.width}x{self.height})"),
            (isinstance(self.seed, int) and self.seed >= 0, f"seed must be an int >= 0 (got {self.seed!r})"),
            (isinstance(self.codec, str) and len(self.codec) == 4,
             f"codec must be a 4-letter fourcc (got {self.codec!r})"),
            (0.1 <= self.face_height[0] <= self.face_height[1] <= 0.7,
             "face_height must be a range within [0.1, 0.7]"),
            (0 <= self.noise[0] <= self.noise[1] <= 30, "noise must be a range within [0, 30] grey levels"),
            (0 <= self.strength <= 2, "strength must be within [0, 2]"),
            (self.crop_px >= 16, "crop_px must be >= 16"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SampleConfig: {message}")

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))


# ----------------------------------------------------------------------------------------- parameters
def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    # Rounded so the manifest holds exactly the values the renderer used (re-rendering is exact).
    return round(float(rng.uniform(lo, hi)), 4)


def _signed(rng: np.random.Generator, lo: float, hi: float) -> float:
    return round(float(rng.choice([-1.0, 1.0]) * rng.uniform(lo, hi)), 4)


def _footage_params(rng: np.random.Generator, cfg: SampleConfig) -> dict:
    """Camera, light, noise and scene of one video. Drawn identically for real and fake videos."""
    return {
        "source": _PHOTO,
        "flip": bool(rng.random() < 0.5),
        "background": {"kind": str(rng.choice(_BACKGROUNDS)), "blur": _u(rng, 2.0, 7.0),
                       "flip": bool(rng.random() < 0.5), "offset": [_u(rng, 0, 1), _u(rng, 0, 1)],
                       "colors": [[_u(rng, 60, 200) for _ in range(3)] for _ in range(2)],
                       "seed": int(rng.integers(2**31)), "feather": _u(rng, 20, 48)},
        "grading": {"gains": [_u(rng, 0.92, 1.08) for _ in range(3)], "gamma": _u(rng, 0.85, 1.15),
                    "saturation": _u(rng, 0.8, 1.2)},
        "camera": {"face_height": _u(rng, *cfg.face_height), "zoom_amp": _u(rng, 0.01, 0.05),
                   "zoom_period": _u(rng, 1.5, 4.0), "zoom_phase": _u(rng, 0, 2 * math.pi),
                   "zoom_drift": _u(rng, -0.10, 0.10),
                   "cx": _u(rng, 0.42, 0.58), "cy": _u(rng, 0.45, 0.53),
                   "pan": [_u(rng, -0.08, 0.08), _u(rng, -0.04, 0.04)],
                   "sway": [_u(rng, 0.0, 0.025), _u(rng, 0.0, 0.015)], "sway_period": _u(rng, 1.5, 4.0),
                   "sway_phase": _u(rng, 0, 2 * math.pi),
                   "rotation": _u(rng, -4.0, 4.0), "rot_amp": _u(rng, 0.5, 3.0),
                   "rot_period": _u(rng, 1.5, 4.0), "rot_phase": _u(rng, 0, 2 * math.pi),
                   "shake": _u(rng, 0.3, 1.5), "shake_freq": [_u(rng, 1.5, 5.0), _u(rng, 1.5, 5.0)],
                   "shake_phase": [_u(rng, 0, 2 * math.pi) for _ in range(4)]},
        "light": {"brightness": _u(rng, 0.85, 1.08), "drift": _u(rng, -0.12, 0.12),
                  "flicker": _u(rng, 0.01, 0.06), "flicker_period": _u(rng, 0.8, 3.0),
                  "flicker_phase": _u(rng, 0, 2 * math.pi), "gradient": _u(rng, 0.0, 0.3),
                  "angle": _u(rng, 0, 2 * math.pi), "angle_drift": _u(rng, -0.6, 0.6)},
        "noise": {"sigma": _u(rng, *cfg.noise), "seed": int(rng.integers(2**31))},
    }


def _fake_params(rng: np.random.Generator, cfg: SampleConfig) -> dict:
    """Mask, warp, colour and resampling of one self-blended fake; each drifts a little per frame."""
    k = cfg.strength
    gains = [_u(rng, -0.05, 0.05) for _ in range(3)]
    gains[int(rng.integers(3))] = _signed(rng, 0.05, 0.10)  # at least one channel shifts by 5-10 %
    return {
        "strength": k,
        "mask": {"shape": str(rng.choice(["ellipse", "hull"])),
                 "scale": [_u(rng, 0.85, 1.08), _u(rng, 0.85, 1.05)],
                 "offset": [_u(rng, -0.05, 0.05), _u(rng, -0.05, 0.05)],
                 "jitter": [_u(rng, -0.06, 0.06) for _ in range(3)]  # amplitudes, then phases
                 + [_u(rng, 0, 2 * math.pi) for _ in range(3)],
                 "blur": _u(rng, 0.02, 0.06), "alpha": _u(rng, 0.8, 1.0),
                 "breath": _u(rng, 0.01, 0.04), "breath_period": _u(rng, 1.0, 3.0),
                 "breath_phase": _u(rng, 0, 2 * math.pi)},
        "warp": {"shift": [_signed(rng, 0.01, 0.035), _signed(rng, 0.01, 0.035)],
                 "scale": _signed(rng, 0.01, 0.04), "angle": _u(rng, -2.0, 2.0),
                 "drift": _u(rng, 0.2, 0.5), "drift_period": _u(rng, 1.0, 3.0),
                 "drift_phase": _u(rng, 0, 2 * math.pi)},
        "colour": {"gains": gains, "offset": _u(rng, -8.0, 8.0), "contrast": _u(rng, -0.08, 0.08),
                   "drift": _u(rng, 0.1, 0.4), "drift_period": _u(rng, 1.0, 3.0),
                   "drift_phase": _u(rng, 0, 2 * math.pi)},
        "resample": {"factor": _u(rng, 0.45, 0.8), "drift": _u(rng, 0.0, 0.1),
                     "drift_period": _u(rng, 1.0, 3.0), "drift_phase": _u(rng, 0, 2 * math.pi)},
    }


def video_specs(config: SampleConfig) -> list[dict]:
    """The parameters of every video of `config` (what the manifest stores), without rendering.

    Each video draws from its own stream seeded by (seed, class, index), so adding videos keeps the
    existing ones unchanged.
    """
    config.validate()
    width = max(3, len(str(max(config.n_real, config.n_fake) - 1)))
    specs = []
    for label, name, n in ((0, "real", config.n_real), (1, "fake", config.n_fake)):
        for i in range(n):
            footage_rng = np.random.default_rng([config.seed, label, i, 0])
            spec = {"file": f"{name}/{name}_{i:0{width}d}.mp4", "label": label,
                    "footage": _footage_params(footage_rng, config), "fake": None}
            if label == 1:
                spec["fake"] = _fake_params(np.random.default_rng([config.seed, label, i, 1]), config)
            specs.append(spec)
    return specs


# ------------------------------------------------------------------------------------------- geometry
def _photo_geometry(flip: bool) -> tuple[np.ndarray, tuple[float, float, float, float], tuple]:
    """The (possibly mirrored) photo, its face box and face ellipse."""
    import cv2

    photo = _load_image(_PHOTO)
    if not flip:
        return photo, _PHOTO_FACE_BOX, _PHOTO_FACE_ELLIPSE
    w = photo.shape[1]
    x1, y1, x2, y2 = _PHOTO_FACE_BOX
    (cx, cy), axes = _PHOTO_FACE_ELLIPSE
    return cv2.flip(photo, 1), (w - 1 - x2, y1, w - 1 - x1, y2), ((w - 1 - cx, cy), axes)


def _camera_matrices(cam: dict, face_centre: tuple[float, float], cfg: SampleConfig) -> np.ndarray:
    """(n_frames, 2, 3) affine maps photo pixels → frame pixels: zoom, pan, sway, rotation, hand shake."""
    import cv2

    n, fps, W, H = cfg.n_frames, cfg.fps, cfg.width, cfg.height
    box_h = _PHOTO_FACE_BOX[3] - _PHOTO_FACE_BOX[1]
    mats = np.empty((n, 2, 3))
    for i in range(n):
        t = i / fps
        u = (i + 0.5) / n - 0.5  # -0.5 … 0.5 over the clip: drifts have the same range at any duration
        zoom = 1 + cam["zoom_amp"] * _wave(cam, "zoom", t) + cam["zoom_drift"] * u
        scale = cam["face_height"] * zoom * H / box_h
        sway = _wave(cam, "sway", t)
        f1, f2 = cam["shake_freq"]
        p = cam["shake_phase"]
        shake = cam["shake"] * H / 480
        cx = W * (cam["cx"] + cam["pan"][0] * u + cam["sway"][0] * sway) \
            + shake * (math.sin(2 * math.pi * f1 * t + p[0]) + 0.5 * math.sin(2 * math.pi * f2 * t + p[1]))
        cy = H * (cam["cy"] + cam["pan"][1] * u + cam["sway"][1] * sway) \
            + shake * (math.sin(2 * math.pi * f2 * t + p[2]) + 0.5 * math.sin(2 * math.pi * f1 * t + p[3]))
        angle = cam["rotation"] + cam["rot_amp"] * _wave(cam, "rot", t)
        m = cv2.getRotationMatrix2D(face_centre, angle, scale)
        m[:, 2] += (cx - face_centre[0], cy - face_centre[1])
        mats[i] = m
    return mats


def _wave(p: dict, name: str, t: float) -> float:
    """sin at time t with the period and phase stored as p[name + '_period'], p[name + '_phase']."""
    return math.sin(2 * math.pi * t / p[f"{name}_period"] + p[f"{name}_phase"])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _face_boxes(mats: np.ndarray, box: tuple) -> list[list[float]]:
    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]])
    out = []
    for m in mats:
        p = _apply(m, corners)
        out.append([round(float(v), 1) for v in (*p.min(0), *p.max(0))])
    return out


# ---------------------------------------------------------------------------------------------- scene
@functools.lru_cache(maxsize=4)
def _load_image(name: str) -> np.ndarray:
    """BGR uint8 image shipped by an installed package (matplotlib's face photo, scikit-learn's scenes)."""
    import importlib.util

    import cv2

    if name == _PHOTO:
        from matplotlib import cbook

        path = Path(cbook.get_sample_data(_PHOTO, asfileobj=False))
    else:  # find scikit-learn's file without importing sklearn (and scipy) just for a JPEG
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"scikit-learn is needed for the sample background {name}; "
                               "pip install scikit-learn")
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / name
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"could not read the sample image {path}; reinstall the package that ships it")
    img.flags.writeable = False  # cached and shared: nobody may draw on it
    return img


def _background(bg: dict, size: tuple[int, int]) -> np.ndarray:
    """float32 BGR backdrop of size (w, h): a blurred scene photo or a studio gradient with blotches."""
    import cv2

    w, h = size
    if bg["kind"] == "studio":
        c1, c2 = np.array(bg["colors"], np.float32)
        ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(c1 * (1 - ramp) + c2 * ramp, (h, w, 3)).copy()
        blotch = np.random.default_rng(bg["seed"]).uniform(-18, 18, (5, 7)).astype(np.float32)
        img += cv2.resize(blotch, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
        return img
    src = _load_image(bg["kind"])
    if bg["flip"]:
        src = cv2.flip(src, 1)
    s = max(w / src.shape[1], h / src.shape[0]) * 1.15  # cover the canvas with room for an offset crop
    big = cv2.resize(src, (math.ceil(src.shape[1] * s), math.ceil(src.shape[0] * s)),
                     interpolation=cv2.INTER_LINEAR)
    ox = int(bg["offset"][0] * (big.shape[1] - w))
    oy = int(bg["offset"][1] * (big.shape[0] - h))
    img = big[oy:oy + h, ox:ox + w].astype(np.float32)
    return cv2.GaussianBlur(img, (0, 0), bg["blur"])  # out of focus behind the subject


def _scene(footage: dict, mats: np.ndarray, cfg: SampleConfig):
    """Graded uint8 canvas (photo on its backdrop) and the matrices re-based to canvas pixels."""
    import cv2

    photo, _, _ = _photo_geometry(footage["flip"])
    ph, pw = photo.shape[:2]
    # Pad the photo so every frame of the clip sees canvas, never a border fill (which could mirror the face).
    W, H = cfg.width, cfg.height
    corners = np.array([[0, 0], [W, 0], [0, H], [W, H]], np.float64)
    seen = np.concatenate([_apply(cv2.invertAffineTransform(m), corners) for m in mats])
    left = int(max(0, -seen[:, 0].min())) + 8
    top = int(max(0, -seen[:, 1].min())) + 8
    right = int(max(0, seen[:, 0].max() - pw)) + 8
    bottom = int(max(0, seen[:, 1].max() - ph)) + 8
    cw, ch = pw + left + right, ph + top + bottom
    bg = footage["background"]
    canvas = _background(bg, (cw, ch))
    # Below the photo the body goes on (mirrored uniform); elsewhere the photo fades into the backdrop.
    body = cv2.copyMakeBorder(photo, 0, bottom, 0, 0, cv2.BORDER_REFLECT).astype(np.float32)
    fx = np.minimum(np.arange(pw) + 1, pw - np.arange(pw)) / bg["feather"]
    fy = (np.arange(ph + bottom) + 1) / bg["feather"]
    alpha = np.clip(np.minimum(fx[None, :], fy[:, None]), 0, 1).astype(np.float32)[..., None]
    region = canvas[top:, left:left + pw]
    region += (body - region) * alpha
    g = footage["grading"]
    canvas = np.clip(canvas, 0, 255) / 255.0
    canvas = np.power(canvas, g["gamma"]) * np.array(g["gains"], np.float32) * 255.0
    grey = canvas.mean(axis=2, keepdims=True)
    canvas = grey + (canvas - grey) * g["saturation"]
    canvas = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    shifted = mats.copy()
    shifted[:, :, 2] -= mats[:, :, :2] @ np.array([left, top], np.float64)
    return canvas, shifted


# --------------------------------------------------------------------------------------------- render
def _mask_polygon(fake: dict, ellipse: tuple, t: float) -> np.ndarray:
    """Face mask outline in photo pixels at time t: an ellipse, or a wobbly hull, that breathes a little."""
    mk = fake["mask"]
    (cx, cy), (ax, ay) = ellipse
    breath = 1 + mk["breath"] * _wave(mk, "breath", t)
    phi = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    r = np.ones_like(phi)
    if mk["shape"] == "hull":
        a, ph = mk["jitter"][:3], mk["jitter"][3:]
        r = r + sum(a[j] * np.cos((j + 2) * phi + ph[j]) for j in range(3))
    x = cx + mk["offset"][0] * ax + ax * mk["scale"][0] * breath * r * np.cos(phi)
    y = cy + mk["offset"][1] * ay + ay * mk["scale"][1] * breath * r * np.sin(phi)
    return np.stack([x, y], axis=1)


def _self_blend(frame: np.ndarray, fake: dict, poly: np.ndarray, face_px: float, t: float,
                cfg: SampleConfig, full_mask: np.ndarray | None) -> None:
    """Replace the face inside `poly` (frame pixels) by a warped, colour-shifted, resampled copy, in place."""
    import cv2

    k = fake["strength"]
    H, W = frame.shape[:2]
    mk, wp, col, rs = fake["mask"], fake["warp"], fake["colour"], fake["resample"]
    sigma = max(0.5, mk["blur"] * face_px)
    # Work in a box around the mask: the Gaussian kernel reaches 4 sigma, the warp a few % of the face.
    pad = int(math.ceil(4 * sigma + 0.06 * face_px)) + 4
    x0, y0 = np.floor(poly.min(0)).astype(int) - pad
    x1, y1 = np.ceil(poly.max(0)).astype(int) + pad
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    target = frame[y0:y1, x0:x1]
    h, w = target.shape[:2]
    mask = np.zeros((h, w), np.float32)
    outline = np.round((poly - (x0, y0)) * 16).astype(np.int32)  # 4 fractional bits: sub-pixel outline
    cv2.fillPoly(mask, [outline], 1.0, lineType=cv2.LINE_8, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma) * min(1.0, mk["alpha"] * k)

    def drift(p: dict) -> float:
        return 1 + p["drift"] * _wave(p, "drift", t)

    # 1. warp: the pasted face sits a little off, as a swapped face's landmarks never align exactly
    centre = tuple(float(v) for v in poly.mean(0) - (x0, y0))
    d = drift(wp)
    m = cv2.getRotationMatrix2D(centre, wp["angle"] * k * d, 1 + wp["scale"] * k * d)
    m[:, 2] += np.array(wp["shift"]) * face_px * k * d
    source = cv2.warpAffine(target, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # 2. resample: down to a fraction of the face's size in the detector's crop (crop side = 1.6 face boxes)
    # and back up, so the blur survives the crop+resize instead of vanishing in it
    factor = rs["factor"] * drift(rs)
    factor = min(1.0, factor * min(1.0, cfg.crop_px / (1.6 * face_px)))
    factor = 1 - (1 - factor) * min(k, 1.0)
    if factor < 0.99:
        small = cv2.resize(source, (max(1, round(w * factor)), max(1, round(h * factor))),
                           interpolation=cv2.INTER_AREA)
        source = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    # 3. colour: per-channel gains, contrast and offset, as a face from other footage would carry
    d = drift(col)
    src = source.astype(np.float32)
    mean = src.reshape(-1, 3).mean(0)
    gains = 1 + np.array(col["gains"], np.float32) * k * d
    src = (src - mean) * (1 + col["contrast"] * k * d) + mean
    src = src * gains + col["offset"] * k * d
    tgt = target.astype(np.float32)
    out = tgt + (src - tgt) * mask[..., None]
    frame[y0:y1, x0:x1] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if full_mask is not None:
        full_mask[y0:y1, x0:x1] = mask


def iter_frames(spec: dict, config: SampleConfig, apply_fake: bool = True, masks: bool = False):
    """Render one video of `video_specs(config)` (or of the manifest) frame by frame.

    Takes the spec, its config, `apply_fake=False` to render a fake's footage without the blend, and
    `masks=True` to also get each frame's blend mask. Yields (frame BGR uint8 (H, W, 3), mask float32
    (H, W) in [0, 1] or None) — the mask is all zeros for frames of real videos.
    """
    import cv2

    footage, fake = spec["footage"], spec["fake"] if apply_fake else None
    _, _, ellipse = _photo_geometry(footage["flip"])
    mats = _camera_matrices(footage["camera"], ellipse[0], config)
    canvas, canvas_mats = _scene(footage, mats, config)
    W, H, fps = config.width, config.height, config.fps
    box_h = _PHOTO_FACE_BOX[3] - _PHOTO_FACE_BOX[1]
    # Noise: one field per video, read through a moving window (a fresh normal draw per frame is slow).
    nz = footage["noise"]
    rng = np.random.default_rng(nz["seed"])
    margin = 32
    field = rng.standard_normal((H + margin, W + margin, 3), dtype=np.float32) * nz["sigma"]
    lt = footage["light"]
    side = max(W, H)
    xs = ((np.arange(W, dtype=np.float32) - W / 2) / side)[None, :]
    ys = ((np.arange(H, dtype=np.float32) - H / 2) / side)[:, None]
    n = config.n_frames
    for i in range(n):
        t = i / fps
        u = (i + 0.5) / n - 0.5
        frame = cv2.warpAffine(canvas, canvas_mats[i], (W, H), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        bright = lt["brightness"] * (1 + lt["drift"] * u + lt["flicker"] * _wave(lt, "flicker", t))
        angle = lt["angle"] + lt["angle_drift"] * u
        gain = bright * (1 + lt["gradient"] * (xs * math.cos(angle) + ys * math.sin(angle)))
        ox, oy = rng.integers(0, margin + 1, size=2)
        img = frame.astype(np.float32) * gain[..., None] + field[oy:oy + H, ox:ox + W]
        frame = np.clip(img + 0.5, 0, 255).astype(np.uint8)
        mask = np.zeros((H, W), np.float32) if masks else None
        if fake is not None:
            poly = _apply(mats[i], _mask_polygon(fake, ellipse, t))
            face_px = abs(np.linalg.det(mats[i][:, :2])) ** 0.5 * box_h
            _self_blend(frame, fake, poly, face_px, t, config, mask)
        yield frame, mask


# ---------------------------------------------------------------------------------------------- write
def _write_video(path: Path, tmp_dir: Path, spec: dict, config: SampleConfig) -> None:
    """Encode one video into `tmp_dir` (same file system), then rename it to `path`."""
    import cv2

    # The temp file keeps the .mp4 suffix because OpenCV picks the container from it, and lives in a
    # dot-folder beside real/ and fake/: pathlib's glob("*.mp4") lists dot-files too (Python 3.11),
    # so a dot-prefixed temp name inside real/ would look like a finished video to other stages.
    tmp = tmp_dir / path.name
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*config.codec), float(config.fps),
                             (config.width, config.height))
    try:
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot encode {config.codec!r} video to {path}; use codec='mp4v' "
                               "(pip OpenCV has no H.264 encoder)")
        for frame, _ in iter_frames(spec, config):
            writer.write(frame)
        writer.release()
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise RuntimeError(f"OpenCV wrote no data for {path} (codec {config.codec!r}); try codec='mp4v'")
        os.replace(tmp, path)
    finally:
        writer.release()
        tmp.unlink(missing_ok=True)


def _config_dict(config: SampleConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))  # tuples → lists, as the manifest stores them


def make_sample_dataset(out: str | os.PathLike, config: SampleConfig | None = None, overwrite: bool = False,
                        progress: bool = True) -> Path:
    """Write the sample set: `<out>/real/*.mp4`, `<out>/fake/*.mp4`, `<out>/sample_manifest.json`.

    Takes the output folder and a SampleConfig (default: 12 + 12 videos, 640x480, 25 fps, 3 s).
    Returns `out`. A set whose manifest already matches the config is kept as it is (unless `overwrite`);
    videos that an earlier manifest listed but this config does not are removed; other files are left alone.
    Each video is written atomically and the manifest last, so an interrupted run never looks finished.
    Raises ValueError for a bad config, RuntimeError when OpenCV cannot encode with `config.codec`.
    """
    from tqdm.auto import tqdm

    from .utils import atomic_write, clean_stale_temps

    config = config or SampleConfig()
    specs = video_specs(config)  # validates the config
    out = Path(out)
    manifest_path = out / MANIFEST
    old = _read_manifest(manifest_path)
    if (not overwrite and old is not None and old.get("format") == _FORMAT
            and old.get("config") == _config_dict(config)
            and all((out / s["file"]).is_file() for s in specs)):
        return out
    for sub in ("real", "fake"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out)
    if old is not None:  # a smaller set must not leave the bigger one's extra videos behind
        keep = {s["file"] for s in specs}
        for v in old.get("videos", []):
            f = v.get("file", "")
            if f not in keep and f.startswith(("real/", "fake/")) and f.endswith(".mp4"):
                (out / f).unlink(missing_ok=True)
        # Until the new manifest is written, the folder must not claim to hold the old set.
        manifest_path.unlink(missing_ok=True)
    import cv2

    # `.*.tmp-*` is the pattern utils.clean_stale_temps removes after an interrupted run.
    tmp_dir = out / f".sample.tmp-{os.getpid()}"
    tmp_dir.mkdir(exist_ok=True)
    try:
        for spec in tqdm(specs, desc="sample videos", unit="video", disable=not progress):
            # Every frame's face box, ground truth for checking a face detector on this set.
            _, box, ellipse = _photo_geometry(spec["footage"]["flip"])
            mats = _camera_matrices(spec["footage"]["camera"], ellipse[0], config)
            spec["face_boxes"] = _face_boxes(mats, box)
            _write_video(out / spec["file"], tmp_dir, spec, config)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    manifest = {"format": _FORMAT, "config": _config_dict(config),
                "paper": "Shiohara & Yamasaki, Detecting Deepfakes with Self-Blended Images, CVPR 2022",
                "opencv": cv2.__version__, "videos": specs}
    text = json.dumps(manifest, indent=1)
    # Lists of numbers (face boxes, gains) on one line each: readable, and the file is a few times smaller.
    text = re.sub(r"\[([-+\d.eE,\s]+)\]", lambda m: "[" + " ".join(m[1].split()) + "]", text)
    with atomic_write(manifest_path) as f:
        f.write(text)
    return out


def _read_manifest(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged manifest only means the set is rewritten


def read_manifest(out: str | os.PathLike) -> tuple[SampleConfig, list[dict]]:
    """Read `<out>/sample_manifest.json`. Returns (config, video specs).

    Raises FileNotFoundError without a manifest, ValueError for one this version cannot render.
    """
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; generate the set with make_sample_dataset({str(out)!r})")
    data = _read_manifest(path)
    if data is None or data.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a {_FORMAT} manifest; regenerate the set with overwrite=True")
    cfg = dict(data["config"])
    for key in ("face_height", "noise"):
        cfg[key] = tuple(cfg[key])
    return SampleConfig(**cfg), data["videos"]


# ------------------------------------------------------------------------------------------------ CLI
def _cmd_sample(args: argparse.Namespace) -> int:
    cfg = SampleConfig(n_real=args.n_real, n_fake=args.n_fake, seconds=args.seconds, fps=args.fps,
                       width=args.width, height=args.height, seed=args.seed, codec=args.codec,
                       strength=args.strength)
    t0 = time.time()
    manifest = Path(args.out) / MANIFEST
    before = manifest.stat().st_mtime_ns if manifest.is_file() else None
    out = make_sample_dataset(args.out, cfg, overwrite=args.overwrite)
    if before is not None and manifest.stat().st_mtime_ns == before:
        print(f"{out} already holds this sample set (same config and seed); nothing written "
              "(use --overwrite to rewrite it)")
        return 0
    print(f"wrote {cfg.n_real} real + {cfg.n_fake} fake videos ({cfg.width}x{cfg.height}, {cfg.fps} fps, "
          f"{cfg.seconds:g} s, seed {cfg.seed}) to {out}/real and {out}/fake in {time.time() - t0:.1f} s; "
          f"parameters in {out / MANIFEST}")
    return 0


def add_cli(subparsers) -> None:
    """Register `dfd sample OUT [--n-real N --n-fake N --seconds S --width W --height H --fps F --seed S]`."""
    d = SampleConfig()
    p = subparsers.add_parser("sample", help="generate the embedded sample set (real + self-blended fakes)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output folder; gets real/, fake/ and sample_manifest.json")
    p.add_argument("--n-real", type=int, default=d.n_real, help=f"real videos (default {d.n_real})")
    p.add_argument("--n-fake", type=int, default=d.n_fake, help=f"fake videos (default {d.n_fake})")
    p.add_argument("--seconds", type=float, default=d.seconds, help=f"duration (default {d.seconds})")
    p.add_argument("--width", type=int, default=d.width, help=f"frame width (default {d.width})")
    p.add_argument("--height", type=int, default=d.height, help=f"frame height (default {d.height})")
    p.add_argument("--fps", type=int, default=d.fps, help=f"frame rate (default {d.fps})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--codec", default=d.codec, help=f"OpenCV fourcc (default {d.codec})")
    p.add_argument("--strength", type=float, default=d.strength,
                   help=f"fake artefact strength, 0..2 (default {d.strength})")
    p.add_argument("--overwrite", action="store_true", help="rewrite even if OUT already holds this set")
    p.set_defaults(func=_cmd_sample)
