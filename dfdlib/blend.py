"""The one face blend of dfdlib: a face region replaced by a transformed copy of itself behind a soft mask.

Self-Blended Images (Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022): a real
face blended onto a slightly warped, colour-shifted, resampled copy of itself carries only the artefacts
that every face swap leaves — a blending boundary, a colour mismatch, a frequency (sharpness) mismatch and
a small misalignment — and no identity cue. Used twice: `dfdlib.sample.dataset` makes its fake videos with it
(full frames), and `dfdlib.training.selfblend` makes training fakes on the fly from real face crops (one draw per
clip). `paste` and `match_colour` composite a *different* face (the sample's face-swap family) with the
same mask and blur.

The knobs (`BlendKnobs`, all ranges that one draw picks from, in fractions of the face size):
mask shape (ellipse or wobbly hull), mask scale and offset, mask blur (Gaussian sigma) and opacity; warp
shift/scale/angle (the pasted face's misalignment); colour gains/contrast/offset; resample factor (down
then up: a blur, the frequency mismatch). Each also drifts a little over time (breath/drift waves), which
`still(params, jitter)` scales down for clips that must keep one mask and transform.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BlendKnobs:
    mask_shapes: tuple[str, ...] = ("ellipse", "hull")  # outline drawn per blend: smooth ellipse or wobbly hull
    mask_scale: tuple[float, float] = (0.85, 1.08)      # mask size relative to the face ellipse
    mask_blur: tuple[float, float] = (0.02, 0.06)       # Gaussian sigma of the mask edge / face size
    alpha: tuple[float, float] = (0.8, 1.0)             # opacity of the blended face
    warp_shift: tuple[float, float] = (0.01, 0.035)     # |shift| of the copy / face size, per axis
    warp_scale: tuple[float, float] = (0.01, 0.04)      # |scale change| of the copy
    warp_angle: float = 2.0                             # max rotation of the copy in degrees
    colour_gain: tuple[float, float] = (0.05, 0.10)     # |gain change| of one channel (others ±0.05)
    colour_offset: float = 8.0                          # max brightness offset in grey levels
    contrast: float = 0.08                              # max contrast change
    resample: tuple[float, float] = (0.45, 0.8)         # down-then-up factor (lower = blurrier copy)


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """rng.uniform(lo, hi) rounded to 4 places, so a stored parameter re-renders exactly."""
    return round(float(rng.uniform(lo, hi)), 4)


def signed(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A magnitude in [lo, hi) with a random sign, rounded like `uniform`."""
    return round(float(rng.choice([-1.0, 1.0]) * rng.uniform(lo, hi)), 4)


def wave(p: dict, name: str, t: float) -> float:
    """sin at time t with the period and phase stored as p[name + '_period'], p[name + '_phase']."""
    return math.sin(2 * math.pi * t / p[f"{name}_period"] + p[f"{name}_phase"])


def draw_blend(rng: np.random.Generator, strength: float = 1.0, knobs: BlendKnobs | None = None) -> dict:
    """One blend's parameters (a JSON-able dict) drawn from `knobs`; `strength` 0 makes the blend a no-op."""
    kb = knobs or BlendKnobs()
    u, s = uniform, signed
    gains = [u(rng, -0.05, 0.05) for _ in range(3)]
    gains[int(rng.integers(3))] = s(rng, *kb.colour_gain)  # at least one channel shifts clearly
    tau = 2 * math.pi
    return {
        "strength": strength,
        "mask": {"shape": str(rng.choice(list(kb.mask_shapes))),
                 "scale": [u(rng, *kb.mask_scale), u(rng, kb.mask_scale[0], min(kb.mask_scale[1], 1.05))],
                 "offset": [u(rng, -0.05, 0.05), u(rng, -0.05, 0.05)],
                 "jitter": [u(rng, -0.06, 0.06) for _ in range(3)]  # hull wobble amplitudes, then phases
                 + [u(rng, 0, tau) for _ in range(3)],
                 "blur": u(rng, *kb.mask_blur), "alpha": u(rng, *kb.alpha),
                 "breath": u(rng, 0.01, 0.04), "breath_period": u(rng, 1.0, 3.0), "breath_phase": u(rng, 0, tau)},
        "warp": {"shift": [s(rng, *kb.warp_shift), s(rng, *kb.warp_shift)],
                 "scale": s(rng, *kb.warp_scale), "angle": u(rng, -kb.warp_angle, kb.warp_angle),
                 "drift": u(rng, 0.2, 0.5), "drift_period": u(rng, 1.0, 3.0), "drift_phase": u(rng, 0, tau)},
        "colour": {"gains": gains, "offset": u(rng, -kb.colour_offset, kb.colour_offset),
                   "contrast": u(rng, -kb.contrast, kb.contrast),
                   "drift": u(rng, 0.1, 0.4), "drift_period": u(rng, 1.0, 3.0), "drift_phase": u(rng, 0, tau)},
        "resample": {"factor": u(rng, *kb.resample), "drift": u(rng, 0.0, 0.1),
                     "drift_period": u(rng, 1.0, 3.0), "drift_phase": u(rng, 0, tau)},
    }


def still(params: dict, jitter: float = 0.0) -> dict:
    """A copy of `params` whose changes over time (mask breath, warp/colour/resample drift) are scaled by
    `jitter`: 0 gives the same mask and transform at every t, 1 leaves them as drawn."""
    p = copy.deepcopy(params)
    p["mask"]["breath"] *= jitter
    for key in ("warp", "colour", "resample"):
        p[key]["drift"] *= jitter
    return p


