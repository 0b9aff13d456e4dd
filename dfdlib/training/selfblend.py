"""Self-blended training fakes for clips: `TrainConfig.fakes = "self-blend" | "mixed"` (`dfd train --fakes`).

After Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images" (CVPR 2022): every real clip of
the training split also yields a fake clip made on the fly by blending the face onto a transformed copy of
itself (`dfdlib.blend`), so a detector can be trained from real videos alone and learns the blending
boundary, colour and sharpness mismatch that face swaps leave rather than one generator's fingerprint.

One blend per clip: a single mask and transform, drawn once and applied to every frame. The crops of a
processed folder are already centred on the tracked face box, so a mask in crop coordinates follows the
face as it moves. The mask ellipse comes from the MTCNN landmarks in faces.json (`keypoints`, when
preprocessing saved them), else from the face boxes and crop margin in faces.json, else from the default
crop geometry (box + 30 % margin per side). `jitter` > 0 lets the mask breathe and the transform drift a
little from frame to frame (a fraction of the sample generator's drift).

Modes: "self-blend" = the real clips of the split plus one self-blend of each (the split's own fakes are
left out: real videos only); "mixed" = all the split's clips plus a self-blend of each real one; "none" =
the dataset as it is. Only the training split is wrapped: validation and test see the dataset's own
labelled videos, never a self-blend.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from dfdlib.blend import BlendKnobs, draw_blend, mask_polygon, self_blend, still
from dfdlib.boxes import square_box

FAKES = ("none", "self-blend", "mixed")
# The face ellipse relative to the face box (fractions of its width/height; from the sample's photo, whose
# MTCNN box and brow-to-chin ellipse are known): centre below the box centre, semi-axes inside the box.
_BOX_ELLIPSE = (0.118, 0.49, 0.42)  # centre y offset / h, semi-axis x / w, semi-axis y / h


def crop_ellipse(size: int, faces: dict | None = None) -> tuple[tuple[float, float], tuple[float, float]]:
    """The face ellipse ((cx, cy), (ax, ay)) in pixels of a `size` x `size` crop.

    Takes a processed folder's faces.json content (or None). Uses its per-frame `keypoints` (MTCNN's
    left_eye, right_eye, nose, mouth_left, mouth_right, as a dict or five [x, y] pairs, full-frame
    pixels) when present, else its `boxes`, with the crop margin of `faces["preprocess"]["margin"]`
    (default 0.3), averaged over the clip's frames.
    """

    faces = faces or {}
    margin = float((faces.get("preprocess") or {}).get("margin", 0.3))
    boxes = [b for b in faces.get("boxes") or [] if b is not None]
    kps = faces.get("keypoints") or []
    fits = []
    for i, box in enumerate(faces.get("boxes") or []):
        kp = _points(kps[i]) if i < len(kps) else None
        if box is None or kp is None:
            continue
        left, top, right, _ = square_box(box, margin)
        kp = (kp - (left, top)) * size / (right - left)
        eyes, mouth = kp[:2].mean(0), kp[3:].mean(0)
        d = float(np.linalg.norm(mouth - eyes))
        w = float(np.linalg.norm(kp[1] - kp[0]))
        centre = (eyes + mouth) / 2 + (mouth - eyes) / max(d, 1e-6) * 0.15 * d
        fits.append((*centre, 1.0 * w, 1.2 * d))
    if fits:
        cx, cy, ax, ay = np.mean(fits, axis=0)
        return (float(cx), float(cy)), (float(ax), float(ay))
    if boxes:
        w, h = np.mean([[b[2] - b[0], b[3] - b[1]] for b in boxes], axis=0)
    else:
        w = h = 1.0
    side = max(w, h) * (1 + 2 * margin)
    dy, kx, ky = _BOX_ELLIPSE
    s = size / side
    return (size / 2, size / 2 + dy * h * s), (kx * w * s, ky * h * s)


def _points(kp) -> np.ndarray | None:
    names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    try:
        pts = [kp[n] for n in names] if isinstance(kp, dict) else list(kp)
        arr = np.asarray(pts, np.float64).reshape(5, 2)
    except (KeyError, TypeError, ValueError):
        return None
    return arr if np.isfinite(arr).all() else None


def blend_clip(clip: np.ndarray, params: dict, ellipse: tuple, jitter: float = 0.0,
               masks: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Self-blend every frame of a uint8 clip (T, H, W, 3) with one parameter draw (`draw_blend`).

    Takes the face ellipse in crop pixels (`crop_ellipse`) and the temporal jitter (0 = the same mask and
    transform on every frame). Returns (blended clip, masks (T, H, W) float32 or None); the input is
    not modified.
    """
    out = np.array(clip, copy=True)
    p = still(params, jitter)
    face_px = 2 * ellipse[1][1] / (2 * _BOX_ELLIPSE[2])  # the face box height the knobs are scaled by
    mask_out = np.zeros(out.shape[:3], np.float32) if masks else None
    for t in range(len(out)):
        tt = t / 25.0  # the drift waves' time axis: a 25 fps clip
        poly = mask_polygon(p, ellipse, tt)
        self_blend(out[t], p, poly, face_px, tt, None, None if mask_out is None else mask_out[t])
    return out, mask_out


