"""Clips of face crops → normalised tensors for the model, and the train/eval transforms.

A clip is `sequence_length` frames of one processed video folder (`frame_<i>.jpg`), chosen evenly over
what is there (or the first N) and padded by repeating the last frame when the folder is short. Frames
are decoded as RGB and normalised with ImageNet statistics (the original project fed BGR frames through
RGB statistics; we do not). Augmentations come from torchvision.transforms.v2 and are applied to the
whole clip at once, so every frame of a clip gets the same crop/flip/colour change.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch.utils.data import Dataset

from dfdlib.clipstore import CACHE_MODES, open_store
from dfdlib.utils import check_processed_root, frame_files, parse_label, relative_folder
from dfdlib.video import SAMPLING, sample_indices

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transforms(train: bool, image_size: int):
    """Takes train (augment or not) and the output size; returns a callable mapping a uint8 clip
    (T, 3, H, W) to float32 (T, 3, image_size, image_size) normalised with ImageNet mean/std.

    v2 treats the (T, 3, H, W) tensor as one batch, so random parameters are drawn once per clip.
    Augmentations are mild on purpose: deepfake cues are subtle pixel-level traces.
    """
    from torchvision.transforms import v2

    size = int(image_size)
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        return v2.Compose([v2.Resize((size, size), antialias=True), *finish])
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02)], p=0.5),
        v2.RandomApply([v2.RandomRotation(5)], p=0.3),
        # re-compression or blur, as videos met in the wild have (uint8 only, so before ToDtype)
        v2.RandomApply([v2.RandomChoice([v2.JPEG((60, 100)), v2.GaussianBlur(3, sigma=(0.1, 1.0))])], p=0.3),
        *finish,
    ])


def _normalise_only():
    from torchvision.transforms import v2

    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def resize_only(image_size: int):
    """uint8 clip (T, 3, H, W) → uint8 (T, 3, image_size, image_size): what loader workers do when the
    augmentation runs on the training device (`augment_batch`)."""
    from torchvision.transforms import v2

    return v2.Resize((int(image_size), int(image_size)), antialias=True)


AUGMENT_ON = ("auto", "device", "workers")


@dataclass(frozen=True)
class ClipTransforms:
    """The transforms of one run. `worker`: uint8 clip → what the DataLoader workers hand over (the
    augmented, normalised clip; or, when `device` augments, the resized uint8 clip). `device`: the
    `build_transforms(True, S)` that `augment_batch` runs on the training device, or None. `eval`:
    validation, test and prediction (`build_transforms(False, S)`)."""

    worker: Callable
    device: Callable | None
    eval: Callable


def clip_transforms(image_size: int, augment: bool = False, augment_on: str = "workers",
                    device: str | torch.device = "cpu") -> ClipTransforms:
    """The one rule of where augmentation runs: on the training `device` when `augment_on` is 'device',
    or 'auto' and the device is CUDA; else in the workers. Without `augment` nothing augments and the
    workers apply the eval transform. Raises ValueError for an unknown augment_on."""
    if augment_on not in AUGMENT_ON:
        raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {augment_on!r}")
    evaluate = build_transforms(False, image_size)
    if not augment:
        return ClipTransforms(worker=evaluate, device=None, eval=evaluate)
    if augment_on == "device" or (augment_on == "auto" and torch.device(device).type == "cuda"):
        return ClipTransforms(worker=resize_only(image_size), device=build_transforms(True, image_size), eval=evaluate)
    return ClipTransforms(worker=build_transforms(True, image_size), device=None, eval=evaluate)


def augment_batch(x: torch.Tensor, seeds, transform) -> torch.Tensor:
    """Augment a batch of uint8 clips where it lies (e.g. on the GPU): one parameter draw per clip, shared
    by its frames, different across clips.

    Takes x (B, T, 3, S, S) uint8 on any device, one seed per clip (the trainer's per-item seeds, so the
    draw equals what a worker would draw for that item) and the augmentation (`clip_transforms(...).device`).
    Returns float32 (B, T, 3, S, S) normalised with ImageNet mean/std, on x's device. The random
    parameters come from torch's CPU generator, forked so the caller's RNG stream is untouched; JPEG
    re-compression (CPU-only in torchvision) moves that one clip to the CPU and back.
    """
    from torchvision.transforms import v2

    out = []
    with torch.random.fork_rng(devices=[]):
        for clip, seed in zip(x, [int(s) for s in seeds], strict=True):
            torch.random.default_generator.manual_seed(seed)
            out.append(_apply_on_device(transform, clip, v2))
    return torch.stack(out)


def _apply_on_device(transform, clip: torch.Tensor, v2) -> torch.Tensor:
    if clip.device.type == "cpu":
        return transform(clip)
    for t in transform.transforms:  # Compose: run each step, JPEG on the CPU
        clip = _jpeg_on_cpu(t, clip, v2)
    return clip


def _jpeg_on_cpu(t, clip: torch.Tensor, v2) -> torch.Tensor:
    if isinstance(t, v2.JPEG):
        return t(clip.cpu()).to(clip.device)
    if isinstance(t, (v2.RandomApply, v2.RandomChoice)):
        # the same draws as the transform itself (torch CPU RNG), with JPEG steps routed to the CPU
        if isinstance(t, v2.RandomApply):
            if torch.rand(1) >= t.p:
                return clip
            for inner in t.transforms:
                clip = _jpeg_on_cpu(inner, clip, v2)
            return clip
        idx = int(torch.multinomial(torch.tensor(t.p), 1))
        return _jpeg_on_cpu(t.transforms[idx], clip, v2)
    return t(clip)


def select_indices(n_available: int, sequence_length: int, sampling: str = "even") -> tuple[list[int], bool]:
    """Positions (into the sorted frames) for a clip, and whether it had to be padded.

    "even" spreads `sequence_length` positions over all available frames (video.sample_indices: the
    middle of each of t equal segments), "first" takes the first ones;
    a short folder gives all its frames followed by the last one repeated.
    """
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
    if int(sequence_length) < 1:
        raise ValueError(f"sequence_length must be >= 1, got {sequence_length}")
    n, t = int(n_available), int(sequence_length)
    if n < t:
        return list(range(n)) + [n - 1] * (t - n), True
    if sampling == "first":
        return list(range(t)), False
    return sample_indices(n, t, "even"), False  # the rule preprocessing samples videos with


def _decode_frames(paths: list[Path]) -> list[torch.Tensor]:
    """Decode JPEG/PNG files to RGB uint8 (3, H, W) tensors; ValueError naming a corrupt file."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 deprecates its codecs (still fine)
        for p in paths:
            try:
                out.append(decode_image(read_file(str(p)), mode=ImageReadMode.RGB))
            except RuntimeError as e:
                raise ValueError(f"cannot decode frame {p} ({e}); re-run preprocess for this video "
                                 "(overwrite=True) or remove it from the labels CSV") from e
    return out


