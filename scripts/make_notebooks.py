"""Generate the notebooks in notebooks/ (without outputs): `python scripts/make_notebooks.py`.

The notebooks are built here, from one description each, so that edits are reviewable Python diffs and
every notebook keeps the same skeleton: title, Colab cell, imports, one `parameters` cell of typed
literals (`papermill --help-notebook` documents them), derived values, numbered sections.

Smoke mode (parameter `smoke`, or env DFD_SMOKE / CI) swaps in tiny sizes for the parameters that are
still at their defaults, so values set with `papermill -p` win, and resolves relative paths under
runs/smoke/ so a smoke run never mixes its tiny files with a real run's.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# Where Colab clones the repository from. Change it to your fork (or a private copy) before using Colab.
REPO_URL = "https://github.com/dfdlib/dfdlib.git"

# Smoke sizes: the same numbers as dfdlib.demo.SMOKE (checked by tests/test_notebooks.py).
SMOKE = dict(frames=8, crop=64, sequence_length=8, image_size=64, epochs=1, batch_size=4, hidden_dim=32)


@dataclass
class Param:
    name: str          # Python name (also the papermill -p name)
    type: str          # annotation shown by papermill --help-notebook
    default: object    # literal default (the real, non-smoke setting)
    help: str          # one-line comment; papermill shows it as the parameter's help (no "=" allowed)
    smoke: object = None   # value used in smoke mode when the parameter is left at its default
    has_smoke: bool = False


def P(name, type_, default, help_, **kw) -> Param:
    if "=" in help_:
        raise ValueError(f"papermill cannot parse '=' in the help of {name}: {help_!r}")
    p = Param(name, type_, default, help_)
    if "smoke" in kw:
        p.smoke, p.has_smoke = kw["smoke"], True
    return p


# ---- cells shared by every notebook ------------------------------------------------------------------

COLAB = f'''\
# Colab only: fetch and install dfdlib, mount Google Drive. On Jupyter or in CI this cell does nothing.
import os
import subprocess
import sys

REPO_URL = "{REPO_URL}"  # your fork of this repository
if "google.colab" in sys.modules:
    if not os.path.isdir("/content/dfdlib"):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, "/content/dfdlib"], check=True)
        # Colab already has torch, TensorFlow, OpenCV, pandas...: add only what it lacks, and install dfdlib
        # without dependencies so pip does not put tensorflow-cpu beside Colab's own tensorflow.
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mtcnn", "papermill"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "/content/dfdlib"], check=True)
    from google.colab import drive

    drive.mount("/content/drive")  # your videos can live in /content/drive/MyDrive/...
    os.chdir("/content/dfdlib/notebooks")  # the relative default paths below then work as in a clone'''

SMOKE_LINE = 'smoke = smoke or bool(os.environ.get("DFD_SMOKE") or os.environ.get("CI"))'
ROOT_LINES = '''\
# Relative paths are relative to the repository root; a smoke run keeps its files under runs/smoke/.
root = Path(project_root).resolve() / ("runs/smoke" if smoke else "")'''

COMMON_HEAD = [
    P("project_root", "str", "..", "repository root, relative to this notebook's folder (or absolute)"),
]
COMMON_TAIL = [
    P("smoke", "bool", False, "tiny quick run (CI): small sizes, files under runs/smoke/; also on with env DFD_SMOKE or CI"),
]


def lit(value) -> str:
    """A Python literal in the house style (double-quoted strings)."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def params_cell(params: list[Param]) -> str:
    width = max(len(f"{p.name}: {p.type} = {lit(p.default)}") for p in params)
    lines = ["# Parameters: literals only. papermill -p NAME VALUE overrides them; see papermill --help-notebook."]
    lines += [f"{f'{p.name}: {p.type} = {lit(p.default)}':<{width}}  # {p.help}" for p in params]
    return "\n".join(lines)


