"""Benchmark the trainer against a re-implementation of the original notebook's training loop.

Both sides train the same ResNeXtLSTM (same backbone, image size, clip length, batch size) on the same
synthetic processed set (`processed/<real|fake>/<video>/frame_<i>.jpg`, JPEG face-sized crops), in one
process, alternating, and report training clips/s (the training loop only, validation excluded):
  original  the guide's Model_and_train_csv loop: a Dataset that reads every frame with cv2 and runs
            ToPILImage → Resize → ToTensor → Normalize per frame, every epoch; fp32; Adam; batch 4;
            shuffle; `loss.item()` per step.
  ours      `dfdlib.train` with its defaults (uint8 clip cache, clip-level transforms v2 with
            augmentation, AdamW, cosine schedule, grad clipping, amp="auto": bf16 on GPUs of compute
            capability >= 8.0 and on CPUs with AVX512-BF16/AMX, fp16 on older GPUs, else off; channels_last
            on CUDA) — and again with amp="bf16" forced.
The data_wait column is ours' fraction of step time spent waiting for the DataLoader (history.csv).
Epoch 1 of ours fills the cache, so "steady" = epochs 2.. and "all" = every epoch are both reported.
Writes benchmarks/results/train.md.

    python benchmarks/train.py [--quick] [--threads 1] [--device cpu|cuda] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETUPS = {  # name -> (backbone, image_size, sequence_length, train videos per class, frames, crop px)
    "tiny@112": ("tiny", 112, 10, 12, 12, 160),
    "resnext50@112": ("resnext50_32x4d", 112, 4, 4, 6, 160),
}


def make_processed(root: Path, n_per_class: int, n_frames: int, crop: int, seed: int = 0) -> Path:
    """Synthetic processed set + labels.csv (train rows, plus 2 val clips per class)."""
    import cv2
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    yy, xx = np.mgrid[:crop, :crop]
    checker = (((yy // 6) + (xx // 6)) % 2 * 40 - 20)[..., None]
    for label, cls in ((0, "real"), (1, "fake")):
        for k in range(n_per_class + 2):
            folder = root / cls / f"v{k}"
            folder.mkdir(parents=True)
            base = rng.integers(60, 196, size=3)
            for i in range(n_frames):
                img = base + rng.normal(0, 12, (crop, crop, 3)) + (checker if label else 0)
                cv2.imwrite(str(folder / f"frame_{i}.jpg"), np.clip(img, 0, 255).astype(np.uint8),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
            rows.append({"filename": f"{cls}/v{k}", "label": label, "split": "train" if k < n_per_class else "val"})
    csv = root.parent / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


# ------------------------------------------------------------------------- the original notebook loop
class OriginalDataset:
    """The notebook's video_dataset, reading processed frame folders: cv2 decode + per-frame PIL transforms."""

    def __init__(self, folders, labels, sequence_length, transform):
        self.folders, self.labels, self.count, self.transform = folders, labels, sequence_length, transform

    def __len__(self):
        return len(self.folders)

    def __getitem__(self, idx):
        import cv2
        import torch

        frames = []
        for i in range(self.count):
            frame = cv2.imread(str(self.folders[idx] / f"frame_{i}.jpg"))
            frames.append(self.transform(frame))
        return torch.stack(frames)[: self.count], self.labels[idx]