def _load_clip(folder: Path, names: list[str], sequence_length: int, sampling: str):
    """`names`: the folder's frame files in frame order (frame_files)."""
    if not names:
        raise ValueError(f"{folder} has no frame_<i>.jpg files (nor other numbered .jpg/.png frames); re-run "
                         "preprocess or remove it from the labels CSV")
    idx, padded = select_indices(len(names), sequence_length, sampling)
    unique = sorted(set(idx))
    decoded = dict(zip(unique, _decode_frames([folder / names[i] for i in unique]), strict=True))
    sizes = {tuple(f.shape) for f in decoded.values()}
    if len(sizes) > 1:
        raise ValueError(f"frames in {folder} have different sizes {sorted(sizes)}; re-run preprocess for it")
    return torch.stack([decoded[i] for i in idx]), len(names), padded


def _resize_uint8(clip: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 clip (T, 3, H, W) → (T, 3, size, size), antialiased (as the eval transform resizes)."""
    if clip.shape[-2:] == (size, size):
        return clip
    from torchvision.transforms.v2 import functional as F

    return F.resize(clip, [size, size], antialias=True)


def pad_frames(clip: torch.Tensor, n_real: int) -> torch.Tensor:
    """Marks a short clip's padding: frames from `n_real` on (repeats of the last frame) become all zeros.

    Call it on the transformed (normalised) clip; the model leaves such frames out of its LSTM and its
    mean over time (model.frame_mask). Returns the clip (changed in place).
    """
    if 0 < n_real < clip.shape[0]:
        clip[n_real:] = 0
    return clip


def read_clip(folder: str | Path, sequence_length: int, sampling: str = "even") -> tuple[torch.Tensor, int, bool]:
    """Takes a processed video folder; returns (uint8 RGB clip (T, 3, H, W), frames available, padded).

    Raises FileNotFoundError for a missing folder, ValueError for an empty folder or a corrupt frame.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder {folder} does not exist")
    return _load_clip(folder, frame_files(folder), sequence_length, sampling)


def frames_to_clip(frames_rgb: list[np.ndarray], sequence_length: int, image_size: int,
                   sampling: str = "even") -> torch.Tensor:
    """Fresh face crops → model input, with the same selection, padding and eval transform as training.

    Takes RGB uint8 arrays (H, W, 3) (sizes may differ); returns float32 (T, 3, image_size, image_size).
    Raises ValueError for no frames or a frame that is not RGB uint8.
    """
    from torchvision.transforms.v2 import functional as F

    if len(frames_rgb) == 0:
        raise ValueError("no face frames to make a clip from (was a face found in the video?)")
    idx, _ = select_indices(len(frames_rgb), sequence_length, sampling)
    chosen = {}
    for i in sorted(set(idx)):
        a = np.asarray(frames_rgb[i])
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"frame {i} is {a.dtype} {a.shape}; expected an RGB uint8 array (H, W, 3)")
        chosen[i] = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)
    if len({tuple(t.shape) for t in chosen.values()}) > 1:  # resize one by one, as the batched Resize would
        chosen = {i: F.resize(t, [image_size, image_size], antialias=True) for i, t in chosen.items()}
    clip = clip_transforms(image_size).eval(torch.stack([chosen[i] for i in idx]))
    return pad_frames(clip, len(frames_rgb))