def smoke_cell(params: list[Param], extra: str) -> str:
    lines = [SMOKE_LINE]
    smoked = [p for p in params if p.has_smoke and p.smoke != p.default]
    if smoked:
        lines.append("if smoke:  # tiny sizes, only for parameters left at their defaults (papermill -p wins)")
        lines += [f"    {p.name} = {lit(p.smoke)} if {p.name} == {lit(p.default)} else {p.name}" for p in smoked]
    lines.append(ROOT_LINES)
    return "\n".join(lines) + ("\n" + extra.strip("\n") if extra else "")


def notebook(title: str, intro: str, params: list[Param], derived: str,
             sections: list[tuple[str, str | list[str]]]) -> nbformat.NotebookNode:
    params = COMMON_HEAD + params + COMMON_TAIL
    code = "\n".join([smoke_cell(params, derived)] + [src for _, body in sections
                                                          for src in ([body] if isinstance(body, str) else body)])
    cells = [
        new_markdown_cell(f"# {title}\n\n{intro.strip()}"),
        new_code_cell(COLAB),
        new_code_cell(imports_cell(code)),
        new_code_cell(params_cell(params), metadata={"tags": ["parameters"]}),
        new_code_cell(smoke_cell(params, derived)),
    ]
    for heading, body in sections:
        cells.append(new_markdown_cell(heading.strip()))
        for src in [body] if isinstance(body, str) else body:
            cells.append(new_code_cell(src.strip()))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


RUN_HOW = """\
**How to run.** Jupyter: *Run all*; the defaults use the synthetic sample set in `data/sample/`
(generated on first use). Colab: *Runtime → Run all*; the first cell installs dfdlib and mounts Drive.
Batch: `papermill {name}.ipynb out.ipynb -p NAME VALUE` (`papermill --help-notebook {name}.ipynb` lists the
parameters), or a parameter grid with `dfd sweep notebooks/{name}.ipynb -p NAME V1,V2`.
Set `smoke=True` for a tiny run that finishes in about a minute on a CPU."""

# The imports cell: each line is kept only when the notebook's code uses the names it imports.
IMPORT_LINES = [
    ("%matplotlib inline", None),  # figures render inline even when no pyplot figure was made first
    ("import os", None),
    ("from pathlib import Path", None),
    ("", None),
    ("import matplotlib.pyplot as plt", ["plt."]),
    ("import pandas as pd", ["pd."]),
    ("from IPython.display import {}", ["Image", "display"]),
    ("", None),
    ("import dfdlib", None),
    ("from dfdlib import demo", ["demo."]),
    ("from dfdlib.labels import split_summary", ["split_summary("]),
    ("from dfdlib.metrics import format_metrics_table", ["format_metrics_table("]),
]


def imports_cell(code: str) -> str:
    lines = []
    for line, uses in IMPORT_LINES:
        if uses is None:
            lines.append(line)
        elif "{}" in line:
            names = [n for n in uses if re.search(rf"\b{n}\(", code)]
            if names:
                lines.append(line.format(", ".join(names)))
        elif any(u in code for u in uses):
            lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# ---- preprocessing.ipynb -------------------------------------------------------------------------------

