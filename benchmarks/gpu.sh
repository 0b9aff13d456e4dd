#!/usr/bin/env bash
# GPU checks and benchmarks in one run (under 10 minutes on a T4/L4/A100/H100), results in benchmarks/results/gpu.md:
#   1. the CUDA tests (pytest -m gpu: fp16/bf16 + channels_last step, resume on CUDA, CUDA vs CPU prediction)
#   2. training clips/s vs the original notebook loop on CUDA (goal >= 3x) with data_wait: benchmarks/train.py
#   3. prediction latency on CUDA vs CPU: one 10 s video, warm model, face extraction + forward
#   4. face detection (torch MTCNN) frames/s on CUDA vs the CPU, batched: benchmarks/detectors.py. No TensorFlow
#      on GPU machines: the TF-CPU figures are in benchmarks/RESULTS.md (same frames, measured on a CPU box)
#   5. a dataset's face stage on CUDA: preprocess_dataset with 1 worker vs 8 threads sharing one MTCNN, batched
#      over their videos (dfdlib.preprocess.batching), videos/s and the same boxes
# Usage: benchmarks/gpu.sh [python]   (default: .venv/bin/python, else python3). Exit status: 2 without a CUDA
# GPU, 1 if a step failed (gpu.md still says which), 0 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=benchmarks/results/gpu.md
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dfd-gpu.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>"$WORK/cuda.err"; then
    echo "benchmarks/gpu.sh: no CUDA GPU visible to torch ($("$PY" -c 'import torch; print("torch", torch.__version__, "cuda build", torch.version.cuda)' 2>&1 | tail -1))." >&2
    echo "Run it on a machine with an NVIDIA GPU and a CUDA build of torch (Colab: Runtime > Change runtime type > GPU); nothing was written." >&2
    exit 2
fi

status=0
step() {  # step NAME SECONDS CMD...: run with a time limit, keep its output, note failure
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "== $name (limit ${limit}s)"
    timeout --signal=INT --kill-after=20 "$limit" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$WORK/$name.log"
    echo "$name: rc $rc, $((SECONDS - t0)) s" | tee -a "$WORK/steps.txt"
    [ $rc -eq 0 ] || status=1
}

step tests 200 "$PY" -m pytest -q -m gpu -rs -p no:cacheprovider tests/test_gpu.py
step train 200 "$PY" benchmarks/train.py --device cuda --epochs 3 --repeats 2 --out "$WORK/train.md"
step predict 120 "$PY" - "$WORK/predict.md" <<'EOF'
"""Warm prediction latency of one 10 s 640x480 video, 20-frame ResNeXt50-LSTM (random weights), CUDA vs CPU."""
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torchvision  # noqa: F401  (before TensorFlow)

from dfdlib import SampleConfig, load_model, make_sample_dataset, predict_video
from dfdlib.data import frames_to_clip
from dfdlib.preprocess.faces import PreprocessConfig, default_detector, extract_faces
from dfdlib.model import ResNeXtLSTM, save_model

work = Path(sys.argv[1]).parent
video = next((make_sample_dataset(work / "video", SampleConfig(n_real=1, n_fake=0, seconds=10, width=640, height=480,
                                                               seed=3), progress=False) / "real").glob("*.mp4"))
