"""What the web app computes, without the web: model choice, a model cache, one video's full analysis,
upload checks and the downloadable result files. No Gradio here, so it is testable on its own; the app
module (dfdlib/app/web.py) only lays out the page.

The verdict is `predict_video`'s (the same call `dfd predict` makes); the extras are computed from what
that call saw: per-window scores and Grad-CAM on the clip the model scored, and per-face scores from the
same sampled frames and detections (recorded on their way through the face detector, so no second pass).
"""
from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dfdlib.metrics import verdict_confidence
from dfdlib.predict.ensemble import Ensemble, members_of, threshold_of
from dfdlib.predict.explain import clip_to_images, frame_importance, grad_cam, overlay
from dfdlib.predict.registry import best_model, list_models
from dfdlib.predict.verdict import SCORED_FACES, predict_video
from dfdlib.utils import atomic_write, resolve_device, write_csv
from dfdlib.video import VIDEO_EXTENSIONS, is_video_file

BEST, ENSEMBLE = "best", "ensemble"   # model menu values besides a file name
DEFAULT_MAX_MB = 200                  # upload size limit (MB) unless --max-size-mb says otherwise
KEPT_RESULTS = 32                     # result folders (JSON + CSV downloads) kept per app: newest first

# What to try, per Prediction.status, shown under the reason.
HINTS = {
    "no_face": "Use a clip where one face is clearly visible, frontal and well lit for most of the video. "
               "For a small or distant face, crop the video closer to it; `dfd predict` and `dfd preprocess` "
               "have --min-confidence and --detect-max-side for finer control.",
    "unreadable": "The file is not a video OpenCV can decode (renamed, truncated or an unusual codec). "
                  "Re-encode it, e.g. `ffmpeg -i in.mov -c:v libx264 out.mp4`, and upload it again.",
    "rejected": "Upload a video file of an accepted type (listed above the upload box), not empty and within "
                "the size limit.",
    "too_short": "The video has too few frames; upload a longer clip (a few seconds).",
    "error": "Something unexpected failed for this video; the other videos were not affected. "
             "Run `DFD_DEBUG=1 dfd predict MODEL VIDEO` for the full traceback.",
}


def check_upload(path: str | Path, max_mb: float = DEFAULT_MAX_MB) -> str | None:
    """Why an uploaded file cannot be analysed (type, missing, empty, too large), or None when it can be tried.

    Takes the file path and the size limit in MB; returns a message naming the file and what to do.
    """
    path = Path(path)
    name = path.name
    if not is_video_file(path):
        return (f"{name}: unsupported file type {path.suffix or '(no extension)'!r}; upload a video "
                f"({', '.join(VIDEO_EXTENSIONS)})")
    if not path.is_file():
        return f"{name}: the upload did not arrive (no such file); upload it again"
    size = path.stat().st_size
    if size == 0:
        return f"{name}: the file is empty (0 bytes); the upload or the copy failed, upload the video again"
    if size > max_mb * 1e6:
        return (f"{name}: {size / 1e6:.1f} MB is over the {max_mb:g} MB limit; upload a shorter clip or "
                "start the app with a larger --max-size-mb")
    return None


# ------------------------------------------------------------------------------------------ models
def model_choices(models: pd.DataFrame, models_dir: str | Path) -> list[tuple[str, str]]:
    """(label, value) pairs for the model menu: best, ensemble, then every readable file (relative path)."""
    ok = models[models["error"].isna()]
    out = [("best model for the sequence length", BEST), ("ensemble of all models for the sequence length", ENSEMBLE)]
    for r in ok.itertuples():
        acc = "" if pd.isna(r.accuracy) else f", {r.accuracy:.1f}%"
        rel = Path(r.path).relative_to(models_dir).as_posix()
        out.append((f"{rel} ({int(r.sequence_length)} frames{acc})", rel))
    return out


def sequence_lengths(models: pd.DataFrame) -> list[int]:
    """Sequence lengths with at least one readable model; the most accurate model's first."""
    ok = models[models["error"].isna()].sort_values("accuracy", ascending=False, na_position="last")
    return list(dict.fromkeys(int(s) for s in ok["sequence_length"]))