def preprocessing() -> nbformat.NotebookNode:
    params = [
        P("videos_dir", "str", "data/sample", "raw videos: <videos_dir>/real/* and <videos_dir>/fake/*"),
        P("processed_dir", "str", "data/processed", "output: <processed_dir>/<real|fake>/<video>/frame_<i>.jpg"),
        P("use_sample", "bool", True, "if videos_dir does not exist, generate the synthetic sample set there"),
        P("frames", "int", 20, "frames sampled per video (10 to 100 typical)", smoke=SMOKE["frames"]),
        P("sampling", "str", "even", "'even': spread over the whole video; 'first': the first N frames"),
        P("size", "int", 224, "side of the square face crop in pixels (the original project used 112)",
          smoke=SMOKE["crop"]),
        P("margin", "float", 0.3, "context added on each side of the face box, as a fraction of its longer side"),
        P("min_confidence", "float", 0.9, "MTCNN detections below this confidence are ignored"),
        P("min_face_size", "int", 20, "faces smaller than this (pixels, full resolution) are ignored"),
        P("detect_max_side", "int", 480, "detect on a copy downscaled to this longer side (speed); 0 for full size"),
        P("jpeg_quality", "int", 95, "JPEG quality of the saved crops"),
        P("workers", "int", 1, "parallel worker processes (one MTCNN each)"),
        P("overwrite", "bool", False, "redo videos that are already processed (default: skip them, resume)"),
        P("show_videos", "int", 4, "videos per class shown in the crop grid"),
    ]
    derived = """\
videos = root / videos_dir
processed = root / processed_dir
print(f"videos: {videos}\\nfaces : {processed}\\nsmoke : {smoke}")"""
    sections = [
        ("## 1. The videos\n\nVideos go in `real/` and `fake/` sub-folders (MP4, AVI, MOV, MKV). If the folder "
         "does not exist and `use_sample` is on, the synthetic sample set is generated there.",
         """\
if use_sample and not videos.exists():
    demo.ensure_sample(videos, smoke=smoke)
for label in ("real", "fake"):
    files = sorted(p.name for p in (videos / label).glob("*") if p.is_file())
    print(f"{label}: {len(files)} files, e.g. {files[:3]}")"""),
        ("## 2. Detect and crop faces\n\nMTCNN finds the main face in each sampled frame; each video's crops are "
         "written to their own folder atomically, so an interrupted run resumes where it stopped "
         "(`overwrite=True` redoes finished videos).",
         """\
config = dfdlib.PreprocessConfig(frames=frames, sampling=sampling, size=size, margin=margin,
                                 min_confidence=min_confidence, min_face_size=min_face_size,
                                 detect_max_side=detect_max_side, jpeg_quality=jpeg_quality)
report = dfdlib.preprocess_dataset(videos, processed, config, workers=workers, overwrite=overwrite)"""),
        ("## 3. The report\n\nOne row per video (also saved as `preprocess_report.csv` in the output folder). "
         "Videos with status `no_face`, `too_short` or `unreadable` are left out of the labels CSV later.",
         ["""\
print(report["status"].value_counts().to_string())
report""",
          """\
problems = report[~report["status"].isin(["ok", "skipped_done"])]
problems if len(problems) else print("every video gave face crops")"""]),
        ("## 4. Look at the crops\n\nA few videos per class: each row is one video's sampled face crops, in "
         "time order. Check that each row follows one face and that the crops are not cut off.",
         """\
folders = [p for label in ("real", "fake")
           for p in sorted((processed / label).glob("*"))[:show_videos] if not p.name.startswith(".")]
if not folders:
    raise FileNotFoundError(f"no face crops in {processed}: see the report above")
n_show = min(frames, 8)
fig, axes = plt.subplots(len(folders), n_show, figsize=(1.4 * n_show, 1.5 * len(folders)), squeeze=False)
for row, folder in zip(axes, folders, strict=True):
    for i, ax in enumerate(row):
        jpg = folder / f"frame_{i * frames // n_show}.jpg"
        if jpg.exists():
            ax.imshow(plt.imread(jpg))
        ax.axis("off")
    row[0].set_title(f"{folder.parent.name}/{folder.name}", loc="left", fontsize=8)
plt.show()"""),
        ("## 5. Next step\n\nRun `Create_csv_from_glob.ipynb` to write the labels CSV (with a saved "
         "train/val/test split) from these folders.",
         'print(f"face crops are in {processed}")'),
    ]
    return notebook(
        "Preprocessing: videos → face crops",
        "Samples frames from each video, finds the main face with MTCNN and saves square face crops as "
        "`<processed_dir>/<real|fake>/<video>/frame_<i>.jpg` plus a `faces.json` per video. Shows the report "
        "table and a grid of crops.\n\n" + RUN_HOW.format(name="preprocessing"),
        params, derived, sections)


# ---- Create_csv_from_glob.ipynb -----------------------------------------------------------------------