def mask_polygon(params: dict, ellipse: tuple, t: float = 0.0) -> np.ndarray:
    """(48, 2) mask outline in the ellipse's pixels at time t: the face ellipse ((cx, cy), (ax, ay)) scaled,
    shifted, made wobbly for the "hull" shape, and breathing a little over time."""
    mk = params["mask"]
    (cx, cy), (ax, ay) = ellipse
    breath = 1 + mk["breath"] * wave(mk, "breath", t)
    phi = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    r = np.ones_like(phi)
    if mk["shape"] == "hull":
        a, ph = mk["jitter"][:3], mk["jitter"][3:]
        r = r + sum(a[j] * np.cos((j + 2) * phi + ph[j]) for j in range(3))
    x = cx + mk["offset"][0] * ax + ax * mk["scale"][0] * breath * r * np.cos(phi)
    y = cy + mk["offset"][1] * ay + ay * mk["scale"][1] * breath * r * np.sin(phi)
    return np.stack([x, y], axis=1)


def soft_mask(poly: np.ndarray, shape: tuple[int, int], sigma: float, alpha: float = 1.0) -> np.ndarray:
    """float32 (h, w) mask: `poly` (pixels, sub-pixel accurate) filled with 1, Gaussian-blurred by `sigma`,
    times `alpha`. Exactly 0 beyond the kernel's reach (4 sigma), so nothing outside changes."""
    import cv2

    mask = np.zeros(shape, np.float32)
    outline = np.round(np.asarray(poly) * 16).astype(np.int32)  # 4 fractional bits
    cv2.fillPoly(mask, [outline], 1.0, lineType=cv2.LINE_8, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), sigma) * alpha


def paste(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 `target` + (`source` - `target`) * `mask`: the alpha composite every blend ends with.
    Pixels where the mask is 0 come back unchanged."""
    tgt = target.astype(np.float32)
    out = tgt + (source.astype(np.float32) - tgt) * mask[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def match_colour(source: np.ndarray, ref_mean, ref_std, amount: float) -> np.ndarray:
    """float32 `source` with its per-channel mean/std moved `amount` (0..1) of the way to the reference's
    (Reinhard-style colour transfer in the image's own channels)."""
    src = source.astype(np.float32)
    mean, std = src.reshape(-1, 3).mean(0), src.reshape(-1, 3).std(0) + 1e-3
    goal_mean = mean + (np.asarray(ref_mean, np.float32) - mean) * amount
    goal_std = std + (np.asarray(ref_std, np.float32) - std) * amount
    return (src - mean) / std * goal_std + goal_mean


def self_blend(frame: np.ndarray, params: dict, poly: np.ndarray, face_px: float, t: float = 0.0,
               crop_px: float | None = None, full_mask: np.ndarray | None = None) -> None:
    """Replace the face inside `poly` (frame pixels) by a warped, resampled, colour-shifted copy, in place.

    Takes a uint8 (H, W, 3) frame, `draw_blend` parameters, the face size in pixels (`face_px`, the scale of
    every knob), the time t of the drift waves, and `crop_px`, the side of the face crop a detector will
    see (the resampling blur is sized so it survives that resize; None = the frame is the crop). Writes the
    blend mask into `full_mask` (H, W) float32 when given.
    """
    import cv2

    k = params["strength"]
    H, W = frame.shape[:2]
    mk, wp, col, rs = params["mask"], params["warp"], params["colour"], params["resample"]
    sigma = max(0.5, mk["blur"] * face_px)
    # Work in a box around the mask: the Gaussian kernel reaches 4 sigma, the warp a few % of the face.
    pad = int(math.ceil(4 * sigma + 0.06 * face_px)) + 4
    x0, y0 = np.floor(poly.min(0)).astype(int) - pad
    x1, y1 = np.ceil(poly.max(0)).astype(int) + pad
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    target = frame[y0:y1, x0:x1]
    h, w = target.shape[:2]
    mask = soft_mask(poly - (x0, y0), (h, w), sigma, min(1.0, mk["alpha"] * k))

    def drift(p: dict) -> float:
        return 1 + p["drift"] * wave(p, "drift", t)

    # 1. warp: the pasted face sits a little off, as a swapped face's landmarks never align exactly
    centre = tuple(float(v) for v in poly.mean(0) - (x0, y0))
    d = drift(wp)
    m = cv2.getRotationMatrix2D(centre, wp["angle"] * k * d, 1 + wp["scale"] * k * d)
    m[:, 2] += np.array(wp["shift"]) * face_px * k * d
    source = cv2.warpAffine(target, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # 2. resample: down to a fraction of the face's size in the detector's crop (crop side = 1.6 face boxes)
    # and back up, so the blur survives the crop+resize instead of vanishing in it
    factor = rs["factor"] * drift(rs)
    if crop_px is not None:
        factor *= min(1.0, crop_px / (1.6 * face_px))
    factor = 1 - (1 - min(1.0, factor)) * min(k, 1.0)
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
    frame[y0:y1, x0:x1] = paste(target, src, mask)
    if full_mask is not None:
        full_mask[y0:y1, x0:x1] = mask


def apply_blend_at(frame: np.ndarray, params: dict, ellipse: tuple, mat: np.ndarray, face_h: float, t: float,
                   crop_px: float | None = None, full_mask: np.ndarray | None = None) -> None:
    """`self_blend` of a face whose ellipse is given in another image's pixels (the sample's photo) and
    mapped into `frame` by the affine `mat` (2, 3); `face_h` is the face box height in those pixels."""
    poly = mask_polygon(params, ellipse, t) @ mat[:, :2].T + mat[:, 2]
    face_px = abs(np.linalg.det(mat[:, :2])) ** 0.5 * face_h
    self_blend(frame, params, poly, face_px, t, crop_px, full_mask)