def resolve_model(choice: str | None, sequence_length, models_dir: str | Path) -> list[Path]:
    """The model file(s) for a menu choice, read from the folder now (so a new file counts at once).

    Takes BEST, ENSEMBLE or a file path relative to `models_dir`, and a sequence length (for BEST and
    ENSEMBLE; default: the most accurate model's). Returns the paths. Raises FileNotFoundError with
    what to do.
    """

    models_dir = Path(models_dir)
    df = list_models(models_dir)
    ok = df[df["error"].isna()]
    if ok.empty:
        raise FileNotFoundError(f"no readable model file in {models_dir}/; copy a trained "
                                "model_<seq>_acc_<acc>_*.pt (from runs/<name>/) there and press ↻")
    choice = str(choice or BEST)
    if choice in (BEST, ENSEMBLE):
        seq = int(sequence_length) if sequence_length not in (None, "") else sequence_lengths(df)[0]
        if choice == BEST:
            return [best_model(seq, models_dir)]
        paths = [Path(p) for p in ok.loc[ok["sequence_length"] == seq, "path"]]
        return paths or [best_model(seq, models_dir)]  # none: the registry's message names what exists
    # A file from the menu is used only if the registry lists it: no path outside the folder.
    known = {Path(p).relative_to(models_dir).as_posix(): Path(p) for p in ok["path"]}
    if choice not in known:
        raise FileNotFoundError(f"model {choice!r} is not (or no longer) a readable model file in {models_dir}/; "
                                "press ↻ to rescan the folder and pick another")
    return [known[choice]]


class ModelCache:
    """Loaded models keyed by (path, mtime, size) of their files: each loaded once, reloaded when it changes.

    `get(paths)` returns a model (one path) or an Ensemble (several); thread-safe; keeps `size` entries.
    `loads` counts the files actually read.
    """

    def __init__(self, size: int = 3, device: str = "auto"):
        self.size, self.device = int(size), device
        self._models: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, paths):
        from dfdlib.model import load_model

        key = tuple((str(p), Path(p).stat().st_mtime_ns, Path(p).stat().st_size) for p in paths)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loaded = [load_model(p, device=resolve_device(self.device)) for p in paths]
            model = loaded[0] if len(loaded) == 1 else Ensemble(loaded)
            self.loads += len(loaded)
            self._models[key] = model
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return model


# ---------------------------------------------------------------------------------------- analysis
def threshold_note(meta: dict) -> str:
    """Where a model's threshold (and so its confidence) comes from, in words, from the model file's meta."""
    if meta.get("threshold_source"):  # an Ensemble (uncalibrated until calibrate_threshold) or calibrated
        return str(meta["threshold_source"])
    if meta.get("legacy"):
        return "the original project's model: fixed 0.5, not calibrated"
    return "chosen on the model's validation set when it was trained"


@dataclass
class Analysis:
    prediction: object                                  # predict_video's Prediction
    model_paths: list = field(default_factory=list)     # the model file(s) used
    crops: list = field(default_factory=list)           # RGB uint8 face crops the model saw, in clip order
    windows: pd.DataFrame | None = None                 # per-window prob_fake: start, end, center, prob_fake
    importance: np.ndarray | None = None                # Grad-CAM share per clip frame (sums to 1)
    cams: list = field(default_factory=list)            # (RGB overlay, caption), most important frame first
    faces: list = field(default_factory=list)           # per-face scores when several faces (predict_video's)
    threshold_note: str = ""                             # where the threshold came from (threshold_note())

    def record(self) -> dict:
        """JSON-ready dict: the Prediction's fields, the model(s), window scores, frame importance, faces."""
        rec = self.prediction.to_dict()
        rec["model"] = [str(p) for p in self.model_paths]
        rec["threshold_source"] = self.threshold_note
        rec["faces"] = self.faces
        rec["window_scores"] = [] if self.windows is None else self.windows.to_dict("records")
        rec["frame_importance"] = [] if self.importance is None else [round(float(v), 4) for v in self.importance]
        return rec