def create_csv() -> nbformat.NotebookNode:
    params = [
        P("processed_dir", "str", "data/processed", "face crops written by preprocessing.ipynb"),
        P("labels_csv", "str", "labels/labels.csv", "the labels CSV to write (filename,label,split)"),
        P("real_glob", "str", "real/*", "folders of real videos, relative to processed_dir"),
        P("fake_glob", "str", "fake/*", "folders of fake videos, relative to processed_dir"),
        P("split", "list", [0.7, 0.15, 0.15], "train / val / test fractions; papermill: -y 'split: [0.8, 0.1, 0.1]'"),
        P("seed", "int", 0, "seed of the split"),
        P("videos_dir", "str", "data/sample", "only used when processed_dir is missing (see make_inputs)"),
        P("make_inputs", "bool", True, "if processed_dir is missing, preprocess the sample set into it"),
    ]
    derived = """\
processed = root / processed_dir
csv_path = root / labels_csv
print(f"faces : {processed}\\nlabels: {csv_path}\\nsmoke : {smoke}")
# Used only to build missing inputs: the preprocessing notebook's defaults (tiny sizes in smoke mode).
inputs_config = demo.preprocess_config(True) if smoke else dfdlib.PreprocessConfig()"""
    sections = [
        ("## 1. The processed folders\n\nIf `processed_dir` does not exist yet (a fresh clone) and `make_inputs` "
         "is on, the sample set is generated and preprocessed first, as `preprocessing.ipynb` would.",
         """\
if make_inputs and not processed.exists():
    demo.ensure_sample(root / videos_dir, smoke=smoke)
    dfdlib.preprocess_dataset(root / videos_dir, processed, inputs_config)
print({label: len({p.parent for p in (processed / label).rglob("frame_*.jpg")})  # video folders, any depth
       for label in ("real", "fake")})"""),
        ("## 2. Write the labels CSV\n\n`filename` is a folder relative to `processed_dir` (`real/video1`), "
         "`label` is 0 for real and 1 for fake; `group` and `method` come from the dataset's layout "
         "(`samples.csv` that preprocessing wrote: FF++ pairs, Celeb-DF names, DFDC originals). Folders without "
         "frames (no face found) are left out. The split keeps every group in one split (no leakage), uses the "
         "dataset's official split when it has one, is seeded, and is saved in the `split` column. A face-frame "
         "dataset (faces already cropped) is recognised as well; custom globs label by folder pattern only.",
         """\
labels = dfdlib.make_labels(processed, out_csv=csv_path, split=tuple(split), seed=seed,
                            real_glob=real_glob, fake_glob=fake_glob)
print(f"wrote {csv_path} ({len(labels)} videos)")
labels.head(10)"""),
        ("## 3. Check it\n\nThe same check the trainer runs: every folder exists and holds frames, labels are 0/1, "
         "no duplicates.",
         """\
checked = dfdlib.validate_labels(csv_path, processed)
print(f"OK: {len(checked)} rows, frames per video {checked['frames'].min()} to {checked['frames'].max()}")"""),
        ("## 4. Class balance per split",
         """\
summary = split_summary(labels)
display(summary)
summary.drop(index="total")[["real", "fake"]].plot.bar(title="videos per split", ylabel="videos", rot=0)
plt.show()"""),
        ("## 5. Next step\n\nTrain with `Model_and_train_csv.ipynb` (its `labels_csv` parameter is this file).",
         'print(f"labels CSV: {csv_path}")'),
    ]
    return notebook(
        "Create the labels CSV from the processed folders",
        "Builds `labels.csv` (`filename,label,group,method,split`) from the face-crop folders that "
        "`preprocessing.ipynb` wrote (any dataset layout; `real/…` → 0, `fake/…` → 1), with a seeded, group-aware "
        "train/val/test split (the official one where the dataset has it). Shows "
        "the class balance per split.\n\n" + RUN_HOW.format(name="Create_csv_from_glob"),
        params, derived, sections)


# ---- Model_and_train_csv.ipynb ------------------------------------------------------------------------

