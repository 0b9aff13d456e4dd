"""Stage 4: verdicts for new videos (one, a folder, an ensemble); evaluation on a labelled split is in
evaluate.py, loading models and ensembles in ensemble.py.

Prediction repeats training's preprocessing exactly, read from the model file's metadata: the same
PreprocessConfig (frames, sampler, detector thresholds, margin, crop size, JPEG quality) through the same
`extract_faces`, then the same frame selection, resize and normalisation (`data.frames_to_clip`). A video
with no usable face gets status "no_face" and no label, never a guess.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dfdlib.metrics import verdict_confidence
from dfdlib.predict.ensemble import as_model, members_of, sequence_length_of, threshold_of
from dfdlib.predict.explain import grad_cam, save_cam_overlays
from dfdlib.preprocess.config import PreprocessConfig
from dfdlib.preprocess.faces import default_detector, extract_faces, frames_needed
from dfdlib.utils import ensure_writable, strict, write_csv
from dfdlib.video import (  # the same files the preprocess stage treats as videos
    VIDEO_EXTENSIONS,
    VideoError,
    find_videos,
    probe_video,
)

SCORED_FACES = 3  # people scored per video unless the call (or the model's preprocessing) says otherwise
# A person seen in at least this many sampled frames gets a score (fewer when fewer frames are sampled),
# however briefly the edit shows them: a verdict whenever a face is visible. A face seen in fewer frames
# than training's min_detected asked for is scored on the frames it was seen in, the clip padded (the
# model masks the padding), not on boxes copied to frames where it was not.
MIN_FACE_FRAMES = 4
_warned: set[str] = set()


@dataclass
class Prediction:
    video: str                        # the video path as given
    label: str | None = None          # "REAL" | "FAKE"; None when there is no verdict (see status)
    confidence: float | None = None   # 0.5–1: how far prob_fake is past the threshold (metrics.verdict_confidence)
    prob_fake: float | None = None    # probability of FAKE (mean over ensemble members)
    frames_used: int = 0              # frames in the clip the model saw (sequence length)
    faces_found: int = 0              # sampled frames with a detected face (the rest were filled in)
    status: str = "ok"                # ok | no_face | too_short | unreadable | error
    reason: str = ""                  # why there is no verdict, naming the file and what to do
    threshold: float = 0.5            # prob_fake >= threshold → FAKE
    seconds: float = 0.0              # wall time for this video
    faces: list = dataclasses.field(default_factory=list)  # per person scored, most prominent first: {"face",
                                      # "prob_fake", "frames" (detected in), "box" (median xyxy)}; the verdict
                                      # is the most-fake face's (the DFDC winners' rule)

    def to_dict(self) -> dict:
        return asdict(self)


def _detector(detector=None, backend: str = "auto"):
    """The given FaceDetector, or the process-wide one of `backend` (a model's PreprocessConfig.detector).

    torchvision is imported first on purpose: importing it (it pulls in triton) after TensorFlow has
    loaded crashes the process with a segfault (tensorflow-cpu 2.21 + torch 2.14 here).
    """
    import torchvision  # noqa: F401

    return detector or default_detector(backend)


def preprocess_config_for(meta: dict, sequence_length: int):
    """The PreprocessConfig a model was trained with (from its metadata), sampling >= sequence_length frames.

    Training subsampled `sequence_length` frames from the `frames` crops of each video, so prediction
    extracts the same `frames` and subsamples the same way; only when a longer clip is asked for than
    training had crops does it extract more frames (real frames rather than training's padding).
    The original project's files (meta["legacy"], model.load_model) get the crops they were trained on:
    the tight face box (no margin) stretched to image_size (112), as its face_recognition crops were.
    Other files without recorded settings get the defaults with size = image_size, said once.
    """

    if meta.get("preprocess"):
        cfg = PreprocessConfig.from_dict(meta["preprocess"])
    elif meta.get("legacy"):
        cfg = PreprocessConfig(size=int(meta.get("image_size") or 112), margin=0.0, crop="stretch",
                               sampling=meta.get("sampling") or "first")
    else:
        size = int(meta.get("image_size") or PreprocessConfig().size)
        cfg = PreprocessConfig(size=size, sampling=meta.get("sampling") or PreprocessConfig().sampling)
        key = str(meta.get("path", id(meta)))
        if key not in _warned:
            _warned.add(key)
            warnings.warn(f"model file {meta.get('path', '')} records no preprocessing settings; using the "
                          f"defaults with crop size {size} (sampling {cfg.sampling!r})", stacklevel=3)
    if cfg.frames < sequence_length:
        cfg = dataclasses.replace(cfg, frames=int(sequence_length))
    return cfg


def _as_stored(crops: list[np.ndarray], quality: int) -> list[np.ndarray]:
    """Round-trip crops through JPEG at the quality the preprocess stage saved them with.

    Training saw decoded JPEGs; a model that learned compression cues should see the same here.
    """
    import cv2
    import torch
    from torchvision.io import decode_jpeg

    out = []
    for crop in crops:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding of a face crop failed")
        # Decoded like data.read_clip decodes the training frames (torchvision, RGB).
        out.append(decode_jpeg(torch.from_numpy(buf.ravel())).permute(1, 2, 0).numpy())
    return out


def _member_prob(member, crops, seq: int):
    """prob_fake of one member on one video's crops; returns (prob, clip)."""
    import torch

    from dfdlib.data import frames_to_clip

    meta = member.meta
    clip = frames_to_clip(crops, seq, int(meta.get("image_size") or crops[0].shape[0]),
                          sampling=meta.get("sampling") or "even")
    device = next(member.parameters()).device
    with torch.inference_mode():
        prob = member.prob_fake(member(clip[None].to(device))).float().cpu().item()
    return prob, clip


def predict_video(model, video_path, sequence_length: int | None = None, detector=None,
                  threshold: float | None = None, return_clip: bool = False, device: str = "auto",
                  max_faces: int | None = None, min_face_frames: int = MIN_FACE_FRAMES):
    """Verdict for one video.

    Takes a model from load_model, a model file path, an Ensemble (or a list of paths), the video path,
    an optional sequence length (default: the model's), a FaceDetector to reuse, a threshold (default:
    the model file's, else 0.5) and how many people to score (default: SCORED_FACES, or the model's
    max_faces if higher; each one seen in enough sampled frames is scored, `Prediction.faces`, and the
    verdict is the most-fake face's) and the sampled frames a person must be seen in to be scored
    (MIN_FACE_FRAMES). Returns a Prediction, or (Prediction, clip) with `return_clip=True`
    (clip: the first member's normalised (T, 3, S, S) tensor of the verdict's face, None without a
    verdict). Bad videos are reported in `status`/`reason`, not raised.
    """
    t0 = time.perf_counter()
    model = as_model(model, device)
    members = members_of(model)
    seq = sequence_length_of(model.meta, sequence_length)
    thr = threshold_of(model.meta) if threshold is None else float(threshold)
    path = Path(video_path)
    pred = Prediction(video=str(video_path), threshold=thr)

    def finish(clip=None):
        pred.seconds = round(time.perf_counter() - t0, 3)
        return (pred, clip) if return_clip else pred

    if not path.is_file():
        pred.status, pred.reason = "unreadable", f"{path}: no such file; check the path"
        if path.is_symlink():
            pred.reason = (f"{path}: a symbolic link to {str(path.readlink())!r}, which does not exist or loops "
                           "back; replace the link by the video file or remove it")
        return finish()
    results, scores = {}, {}  # scores: face index → [(prob, clip) per member]
    for member in members:
        cfg = preprocess_config_for(member.meta, seq)
        cfg = dataclasses.replace(cfg, max_faces=int(max_faces or max(cfg.max_faces, SCORED_FACES)))
        key = json.dumps(asdict(cfg), sort_keys=True, default=str)
        if key not in results:  # members sharing settings share one face extraction
            results[key] = _extract(path, cfg, _detector(detector, cfg.detector), min_face_frames)  # model's runtime
        res = results[key]
        if res.status == "ok" and res.config.frames < cfg.frames:
            pred.reason = (f"the video has only {res.config.frames} frames, fewer than the {cfg.frames} "
                           "training sampled; the clip was padded (the model leaves the padding out)")
        if res.status != "ok":
            pred.status = res.status
            pred.reason = res.reason or f"{path}: {res.status.replace('_', ' ')}"
            if res.status == "no_face":
                pred.reason = f"no face found: {pred.reason}"
            return finish()
        need = frames_needed(res.config, len(res.indices))
        for face in res.faces:  # one person: the loop runs once, as with a single face
            seen = [c for c, f in zip(face.crops, face.filled, strict=True) if not f]
            crops = face.crops if len(seen) >= need else seen  # briefly seen: its own frames, padded
            scores.setdefault(face.index, []).append(_member_prob(member, _as_stored(crops, res.config.jpeg_quality),
                                                                  seq))
    first = next(iter(results.values()))
    # Members with other settings may find fewer people: a face counts when every member scored it.
    probs = {k: float(np.mean([p for p, _ in v])) for k, v in scores.items() if len(v) == len(members)}
    top = max(probs, key=lambda k: (probs[k], -k))  # the most-fake face decides (DFDC winners' rule)
    pred.faces = [{"face": f.index, "prob_fake": round(probs[f.index], 6), "frames": int(sum(not x for x in f.filled)),
                   "box": [round(float(v), 1) for v in np.median(np.array(f.boxes, dtype=float), axis=0)]}
                  for f in first.faces if f.index in probs]
    clip = scores[top][0][1]
    pred.prob_fake = probs[top]
    pred.label = "FAKE" if pred.prob_fake >= thr else "REAL"
    pred.confidence = verdict_confidence(pred.prob_fake, thr)
    pred.frames_used = int(clip.shape[0])
    pred.faces_found = next(f["frames"] for f in pred.faces if f["face"] == top)
    return finish(clip)


def _extract(path: Path, cfg, detector, min_frames: int = MIN_FACE_FRAMES):
    """extract_faces keeping people seen in `min_frames` sampled frames; a video shorter than `cfg.frames` is
    retried with all its frames (clip padded later)."""

    res = extract_faces(path, cfg, detector=detector, min_frames=min_frames)
    if res.status == "too_short":
        try:
            total = probe_video(path).frame_count
        except VideoError:
            return res
        if 1 <= total < cfg.frames:
            short = extract_faces(path, dataclasses.replace(cfg, frames=total), detector=detector,
                                  min_frames=min_frames)
            if short.status != "too_short":
                return short
    return res


@contextlib.contextmanager
def uploaded_video(name: str, content):
    """Save an uploaded video (e.g. from the Predict notebook's upload widget) for the length of a `with`.

    Takes the name the browser sent and the bytes. Yields the file's path inside a fresh private temp
    folder (mode 0700); the folder is removed on exit, also after an error. Only a cleaned base name is
    kept, so a name like `../../x.mp4` cannot write anywhere else.
    """
    import re
    import shutil
    import tempfile

    base = Path(str(name or "").replace("\\", "/")).name
    base = re.sub(r"[^\w.\- ]", "_", base).lstrip(".") or "upload.mp4"
    folder = Path(tempfile.mkdtemp(prefix="dfd-upload-"))
    try:
        path = folder / base
        path.write_bytes(bytes(content))
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def predict_many(model, videos, names=None, sequence_length=None, threshold=None, progress=True,
                 explain_dir=None, device: str = "auto", max_faces: int | None = None,
                 min_face_frames: int = MIN_FACE_FRAMES) -> pd.DataFrame:
    """Predict a list of videos with one model load and one face detector; one row per video.

    Takes a model/path/Ensemble, video paths, optional display names, `explain_dir` (Grad-CAM PNGs
    of each video's top frames go to `<explain_dir>/<name>/`), `max_faces` and `min_face_frames` (predict_video). A video
    that fails for any reason gets its status and reason in its row; the others are unaffected. Returns
    the DataFrame; its `n_faces` column counts the people scored and `faces` holds their scores as JSON.
    """
    from tqdm.auto import tqdm

    model = as_model(model, device)
    sequence_length_of(model.meta, sequence_length)  # a bad setting fails once, not once per video
    detector = None  # predict_video takes each model's detector runtime, built once per process
    names = [str(v) for v in videos] if names is None else list(names)
    rows = []
    for video, name in tqdm(list(zip(videos, names, strict=True)), desc="predict", unit="video",
                            disable=not progress):
        try:
            pred, clip = predict_video(model, video, sequence_length, detector, threshold, return_clip=True,
                                       max_faces=max_faces, min_face_frames=min_face_frames)
            if explain_dir is not None and pred.status == "ok":

                cam = grad_cam(members_of(model)[0], clip, target="pred")
                save_cam_overlays(clip, cam, Path(explain_dir) / name.replace("/", "__").rsplit(".", 1)[0])
        except Exception as e:  # noqa: BLE001 - one bad video must not stop the batch; a bug fails the tests
            if strict():
                raise
            pred = Prediction(video=str(video), status="error", reason=f"{video}: {type(e).__name__}: {e}")
        row = pred.to_dict()
        row["video"] = name
        row["n_faces"], row["faces"] = len(pred.faces), json.dumps(pred.faces) if pred.faces else ""
        rows.append(row)
    cols = ["video", "label", "confidence", "prob_fake", "status", "reason", "frames_used", "faces_found",
            "threshold", "seconds", "n_faces", "faces"]
    return pd.DataFrame(rows, columns=cols)


def predict_folder(model, folder, out_csv=None, recursive: bool = True, progress: bool = True,
                   sequence_length: int | None = None, threshold: float | None = None, explain_dir=None,
                   device: str = "auto", max_faces: int | None = None,
                   min_face_frames: int = MIN_FACE_FRAMES) -> pd.DataFrame:
    """Predict every video in a folder (model loaded once) and optionally write the CSV atomically.

    Returns a DataFrame with columns video (relative to `folder`), label, confidence, prob_fake, status,
    reason, frames_used, faces_found, threshold, seconds, n_faces, faces (predict_many). Raises FileNotFoundError when the folder holds
    no video files.
    """
    folder = Path(folder)
    videos = find_videos(folder, recursive)
    if not videos:
        raise FileNotFoundError(f"no video files ({', '.join(VIDEO_EXTENSIONS[:5])}, ...) in {folder}")
    if out_csv is not None:

        ensure_writable(Path(out_csv).parent, "folder of the predictions CSV")  # before the work, not after
    names = [v.name if folder.is_file() else v.relative_to(folder).as_posix() for v in videos]
    df = predict_many(model, videos, names, sequence_length, threshold, progress, explain_dir, device, max_faces,
                      min_face_frames)
    if out_csv is not None:
        write_csv(df, out_csv)
    return df