detector = default_detector()
rows = []
for size in (112, 224):
    path = work / f"model_20_acc_0.0_bench_{size}.pt"
    save_model(path, ResNeXtLSTM(backbone="resnext50_32x4d", weights=None).eval(),
               {"sequence_length": 20, "image_size": size, "sampling": "even", "threshold": 0.5,
                "preprocess": asdict(PreprocessConfig(frames=20, size=size)), "class_names": ["REAL", "FAKE"]})
    res = extract_faces(video, PreprocessConfig(frames=20, size=size), detector)
    clip = frames_to_clip(res.crops, 20, size)[None]
    for device in ("cuda", "cpu"):
        model = load_model(path, device)
        predict_video(model, video, detector=detector, device=device)  # warm-up (cudnn, TF graphs)
        walls, fwd = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            pred = predict_video(model, video, detector=detector, device=device)
            walls.append(time.perf_counter() - t0)
            x = clip.to(device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            fwd.append(time.perf_counter() - t0)
        assert pred.status == "ok", pred
        rows.append((size, device, statistics.median(walls), statistics.median(fwd)))
lines = ["| image size | device | predict_video wall s (warm, median of 3) | model forward s |", "|---:|---|---:|---:|"]
lines += [f"| {s} | {d} | {w:.3f} | {f:.4f} |" for s, d, w, f in rows]
Path(sys.argv[1]).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
step detectors 150 "$PY" benchmarks/detectors.py --device cuda --no-tf --repeats 5 --out "$WORK/detectors.md"
step dataset 200 "$PY" - "$WORK/dataset.md" <<'EOF'
"""preprocess_dataset on CUDA: 1 worker (one video at a time) vs 8 threads whose detect() calls are batched."""
import json
import sys
import time
from pathlib import Path

import numpy as np

from dfdlib import SampleConfig, make_sample_dataset
from dfdlib.preprocess.config import PreprocessConfig
from dfdlib.preprocess.detector import default_detector
from dfdlib.preprocess.run import preprocess_dataset

work = Path(sys.argv[1]).parent
N, SECONDS = 12, 8
src = make_sample_dataset(work / "videos", SampleConfig(n_real=N, n_fake=0, seconds=SECONDS, width=1280, height=720,
                                                        seed=5), progress=False)
cfg = PreprocessConfig(frames=20, keyframes=1)  # every sampled frame detected: the detector's share is largest
assert str(default_detector(cfg.detector).device).startswith("cuda")
rows = []
for workers in (1, 8, 1, 8):
    out = work / f"out_{workers}_{len(rows)}"
    t0 = time.perf_counter()
    rep = preprocess_dataset(src, out, cfg, workers=workers, progress=False)
    rows.append((workers, time.perf_counter() - t0, out))
    assert (rep["status"] == "ok").all(), rep
best = {w: min(t for k, t, _ in rows if k == w) for w in (1, 8)}
diffs = []
for f in rows[0][2].rglob("faces.json"):
    a, b = (np.array(json.loads(p.read_text())["boxes"]) for p in (f, rows[1][2] / f.relative_to(rows[0][2])))
    diffs.append(float(np.abs(a - b).max()))
lines = ["| workers | how | s (best of 2) | videos/s | vs 1 worker |", "|---:|---|---:|---:|---:|"]
for w, how in ((1, "one process, one video at a time"), (8, "8 threads, detection batched over their videos")):
    lines.append(f"| {w} | {how} | {best[w]:.2f} | {N / best[w]:.2f} | {best[1] / best[w]:.2f}x |")
lines.append(f"\nLargest box difference between the two runs: {max(diffs):.3f} px ({N} videos, 1280x720, {SECONDS} s).")
Path(sys.argv[1]).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF

section() {  # section N TITLE STEP FIRST_LINE: the step's table from line FIRST_LINE on, else its log's tail
    echo
    echo "## $1. $2"
    echo
    if [ -s "$WORK/$3.md" ]; then tail -n +"$4" "$WORK/$3.md"; else echo '```'; tail -n 20 "$WORK/$3.log"; echo '```'; fi
}

{
    echo "# GPU checks and benchmarks (benchmarks/gpu.sh)"
    echo
    "$PY" -c 'import torch, platform; p = torch.cuda.get_device_properties(0); print(f"GPU: {p.name}, compute capability {p.major}.{p.minor}, {p.total_memory / 2**30:.0f} GiB; torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; Python {platform.python_version()}")'
    echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); host CPUs: $(nproc); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "Steps (exit status, seconds):"
    echo
    sed 's/^/- /' "$WORK/steps.txt"
    echo
    echo "## 1. CUDA tests (pytest -m gpu tests/test_gpu.py)"
    echo
    echo '```'
    tail -n 15 "$WORK/tests.log"
    echo '```'
    section 2 "Training throughput on CUDA vs the original notebook loop (goal >= 3x)" train 3
    section 3 "Prediction latency, CUDA vs CPU (one 10 s 640x480 video, 20 frames, ResNeXt50-LSTM)" predict 1
    section 4 "Face detection, torch MTCNN on CUDA vs the CPU (same boxes; TF-CPU figures: benchmarks/RESULTS.md)" \
        detectors 3
    section 5 "A dataset's face stage on CUDA: 1 worker vs 8 threads batched over videos" dataset 1
} >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
echo "wrote $OUT (status $status)"
exit $status