def train_nb() -> nbformat.NotebookNode:
    params = [
        P("processed_dir", "str", "data/processed", "face crops (dataset_path of the guide)"),
        P("labels_csv", "str", "labels/labels.csv", "labels CSV with a split column (csv_file of the guide)"),
        P("out_dir", "str", "runs/train", "run folder: model file, history.csv, metrics.json, plots/"),
        P("sequence_length", "int", 20, "frames per clip seen by the LSTM (10, 20 or 100)",
          smoke=SMOKE["sequence_length"]),
        P("batch_size", "int", 4, "clips per batch (lower it on CUDA out of memory)", smoke=SMOKE["batch_size"]),
        P("learning_rate", "float", 1e-4, "AdamW learning rate", smoke=3e-3),
        P("num_epochs", "int", 50, "epochs (early stopping may end sooner)", smoke=SMOKE["epochs"]),
        P("device", "str", "auto", "'auto' (GPU if there is one), 'cuda', 'cpu' or 'mps'"),
        P("backbone", "str", "resnext50_32x4d", "CNN per frame: resnext50_32x4d, resnet18 or tiny (tests)",
          smoke="tiny"),
        P("weights", "str", "imagenet", "backbone start: 'imagenet', a .pt path, or '' for random",
          smoke=""),
        P("hidden_dim", "int", 2048, "LSTM hidden size", smoke=SMOKE["hidden_dim"]),
        P("image_size", "int", 224, "face crops are resized to this (at most the preprocessing size)",
          smoke=SMOKE["image_size"]),
        P("num_workers", "int", 2, "DataLoader worker processes", smoke=0),
        P("max_steps_per_epoch", "int", 0, "stop each epoch after this many batches; 0 for all"),
        P("seed", "int", 42, "seed for weights, sampling and augmentation"),
        P("resume", "bool", False, "continue an interrupted run from out_dir/last.pt"),
        P("videos_dir", "str", "data/sample", "only used when the labels CSV is missing (see make_inputs)"),
        P("make_inputs", "bool", True, "if the labels CSV is missing, build it from the sample set first"),
    ]
    derived = """\
processed = root / processed_dir
csv_path = root / labels_csv
run_dir = root / out_dir
print(f"faces : {processed}\\nlabels: {csv_path}\\nrun   : {run_dir}\\nsmoke : {smoke}")
# Used only to build missing inputs: the preprocessing notebook's defaults (tiny sizes in smoke mode).
inputs_config = demo.preprocess_config(True) if smoke else dfdlib.PreprocessConfig()"""
    sections = [
        ("## 1. Inputs\n\nIf the labels CSV does not exist yet (a fresh clone) and `make_inputs` is on, the "
         "sample set is generated, preprocessed and labelled first, as the two previous notebooks would.",
         """\
if make_inputs and not csv_path.exists():
    demo.ensure_sample(root / videos_dir, smoke=smoke)
    dfdlib.preprocess_dataset(root / videos_dir, processed, inputs_config)
    demo.ensure_labels(processed, csv_path)
split_summary(dfdlib.read_labels(csv_path))"""),
        ("## 2. Configuration\n\nThe parameters map one to one onto `dfdlib.TrainConfig`; the other fields "
         "(schedule, AMP, class balancing, early stopping, ...) keep their defaults, see "
         "`help(dfdlib.TrainConfig)`.",
         """\
config = dfdlib.TrainConfig(
    dataset_path=str(processed), csv_file=str(csv_path), out_dir=str(run_dir),
    sequence_length=sequence_length, batch_size=batch_size, learning_rate=learning_rate,
    num_epochs=num_epochs, device=device, backbone=backbone, weights=weights or None, hidden_dim=hidden_dim,
    image_size=image_size, num_workers=num_workers, max_steps_per_epoch=max_steps_per_epoch or None, seed=seed,
    resume=resume,
)
print(dfdlib.env_report().get("gpus", "no GPU: training on the CPU"))
pd.DataFrame.from_dict(config.to_dict(), orient="index", columns=["value"])"""),
        ("## 3. Train\n\nEach epoch prints `Loss | Val_Loss | Accuracy`; the plot below is redrawn after every "
         "epoch from the run's `history.csv`. The best epoch (by validation, never test) is saved as "
         "`model_<sequence_length>_acc_<val_acc>_final_data.pt`.",
         TRAIN_LIVE),
        ("## 4. Results on the test split\n\nThe test split was never used for choosing the model. The table "
         "puts the numbers beside the guide's *good* and *excellent* levels.",
         ["""\
metrics = result.test_metrics or {}
print(format_metrics_table(metrics) if metrics else "no test split in the labels CSV")""",
          """\
for png in ("curves", "confusion", "roc"):
    path = Path(result.run_dir) / "plots" / f"{png}.png"
    if path.exists():
        display(Image(filename=str(path)))"""]),
        ("## 5. The model file\n\nUse it in `Predict.ipynb` (its `models_dir` defaults to this run folder), with "
         "`dfd predict MODEL VIDEO`, or copy it into `models/` where the app's registry looks for models.",
         """\
print(f"model file  : {result.best_model_path}")
print(f"run folder  : {result.run_dir} (history.csv, metrics.json, plots/)")
print(f"threshold   : {result.threshold:.3f} (P(fake) at or above it means FAKE)")"""),
    ]
    return notebook(
        "Train the ResNeXt50 + LSTM detector",
        "Trains the detector on the face crops listed in the labels CSV: a CNN (ResNeXt50, ImageNet weights) "
        "per frame, an LSTM over the sequence, a real/fake classifier. Plots loss and accuracy per epoch, then "
        "the test split's confusion matrix, ROC curve and metrics, and prints where the model file is.\n\n"
        "On a CPU the defaults are slow; set `smoke=True`, or `backbone='resnet18'` with a smaller "
        "`image_size`, to try the notebook. A GPU (Colab) runs the defaults.\n\n"
        + RUN_HOW.format(name="Model_and_train_csv"),
        params, derived, sections)


