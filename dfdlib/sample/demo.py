"""The whole pipeline on the embedded sample set: `make demo`, `dfd demo`, and the notebooks' fallbacks.

Every step calls the same public functions that the CLI and the notebooks call; the `ensure_*` helpers
only decide whether a step's output already exists (each stage is resumable anyway).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from dfdlib.config import check_choices, config_choices, config_help, option
from dfdlib.labels.io import read_labels
from dfdlib.labels.metadata import from_folders
from dfdlib.predict.evaluate import evaluate_model
from dfdlib.predict.verdict import predict_many
from dfdlib.preprocess.config import PreprocessConfig
from dfdlib.preprocess.run import preprocess_dataset
from dfdlib.sample.dataset import SampleConfig, make_sample_dataset
from dfdlib.training.loop import TrainConfig, train
from dfdlib.utils import atomic_write, write_csv

_TRAIN_HELP = config_help(TrainConfig)


@dataclass
class DemoConfig:
    """Settings of `run_demo` and `dfd demo`; each field's help is in its metadata (`dfdlib.config.config_help`)."""

    data: str = option("data/sample", "sample videos (<data>/real, <data>/fake), generated if absent")
    processed: str = option("data/sample_processed", "face crops written by the preprocess stage")
    labels: str = option("labels/sample_labels.csv", "labels CSV with a saved 70/15/15 split")
    out: str = option("runs/demo", "run folder: model file, metrics, plots, predictions")
    smoke: bool = option(False, "tiny sizes for CI and notebook smoke runs (seconds, not minutes)")
    seed: int = option(0, "one seed for data generation, split and training")
    device: str = option("auto", _TRAIN_HELP["device"])
    fakes: str = option("none", f"{_TRAIN_HELP['fakes']}; val/test keep the sample's fakes",
                        config_choices(TrainConfig)["fakes"])

    def __post_init__(self):
        check_choices(self)


# Sizes for the full demo (≤ 10 min on 2 CPU cores) and the smoke run (CI, notebooks under nbval).
FULL = dict(n_real=40, n_fake=40, seconds=3.0, width=640, height=480,
            frames=16, crop=112, sequence_length=8, image_size=112, epochs=15, batch_size=8, hidden_dim=64)
SMOKE = dict(n_real=3, n_fake=3, seconds=2.0, width=320, height=240,
             frames=8, crop=64, sequence_length=8, image_size=64, epochs=1, batch_size=4, hidden_dim=32)


def sizes(smoke: bool) -> dict:
    """The size preset used by the demo and the notebooks' defaults."""
    return dict(SMOKE if smoke else FULL)


def ensure_sample(data_dir: str | Path = "data/sample", smoke: bool = False, seed: int = 0) -> Path:
    """Generate the sample video set into `data_dir`; returns at once when a finished set is there."""

    s = sizes(smoke)
    cfg = SampleConfig(n_real=s["n_real"], n_fake=s["n_fake"], seconds=s["seconds"],
                       width=s["width"], height=s["height"], seed=seed)
    return make_sample_dataset(data_dir, cfg)


def preprocess_config(smoke: bool = False):
    """The PreprocessConfig the demo uses (frames per video, crop size)."""

    s = sizes(smoke)
    return PreprocessConfig(frames=s["frames"], size=s["crop"])


def ensure_processed(src: str | Path, out: str | Path, smoke: bool = False, workers: int = 1,
                     config=None) -> Path:
    """Run (or resume) the preprocess stage; finished videos are skipped, so this is cheap when done.

    `config` (a PreprocessConfig) overrides the demo's preset.
    """

    preprocess_dataset(src, out, config or preprocess_config(smoke), workers=workers)
    return Path(out)


def ensure_labels(processed: str | Path, csv: str | Path, seed: int = 0) -> Path:
    """Write the labels CSV (with a saved split) from the processed folders unless it exists."""

    csv = Path(csv)
    if not csv.exists():
        from_folders(processed, out_csv=csv, seed=seed)
    return csv


def train_config(processed: str | Path, csv: str | Path, out: str | Path, smoke: bool = False,
                 seed: int = 0, device: str = "auto", fakes: str = "none"):
    """A TrainConfig with the tiny CPU backbone, sized for the demo or a smoke run; `fakes` as in
    TrainConfig ("self-blend": train on the real videos and their self-blends only)."""

    s = sizes(smoke)
    return TrainConfig(
        dataset_path=str(processed), csv_file=str(csv), out_dir=str(out),
        sequence_length=s["sequence_length"], batch_size=s["batch_size"], num_epochs=s["epochs"],
        learning_rate=3e-3, weight_decay=1e-4, backbone="tiny", weights=None, hidden_dim=s["hidden_dim"],
        image_size=s["image_size"], seed=seed, device=device, num_workers=0, early_stopping=0,
        warmup_epochs=0 if smoke else 1, fakes=fakes,
    )