def run_original(root: Path, csv: Path, backbone: str, image_size: int, seq: int, epochs: int, device: str,
                 workers: int) -> list[float]:
    """Train like the original notebook; returns training clips/s per epoch."""
    import pandas as pd
    import torch
    from torch import nn
    from torchvision import transforms

    from dfdlib.model import ResNeXtLSTM

    df = pd.read_csv(csv)
    df = df[df["split"] == "train"]
    tf = transforms.Compose([transforms.ToPILImage(), transforms.Resize((image_size, image_size)),
                             transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = OriginalDataset([root / f for f in df["filename"]], df["label"].tolist(), seq, tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers)
    torch.manual_seed(0)
    model = ResNeXtLSTM(2, hidden_dim=2048 if backbone != "tiny" else 64, backbone=backbone).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, weight_decay=1e-5)
    criterion = nn.CrossEntropyLoss().to(device)
    speeds = []
    for _ in range(epochs):
        model.train()
        t0, n = time.perf_counter(), 0
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = model(inputs)
            loss = criterion(outputs, targets)
            _ = loss.item()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n += len(targets)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        speeds.append(n / (time.perf_counter() - t0))
    return speeds


def run_ours(root: Path, csv: Path, out: Path, backbone: str, image_size: int, seq: int, epochs: int,
             device: str, workers: int, amp: str) -> list[float]:
    from dfdlib.training.loop import TrainConfig, train

    cfg = TrainConfig(dataset_path=str(root), csv_file=str(csv), out_dir=str(out), sequence_length=seq,
                      batch_size=4, num_epochs=epochs, device=device, num_workers=workers, backbone=backbone,
                      weights=None, hidden_dim=2048 if backbone != "tiny" else 64, image_size=image_size,
                      amp=amp, early_stopping=0, show_progress=False)
    res = train(cfg)
    shutil.rmtree(out, ignore_errors=True)
    waits = res.history["data_wait"].tolist() if "data_wait" in res.history else []
    return res.history["clips_per_s"].tolist(), waits


def cpu_model() -> str:
    """The CPU's model name and its native-bf16 flags (what amp="auto" goes by), e.g. "AMD EPYC; avx512_bf16"."""
    from dfdlib.training.amp import cpu_bf16_flags

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.partition(":")[2].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}; native bf16: {', '.join(cpu_bf16_flags()) or 'none'}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny setup only, fewer epochs (a smoke run)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads for both sides")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for both sides")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2, help="alternate original/ours this many times")
    p.add_argument("--setups", default=",".join(SETUPS), help=f"comma list of {', '.join(SETUPS)}")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "train.md"))
    args = p.parse_args(argv)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # also tells dfdlib.train not to change it
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    setups = ["tiny@112"] if args.quick else args.setups.split(",")
    epochs = 2 if args.quick else args.epochs
    repeats = 1 if args.quick else args.repeats
    on_gpu = args.device.startswith("cuda")
    amps = ["auto", "bf16"]
    load_start = os.getloadavg()[0]
    rows = []
    waits: dict[tuple[str, str], list[float]] = {}
    work = Path(tempfile.mkdtemp(prefix="dfd-bench-train-"))
    try:
        for name in setups:
            backbone, size, seq, n, frames, crop = SETUPS[name]
            root = work / name / "processed"
            csv = make_processed(root, n, frames, crop)
            res: dict[str, list[list[float]]] = {"original": [], **{f"ours amp={a}": [] for a in amps}}
            for r in range(repeats):
                res["original"].append(run_original(root, csv, backbone, size, seq, epochs, args.device, args.workers))
                for a in amps:
                    speeds, wait = run_ours(root, csv, work / "run", backbone, size, seq, epochs, args.device,
                                            args.workers, a)
                    res[f"ours amp={a}"].append(speeds)
                    waits.setdefault((name, f"ours amp={a}"), []).extend(wait[1:] or wait)
                print(f"[{name}] repeat {r + 1}: " + ", ".join(f"{k} {np.median(v[-1][1:] or v[-1]):.2f}"
                                                                 for k, v in res.items()), flush=True)
            base = np.median([s for run in res["original"] for s in run[1:] or run])
            for k, runs in res.items():
                steady = float(np.median([s for run in runs for s in (run[1:] or run)]))
                every = float(np.median([np.mean(run) for run in runs]))
                wait = waits.get((name, k))
                rows.append((name, f"{backbone}, {size}px, T={seq}, batch 4, {2 * n} train clips", k, steady, every,
                             steady / base, f"{np.median(wait):.2f}" if wait else "—"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    dev = torch.cuda.get_device_name(0) if on_gpu else cpu_model()
    lines = [
        "# Training throughput: dfdlib trainer vs the original notebook loop",
        "",
        f"Device: {args.device} ({dev}), torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), "
        f"{os.cpu_count()} CPUs visible, DataLoader workers {args.workers} (both sides), {epochs} epochs x "
        f"{repeats} alternating repeats, medians. Command: `python benchmarks/train.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`. Load average (1 min) {load_start:.1f} at "
        f"start, {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| setup | what | trainer | clips/s steady (epochs 2+) | clips/s all epochs | speed-up vs original (steady) "
        "| data_wait (steady) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d:.2f} | {e:.2f} | {f:.2f}x | {g} |" for a, b, c, d, e, f, g in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not args.quick:
        # keep the hand-written "## Notes" section of an earlier run below the fresh table
        old = out.read_text() if out.exists() else ""
        notes = old[old.index("\n## Notes"):] if "\n## Notes" in old else ""
        out.write_text(text + notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