# The live plot: train() calls on_epoch after every saved epoch; the curves are redrawn in place.
TRAIN_LIVE = """\
plot = display(display_id=True)


def redraw(history):
    plot.update(dfdlib.plot_history(pd.DataFrame(history)))


result = dfdlib.train(config, on_epoch=redraw)  # Interrupt stops it; resume=True continues from last.pt
result.history"""


# ---- Predict.ipynb ------------------------------------------------------------------------------------

def predict_nb() -> nbformat.NotebookNode:
    params = [
        P("models_dir", "str", "runs/train", "folder searched (recursively) for model files, e.g. models"),
        P("model_path", "str", "", "a model file; '' picks the best one for sequence_length in models_dir"),
        P("sequence_length", "int", 20, "frames per clip: chooses the model and how many frames are used",
          smoke=SMOKE["sequence_length"]),
        P("video", "str", "", "the video to check; '' takes the first fake video of videos_dir"),
        P("videos_dir", "str", "data/sample", "sample videos (real/ and fake/), generated if missing"),
        P("processed_dir", "str", "data/processed", "face crops of the labelled set to evaluate"),
        P("labels_csv", "str", "labels/labels.csv", "labels CSV with a split column"),
        P("split", "str", "test", "which split of the labels CSV to evaluate; '' skips the evaluation"),
        P("out_dir", "str", "runs/predict", "where predictions, Grad-CAM overlays and metrics.json go"),
        P("explain", "bool", True, "compute Grad-CAM heat maps for the video"),
        P("top_k", "int", 4, "Grad-CAM overlays for the frames that drove the verdict most"),
        P("make_inputs", "bool", True, "if there is no model, build the sample set and train one first"),
        P("train_dir", "str", "runs/train", "where that fallback model is trained (see make_inputs)"),
    ]
    derived = """\
models = root / models_dir
videos = root / videos_dir
processed = root / processed_dir
csv_path = root / labels_csv
out = root / out_dir
print(f"models: {models}\\nvideos: {videos}\\nout   : {out}\\nsmoke : {smoke}")
# Used only to build missing inputs: the preprocessing notebook's defaults (tiny sizes in smoke mode).
inputs_config = demo.preprocess_config(True) if smoke else dfdlib.PreprocessConfig()"""
    sections = [
        ("## 1. The model\n\nThe registry lists every model file in `models_dir` with the sequence length and "
         "validation accuracy stored in it (or in its name, for the original project's files). With "
         "`model_path=''` the most accurate one for `sequence_length` is used. On a fresh clone (no model) "
         "and with `make_inputs` on, a model is trained on the sample set first.",
         ["""\
has_model = models.is_dir() and dfdlib.list_models(models)["error"].isna().any()
if make_inputs and not model_path and not has_model:
    demo.ensure_sample(videos, smoke=smoke)
    dfdlib.preprocess_dataset(videos, processed, inputs_config)
    demo.ensure_labels(processed, csv_path)
    model_path = str(demo.ensure_model(root / train_dir, processed, csv_path, smoke=smoke))
    models = root / train_dir  # the registry below then lists the model just trained
registry = dfdlib.list_models(models)
registry.drop(columns=["path"])""",
          """\
chosen = root / model_path if model_path else dfdlib.best_model(sequence_length, models)
model = dfdlib.load_model(chosen)
print(f"model: {chosen}\\ntrained with sequence length {model.meta.get('sequence_length')}, "
      f"threshold {model.meta.get('threshold') or 0.5:.3f}")"""]),
        ("## 2. Predict one video\n\nThe video goes through exactly the preprocessing the model was trained with "
         "(read from the model file): frame sampling, MTCNN face crop, size, normalisation.",
         """\
video_path = root / video if video else sorted((videos / "fake").glob("*.mp4"))[0]
prediction, clip = dfdlib.predict_video(model, video_path, sequence_length=sequence_length, return_clip=True)
print(f"{video_path.name}: {prediction.label}  (confidence {prediction.confidence:.1%}, "
      f"P(fake) {prediction.prob_fake:.3f}, {prediction.frames_used} frames)"
      if prediction.status == "ok" else f"{video_path.name}: no verdict: {prediction.status} - {prediction.reason}")
pd.DataFrame([prediction.to_dict()])"""),
        ("## 3. The faces the model saw\n\nThe sampled face crops, in time order, as they went into the model.",
         """\
if clip is not None:
    from dfdlib.explain import clip_to_images

    faces = clip_to_images(clip)
    fig, axes = plt.subplots(1, len(faces), figsize=(1.2 * len(faces), 1.6), squeeze=False)
    for ax, face in zip(axes[0], faces, strict=True):
        ax.imshow(face)
        ax.axis("off")
    fig.suptitle(f"{video_path.name}: {prediction.label}")
    plt.show()"""),
        ("## 4. Why: Grad-CAM\n\nHeat maps of the evidence for *fake* over the frames that mattered most "
         "(Grad-CAM on the CNN's last feature map). Also saved as PNG in `out_dir/gradcam/`.",
         """\
if explain and clip is not None:
    from dfdlib.explain import cam_figure

    cam = dfdlib.grad_cam(model, clip)
    saved = dfdlib.save_cam_overlays(clip, cam, out / "gradcam" / video_path.stem, top_k=top_k)
    print(f"{len(saved)} overlays in {saved[0].parent}" if saved else "no overlays")
    display(cam_figure(clip, cam, top_k=top_k, title=f"{video_path.name}: {prediction.label}"))"""),
        ("## 5. Evaluate on a labelled split\n\nThe model against the `split` rows of the labels CSV: accuracy, "
         "precision, recall, F1, ROC-AUC, AP, EER, confusion matrix and ROC curve, written to "
         "`out_dir/metrics.json` and PNG files. The threshold is the one calibrated on the validation split. "
         "When the labels have a `method` column (`dfd labels` writes one for FF++, Celeb-DF, DFDC …), a table "
         "shows each method's fakes scored against all the real videos, and `roc_by_method.png` a curve per method.",
         ["""\
if split:
    if make_inputs and not csv_path.exists():
        dfdlib.preprocess_dataset(videos, processed, inputs_config)
        demo.ensure_labels(processed, csv_path)
    metrics = dfdlib.evaluate_model(model, csv_path, processed, split=split, out_dir=out, threshold="val")
    print(format_metrics_table(metrics))
    if "by_method" in metrics:  # per method / source: each method's fakes against all reals
        display(pd.DataFrame.from_dict(metrics["by_method"], orient="index").round(3))""",
          """\
for png in sorted(out.glob("*.png")) if split else []:
    display(Image(filename=str(png)))"""]),
        ("## 6. Try your own video (interactive)\n\nUpload a video, pick the sequence length and a model from the "
         "registry, press *Predict*. (Under papermill this panel is only drawn; use the `video` and "
         "`model_path` parameters instead.)",
         WIDGETS),
    ]
    return notebook(
        "Predict: is this video real or fake?",
        "Loads a trained model (chosen from the model registry), predicts a video — verdict and confidence — "
        "shows the face crops it looked at and Grad-CAM overlays of what drove the decision, and evaluates "
        "the model on the labelled test split.\n\n" + RUN_HOW.format(name="Predict"),
        params, derived, sections)