def ensure_model(out: str | Path, processed: str | Path, csv: str | Path, smoke: bool = False,
                 seed: int = 0, device: str = "auto") -> Path:
    """Return the best model file in run folder `out`, training one first if there is none."""

    found = sorted(Path(out).glob("model_*_acc_*_final_data.pt"))
    if found:
        return found[-1]
    return Path(train(train_config(processed, csv, out, smoke, seed, device)).best_model_path)


def run_demo(config: DemoConfig | None = None, **overrides) -> dict:
    """Sample set → faces → labels → tiny model → test metrics → one prediction. Returns the summary dict.

    Writes into `config.out`: the model file, metrics.json, plots/*.png, predictions.csv, summary.json.
    """
    from dfdlib.model import load_model

    cfg = dataclasses.replace(config or DemoConfig(), **overrides)
    out = Path(cfg.out)
    t0 = time.time()
    steps = {}

    def step(name: str) -> None:
        steps[name] = round(time.time() - t0 - sum(steps.values()), 1)
        print(f"[demo] {name} done ({steps[name]} s)", flush=True)

    ensure_sample(cfg.data, cfg.smoke, cfg.seed)
    step("sample videos")
    ensure_processed(cfg.data, cfg.processed, cfg.smoke)
    step("preprocess")
    ensure_labels(cfg.processed, cfg.labels, cfg.seed)
    step("labels")
    result = train(train_config(cfg.processed, cfg.labels, out, cfg.smoke, cfg.seed, cfg.device, cfg.fakes))
    step("train")
    model = load_model(result.best_model_path)
    test = evaluate_model(model, cfg.labels, cfg.processed, split="test", out_dir=out / "evaluate",
                          threshold="val")
    step("evaluate")
    # Predict the held-out test videos from the raw files: the same path a user's new video takes.
    labels = read_labels(cfg.labels)
    test_rows = labels[labels["split"] == "test"]
    videos = [Path(cfg.data) / f"{name}.mp4" for name in test_rows["filename"]]
    preds = predict_many(model, videos, names=list(test_rows["filename"]), progress=False)
    preds.insert(1, "true_label", ["FAKE" if y == 1 else "REAL" for y in test_rows["label"]])
    write_csv(preds, out / "predictions.csv")
    first = preds.iloc[0]
    print(f"[demo] predict {first['video']}: {first['label']} (confidence {first['confidence']:.2f}, "
          f"truth {first['true_label']})")
    step("predict")
    summary = {
        "model": str(result.best_model_path),
        "test_roc_auc": test.get("roc_auc"),
        "test_accuracy": test.get("accuracy"),
        "test_f1": test.get("f1"),
        "n_test": test.get("n"),
        "threshold": test.get("threshold"),
        "predictions_csv": str(out / "predictions.csv"),
        "n_predicted": int(len(preds)),
        "predicted_correctly": int((preds["label"] == preds["true_label"]).sum()),
        "run_dir": str(out),
        "seconds": steps,
    }
    with atomic_write(out / "summary.json") as f:
        json.dump(summary, f, indent=2)
    print(f"\nDemo finished in {time.time() - t0:.0f} s. Results in {out}/")
    print_summary(summary, out)
    return summary


def print_summary(summary: dict, out: Path) -> None:
    """The demo's closing lines, numbers rounded for reading (summary.json keeps them exact)."""
    def num(v, spec: str) -> str:
        return "n/a" if v is None else format(v, spec)

    print(f"  model file      : {summary['model']}")
    print(f"  test ROC-AUC    : {num(summary['test_roc_auc'], '.3f')}  (accuracy "
          f"{num(summary['test_accuracy'], '.1%')}, n={summary['n_test']})")
    print(f"  test metrics    : {out / 'evaluate'}/ (metrics JSON, confusion.png, roc.png)")
    print(f"  training curves : {out / 'plots'}/")
    print(f"  predictions     : {summary['predictions_csv']} ({summary['predicted_correctly']}/"
          f"{summary['n_predicted']} held-out test videos right)")