def window_scores(model, clip, window: int | None = None) -> pd.DataFrame:
    """prob_fake of consecutive, non-overlapping runs of `window` frames of a clip: where the evidence is.

    Takes one model (not an Ensemble), a clip (T, 3, H, W) and the window length (default ceil(T / 10),
    so at most 10 points; 1 = per frame). The windows cover each frame once, so this costs one more
    forward pass of the clip. Returns a DataFrame with start, end (inclusive), center and prob_fake.
    """
    import torch

    x = torch.as_tensor(clip)
    t = int(x.shape[0])
    w = max(1, min(t, int(window) if window else math.ceil(t / 10)))
    starts = list(range(0, t, w))
    device = next(model.parameters()).device
    probs = []
    with torch.inference_mode():
        full = [s for s in starts if s + w <= t]
        if full:
            batch = torch.stack([x[s:s + w] for s in full]).to(device)
            probs += model.prob_fake(model(batch)).float().cpu().tolist()
        if len(full) < len(starts):  # the last, shorter window
            probs += model.prob_fake(model(x[starts[-1]:][None].to(device))).float().cpu().tolist()
    ends = [min(s + w, t) - 1 for s in starts]
    return pd.DataFrame({"start": starts, "end": ends, "center": [(s + e) / 2 for s, e in zip(starts, ends, strict=True)],
                         "prob_fake": np.round(probs, 4)})


def analyse_video(model, video, model_paths=(), detector=None, explain: bool = True, top_k: int = 4,
                  max_faces: int = SCORED_FACES, progress=None) -> Analysis:
    """Everything the app shows for one video.

    Takes a model or Ensemble (from ModelCache / load_model), the video path, the model file paths (for
    the record), a FaceDetector to reuse (default: predict_video's, of the model's detector runtime),
    whether to compute Grad-CAM, how many overlays to keep, the most faces to score (1: only the main face) and an optional
    `progress(fraction, desc)` callback. Returns an Analysis; a video without a verdict has its
    Prediction's status/reason set and nothing else. Bad videos are reported, not raised.
    """

    step = progress or (lambda *a, **k: None)
    step(0.05, "finding the face and predicting")
    import torchvision  # noqa: F401  before TensorFlow (MTCNN): the other order segfaults here

    pred, clip = predict_video(model, video, detector=detector, return_clip=True,
                               max_faces=max_faces)
    out = Analysis(prediction=pred, model_paths=list(model_paths), threshold_note=threshold_note(model.meta))
    if pred.status != "ok" or clip is None:
        return out
    first = members_of(model)[0]
    out.crops = clip_to_images(clip)
    if len(pred.faces) > 1:  # predict_video scored every face; the verdict is the most-fake one
        thr = threshold_of(model.meta)
        out.faces = [f | {"label": "FAKE" if f["prob_fake"] >= thr else "REAL",
                          "confidence": round(verdict_confidence(f["prob_fake"], thr), 6)} for f in pred.faces]
    step(0.65, "per-window scores")
    out.windows = window_scores(first, clip)
    if explain:
        step(0.75, "Grad-CAM")
        cam = grad_cam(first, clip, target="pred")
        out.importance = frame_importance(cam)
        order = np.argsort(-out.importance, kind="stable")[: max(1, int(top_k))]
        out.cams = [(overlay(out.crops[t], cam[t]),
                     f"frame {int(t)}: {100 * out.importance[t]:.0f}% of the evidence for {pred.label}")
                    for t in order]
    step(1.0, "done")
    return out


# ------------------------------------------------------------------------------------------ output
BADGE_CSS = """
.dfd-badge {display: inline-block; padding: 0.05em 0.55em; border-radius: 0.35em; color: #fff; font-weight: 700;
            letter-spacing: 0.03em}
.dfd-fake {background: #c62828} .dfd-real {background: #2e7d32} .dfd-none {background: #6d6d6d}
"""  # the verdict badges of verdict_markdown (the app passes it to Gradio as page CSS)


def _badge(text: str, kind: str) -> str:
    return f'<span class="dfd-badge dfd-{kind}">{text}</span>'