class SelfBlendDataset:
    """The training split with self-blended fakes added: `ds[i] -> (transform(uint8 clip), label)`.

    Takes the split's dataset (a `FaceSequenceDataset`: `read_uint8(i)`, `labels`, `filenames`, `root`,
    `transform`), the mode ("self-blend" or "mixed", see the module docstring), a seed, the temporal
    `jitter`, the blend `knobs` and `strength`, and `vary`: True draws a fresh blend each time an item is
    read, from torch's default generator (which the trainer seeds per (seed, epoch, rank, position), so a
    run is reproducible and every epoch sees new blends); False fixes one blend per clip from `seed`.
    Items: the kept clips in dataset order, then one self-blend per real clip. Raises ValueError for an
    unknown mode or a split without real clips.
    """

    def __init__(self, base, mode: str = "self-blend", seed: int = 0, jitter: float = 0.0,
                 knobs: BlendKnobs | None = None, strength: float = 1.0, vary: bool = True, transform=None):
        if mode not in FAKES[1:]:
            raise ValueError(f"SelfBlendDataset: mode must be 'self-blend' or 'mixed', got {mode!r}")
        labels = list(base.labels)
        reals = [i for i, y in enumerate(labels) if y == 0]
        if not reals:
            raise ValueError(f"fakes={mode!r} needs real (label 0) clips in the training split; it has none")
        kept = reals if mode == "self-blend" else list(range(len(labels)))
        self.base, self.mode, self.seed, self.jitter = base, mode, int(seed), float(jitter)
        self.knobs, self.strength, self.vary = knobs or BlendKnobs(), float(strength), bool(vary)
        self.transform = base.transform if transform is None else transform
        self.dropped = len(labels) - len(kept)  # the split's own fakes left out in "self-blend" mode
        # (base index, blended?) per item
        self.items = [(i, False) for i in kept] + [(i, True) for i in reals]
        self._labels = [labels[i] for i in kept] + [1] * len(reals)
        self._ellipses: dict[int, tuple] = {}

    @property
    def labels(self) -> list[int]:
        """Labels (0 real, 1 fake, self-blends included) in item order, for samplers and class weights."""
        return list(self._labels)

    def __len__(self) -> int:
        return len(self.items)

    def is_blend(self, index: int) -> bool:
        """Whether item `index` is a self-blend made here (not a clip of the dataset)."""
        return self.items[index][1]

    def params(self, index: int) -> dict:
        """The blend parameters item `index` gets now (consumes torch's generator when `vary`)."""
        base_index = self.items[index][0]
        if self.vary:
            import torch

            key = [self.seed, base_index, int(torch.randint(0, 2**62, (1,)).item())]
        else:
            key = [self.seed, base_index]
        return draw_blend(np.random.default_rng(key), self.strength, self.knobs)

    def ellipse(self, base_index: int, size: int) -> tuple:
        """Face ellipse of clip `base_index` in crop pixels (from its faces.json; cached)."""
        if base_index not in self._ellipses:
            faces = None
            path = Path(self.base.root) / self.base.filenames[base_index] / "faces.json"
            try:
                faces = json.loads(path.read_text())
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as e:
                warnings.warn(f"{path}: unreadable ({e}); the self-blend mask uses the default crop geometry",
                              stacklevel=2)
            self._ellipses[base_index] = crop_ellipse(size, faces)
        return self._ellipses[base_index]

    def read_uint8(self, index: int, masks: bool = False):
        """uint8 RGB clip (T, 3, H, W) of item `index` (blended if it is a self-blend item); with
        `masks=True`, returns (clip, masks (T, H, W) float32 or None for a dataset clip)."""
        import torch

        base_index, blended = self.items[index]
        clip = self.base.read_uint8(base_index)
        mask = None
        if blended:
            frames = clip.permute(0, 2, 3, 1).numpy()
            if frames.shape[1] != frames.shape[2]:
                raise ValueError(f"{self.base.filenames[base_index]}: crops are {frames.shape[2]}x{frames.shape[1]}; "
                                 "self-blend expects the square crops preprocess writes")
            out, mask = blend_clip(frames, self.params(index), self.ellipse(base_index, frames.shape[1]),
                                   self.jitter, masks)
            clip = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
        return (clip, mask) if masks else clip

    def length(self, index: int) -> int:
        """Real frames of item `index` (its source clip's)."""
        return self.base.length(self.items[index][0])

    def __getitem__(self, index: int):
        from dfdlib.data import pad_frames

        n_real = self.base.n_frames[self.items[index][0]]
        return pad_frames(self.transform(self.read_uint8(index)), n_real), self._labels[index]


def wrap_train(train_ds, fakes: str, seed: int, val_labels=None, log=print):
    """The trainer's hook: `train_ds` as it is for fakes="none", else a `SelfBlendDataset`.

    Takes the training split's dataset, `TrainConfig.fakes`, the run seed, and the validation labels:
    without a fake among them, val ROC-AUC (the default best-model metric) is undefined, which is
    reported through `log` (the run goes on; choose monitor="val_loss" or add labelled fakes to val).
    Raises ValueError for an unknown `fakes`.
    """
    if fakes not in FAKES:
        raise ValueError(f"fakes={fakes!r}: choose one of {', '.join(FAKES)}")
    if fakes == "none":
        return train_ds
    ds = SelfBlendDataset(train_ds, fakes, seed=seed)
    n_blend = sum(ds.is_blend(i) for i in range(len(ds)))
    log(f"fakes={fakes}: {n_blend} self-blended clips made on the fly from the training split's real clips"
        + (f"; its {ds.dropped} fake clips are left out (use fakes='mixed' to keep them)" if ds.dropped else ""))
    if val_labels is not None and 1 not in set(val_labels):
        log("WARNING: the val split has no fake videos, so val ROC-AUC cannot be computed and cannot choose "
            "the best epoch; self-blends never enter val: add a few labelled fakes to val (or use "
            "monitor='val_loss', which on real clips alone favours a model that calls everything real)")
    return ds