# Widgets: upload + sequence-length slider + model dropdown filled from the registry for that length.
WIDGETS = """\
import ipywidgets as widgets

usable = registry[registry["error"].isna()]
lengths = sorted(int(s) for s in usable["sequence_length"].unique())
upload = widgets.FileUpload(accept="video/*", multiple=False, description="Video")
length = widgets.SelectionSlider(options=lengths or [sequence_length], description="Frames",
                                 value=sequence_length if sequence_length in lengths else (lengths or [sequence_length])[0])
choice = widgets.Dropdown(description="Model", layout=widgets.Layout(width="420px"))
button = widgets.Button(description="Predict", button_style="primary")
panel = widgets.Output()


def show_models(change=None):
    rows = usable[usable["sequence_length"] == length.value]
    choice.options = [(f"{r.name} ({r.accuracy:.1f} %)", r.path) for r in rows.itertuples()]


def on_predict(_):
    with panel:
        panel.clear_output()
        if not upload.value or not choice.value:
            print("choose a video and a model first")
            return
        item = upload.value[0]
        # the upload lives in a private temp folder only while it is being predicted
        with dfdlib.uploaded_video(item["name"], item["content"]) as path:
            p = dfdlib.predict_video(dfdlib.load_model(choice.value), path, sequence_length=length.value)
        print(f"{path.name}: {p.label} ({p.confidence:.1%})" if p.status == "ok" else f"{p.status}: {p.reason}")


length.observe(show_models, names="value")
button.on_click(on_predict)
show_models()
widgets.VBox([widgets.HBox([upload, length]), widgets.HBox([choice, button]), panel])"""


BUILDERS = {
    "preprocessing.ipynb": preprocessing,
    "Create_csv_from_glob.ipynb": create_csv,
    "Model_and_train_csv.ipynb": train_nb,
    "Predict.ipynb": predict_nb,
}


def build_all(out_dir: Path = NOTEBOOKS) -> list[Path]:
    """Write every notebook (validated, no outputs, stable cell ids) into `out_dir`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, build in BUILDERS.items():
        nb = build()
        for i, cell in enumerate(nb.cells):  # stable ids keep diffs of regenerated notebooks small
            cell["id"] = f"{Path(name).stem.lower().replace('_', '-')[:20]}-{i:02d}"
        nbformat.validate(nb)
        path = out_dir / name
        path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=NOTEBOOKS, help="output folder (default: notebooks/)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the notebooks in --out differ from what this script generates")
    args = parser.parse_args(argv)
    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            stale = [p.name for p in build_all(Path(tmp))
                     if not (args.out / p.name).exists() or (args.out / p.name).read_text() != p.read_text()]
        if stale:
            print(f"out of date: {stale}; run python scripts/make_notebooks.py", file=sys.stderr)
            return 1
        return 0
    for path in build_all(args.out):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