def verdict_markdown(a: Analysis, name: str) -> str:
    """One video's result as Markdown: verdict, prob_fake vs threshold, or why there is none and what to try."""
    p = a.prediction
    if p.status != "ok":
        title = "no face found" if p.status == "no_face" else p.status.replace("_", " ")
        return (f"### {name}: {_badge('no verdict', 'none')} ({title})\n{p.reason}\n\n"
                f"**What to try:** {HINTS.get(p.status, HINTS['error'])}")
    model = ", ".join(Path(m).name for m in a.model_paths) or "?"
    note = a.threshold_note or threshold_note({})
    lines = [f"### {name}: {_badge(p.label, p.label.lower())} · confidence {100 * p.confidence:.1f}%",
             f"P(fake) = **{p.prob_fake:.3f}**, threshold {p.threshold:.3f} (P(fake) ≥ threshold → FAKE; the "
             f"confidence is measured from the threshold, which was {note}). {p.frames_used}-frame clip, face "
             f"found in {p.faces_found} sampled frames, {p.seconds:.1f} s. Model: {model}."]
    if p.reason:
        lines.append(f"Note: {p.reason}")
    if a.faces:
        lines.append(f"**{len(a.faces)} faces** (the verdict is the most-fake face's): " + "; ".join(
            f"face {f['face']}: {f['label']} {100 * f['confidence']:.0f}% (P(fake) {f['prob_fake']:.3f}, seen in "
            f"{f['frames']} frames)" for f in a.faces))
    return "\n\n".join(lines)


RESULT_COLUMNS = ["video", "verdict", "confidence", "P(fake)", "threshold", "status", "reason"]


def results_table(analyses: list[tuple[str, Analysis]]) -> pd.DataFrame:
    """One row per video: verdict, confidence, prob_fake (3 decimals), threshold, status and reason."""
    def r3(v):
        return None if v is None else round(float(v), 3)

    return pd.DataFrame([[n, a.prediction.label or "—", r3(a.prediction.confidence), r3(a.prediction.prob_fake),
                          r3(a.prediction.threshold), a.prediction.status, a.prediction.reason]
                         for n, a in analyses], columns=RESULT_COLUMNS)


def score_figure(analyses: list[tuple[str, Analysis]]):
    """A matplotlib Figure: per-window P(fake) of each video (lines), its threshold (dashed) and, for a
    single video, the Grad-CAM share per frame (bars). None when no video has a verdict."""
    from matplotlib.figure import Figure

    done = [(n, a) for n, a in analyses if a.windows is not None]
    if not done:
        return None
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.subplots()
    if len(done) == 1 and done[0][1].importance is not None:
        imp = done[0][1].importance
        ax2 = ax.twinx()
        ax2.bar(np.arange(len(imp)), imp, alpha=0.25, color="grey")
        ax2.set_ylabel("Grad-CAM share (bars)")
    for n, a in done:
        line, = ax.plot(a.windows["center"], a.windows["prob_fake"], marker="o", ms=4, label=n)
        ax.axhline(a.prediction.threshold, ls="--", lw=1, color=line.get_color())
    w = int(done[0][1].windows["end"].iloc[0]) + 1
    ax.set(xlabel="frame of the clip", ylabel="P(fake) per frame" if w == 1 else f"P(fake), {w}-frame windows",
           ylim=(-0.02, 1.02), title="Score over the clip: P(fake) (line), threshold (dashed)"
           + (", Grad-CAM share per frame (bars)" if len(done) == 1 and done[0][1].importance is not None else ""))
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="lower left", framealpha=0.8)
    return fig


def write_results(analyses: list[tuple[str, Analysis]], folder: str | Path) -> tuple[Path, Path]:
    """Write dfd_results.json (everything) and dfd_results.csv (one row per video) into `folder`, atomically.

    Takes (display name, Analysis) pairs; returns (json path, csv path).
    """

    folder = Path(folder)
    records = [dict(a.record(), video=n) for n, a in analyses]
    json_path = folder / "dfd_results.json"
    with atomic_write(json_path) as f:
        json.dump(records, f, indent=2, default=str)
    rows = [{k: v for k, v in r.items() if k not in ("window_scores", "frame_importance", "faces")}
            | {"model": ";".join(r["model"]), "faces": len(r["faces"]) or (1 if r["status"] == "ok" else 0)}
            for r in records]
    csv_path = write_csv(pd.DataFrame(rows), folder / "dfd_results.csv")
    return json_path, csv_path


def prune_results(folder: str | Path, keep: int = KEPT_RESULTS, prefix: str = "result-") -> int:
    """Delete all but the `keep` newest `<prefix>*` folders in `folder`, so a long-running app's result files
    do not pile up (a page shows only its latest result). Returns how many were removed."""
    import shutil

    found = sorted((p for p in Path(folder).glob(prefix + "*") if p.is_dir()), key=lambda p: p.stat().st_mtime_ns)
    old = found[:max(0, len(found) - max(1, keep))]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return len(old)