def _safe_relative(name, row_desc: str) -> PurePosixPath:
    rel, problem = relative_folder(name)
    if problem:
        raise ValueError(f"{row_desc}: {problem}; fix the labels CSV")
    return PurePosixPath(rel)


class FaceSequenceDataset(Dataset):
    """Labelled clips of face crops: `dataset[i] -> (float clip (T, 3, S, S), label int)` (0 real, 1 fake).

    Takes a labels table: a DataFrame (filename,label[,split]) with filenames relative to `processed_root`,
    as the labels stage reads and checks a CSV (`dfdlib.read_labels(path)`, `dfdlib.validate_labels`), the clip length, an optional split filter (str or list), a transform (default: eval
    `build_transforms` when `image_size` is given, else normalisation only), the frame sampling, and
    `cache`: "disk" (clips resized to `store_size` once, kept in a dfdlib.clipstore file shared by all
    workers through the page cache: memory does not grow with the dataset), "ram" (each reading process
    keeps its own uint8 copy: T*3*H*W bytes a clip, per worker), or "off" (decode the JPEGs every time).
    Raises TypeError for a CSV path instead of a table, FileNotFoundError for a missing root, ValueError
    naming the row for unsafe paths, bad labels, and (unless `skip_bad`) missing or empty folders; with skip_bad=True those rows are dropped, warned about and listed in `skipped`.
    Clips padded by repeating their last frame are listed in `padded` and warned about once.
    """

    def __init__(self, labels, processed_root, sequence_length: int, split=None, transform=None,
                 sampling: str = "even", cache: str | bool = "off", image_size: int | None = None,
                 skip_bad: bool = False, store_size: int | None = None, store_dir=None):
        import pandas as pd

        if not isinstance(labels, pd.DataFrame):  # the labels CSV has one reader: the labels stage's
            raise TypeError(f"FaceSequenceDataset takes a labels table (DataFrame), got {type(labels).__name__}: "
                            f"read a labels CSV with dfdlib.read_labels({str(labels)!r}) or dfdlib.validate_labels")
        self.root = check_processed_root(processed_root)
        select_indices(1, sequence_length, sampling)  # validates both
        self.sequence_length, self.sampling = int(sequence_length), sampling
        df, source = labels.reset_index(drop=True), "labels table"
        missing_cols = {"filename", "label"} - set(df.columns)
        if missing_cols:
            raise ValueError(f"{source} lacks column(s) {sorted(missing_cols)}; expected filename,label[,split]")
        if split is not None:
            if "split" not in df.columns:
                raise ValueError(f"split={split!r} was asked for but {source} has no 'split' column "
                                 "(make one with dfdlib.split_labels)")
            wanted = [split] if isinstance(split, str) else list(split)
            found = sorted(df["split"].dropna().astype(str).unique())
            df = df[df["split"].astype(str).isin(wanted)]
            if df.empty:
                raise ValueError(f"{source} has no rows with split in {wanted}; its splits are {found}")

        self.filenames: list[str] = []
        self._labels: list[int] = []
        self._frames: list[list[str]] = []  # frame file names per video, in frame order
        self.skipped: list[tuple[str, str]] = []  # (filename, reason) of rows dropped with skip_bad
        bad: list[str] = []
        for pos, (name, label) in enumerate(zip(df["filename"], df["label"], strict=True)):
            row = f"{source} row {pos + 1} ({name!r})"
            rel = _safe_relative(name, row)
            lab = parse_label(label)[0]
            if lab is None:
                raise ValueError(f"{row}: label {label!r} must be 0 (real) or 1 (fake)")
            folder = self.root / rel
            numbers = frame_files(folder) if folder.is_dir() else None
            if not numbers:
                reason = "folder does not exist" if numbers is None else "folder has no frame_<i>.jpg files"
                bad.append(f"{row}: {folder} {reason}")
                self.skipped.append((str(rel), reason))
                continue
            self.filenames.append(str(rel))
            self._labels.append(int(lab))
            self._frames.append(numbers)
        if bad and not skip_bad:
            raise ValueError(f"{len(bad)} labelled video(s) have no frames under {self.root}: " + "; ".join(bad[:5])
                             + ("; ..." if len(bad) > 5 else "") + ". Re-run preprocess, fix the CSV, or pass skip_bad=True")
        if bad:
            warnings.warn(f"skipped {len(bad)} labelled video(s) with no frames: " + "; ".join(bad[:5]), stacklevel=2)
        if not self.filenames:
            raise ValueError(f"{source} leaves no usable videos under {self.root}")

        self.n_frames = [len(f) for f in self._frames]
        self.padded = [f for f, n in zip(self.filenames, self.n_frames, strict=True) if n < self.sequence_length]
        if self.padded:
            examples = ", ".join(f"{f} ({n})" for f, n in zip(self.filenames, self.n_frames, strict=True)
                                 if n < self.sequence_length)
            warnings.warn(f"{len(self.padded)} of {len(self.filenames)} clips have fewer than {self.sequence_length} "
                          f"frames and are padded (the model leaves the padding out): {examples[:300]}. Preprocess with "
                          "more frames or use a shorter sequence_length.", stacklevel=2)
        if transform is None:
            transform = clip_transforms(image_size).eval if image_size else _normalise_only()
        self.transform = transform
        self.cache = {True: "ram", False: "off", None: "off"}.get(cache, cache)
        if self.cache not in CACHE_MODES:
            raise ValueError(f"cache must be 'disk', 'ram' or 'off', got {cache!r}")
        self._cache: dict[int, torch.Tensor] = {}
        self.store_size, self.store = (int(store_size or image_size or 0) or None), None
        if self.cache == "disk":
            if not self.store_size:
                raise ValueError("cache='disk' needs store_size (the training image_size)")

            shape = (self.sequence_length, 3, self.store_size, self.store_size)
            used = [[names[i] for i in sorted(set(select_indices(len(names), self.sequence_length, sampling)[0]))]
                    for names in self._frames]
            self.store = open_store([self.root / f for f in self.filenames], used, shape, sampling, store_dir)

    @property
    def labels(self) -> list[int]:
        """Labels (0 real, 1 fake) in dataset order, for samplers and class weights."""
        return list(self._labels)

    def __len__(self) -> int:
        return len(self.filenames)

    def read_uint8(self, index: int) -> torch.Tensor:
        """The selected, padded uint8 RGB clip (T, 3, H, W) before the transform (from the cache if on)."""
        if self.store is not None:
            stored = self.store.get(index)
            if stored is not None:
                return torch.from_numpy(stored)
        clip = self._cache.get(index)
        if clip is None:
            clip, _, _ = _load_clip(self.root / self.filenames[index], self._frames[index], self.sequence_length,
                                    self.sampling)
            if self.cache == "disk":  # what the store returns later, so every epoch sees the same input
                clip = _resize_uint8(clip, self.store_size)
                if self.store is not None:
                    self.store.put(index, clip.numpy())
            elif self.cache == "ram":
                self._cache[index] = clip
        return clip

    def length(self, index: int) -> int:
        """Real frames in clip `index` (<= sequence_length; the rest of the clip is padding)."""
        return min(self.n_frames[index], self.sequence_length)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return pad_frames(self.transform(self.read_uint8(index)), self.n_frames[index]), self._labels[index]
