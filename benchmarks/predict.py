"""End-to-end prediction time for one 10 s video (20-frame model): dfdlib vs the original app's approach.

The original Django app, per request: built the model and loaded its weights, decoded the whole video
into a list of frames, ran face detection on full-resolution frames, then predicted. Its detector was
face_recognition (dlib), which is not installed here; the baseline uses MTCNN on every full-resolution
frame instead (the guide's preprocessing recipe), keeping the first `sequence_length` faces as the app did.
Ours: the model and detector are loaded once, only the sampled frames are decoded (streamed) and
detection runs on a downscaled copy, exactly as `dfd predict` / `predict_video` do.

Both sides run the same ResNeXt50-LSTM architecture (random weights: timing does not depend on them)
on the same video, side by side in one process. Not a test: prints a table and writes it to
benchmarks/results/predict.md.

The app rows (skipped without Gradio, or with --no-app) time one video sent through the web app
(`dfd app`, started in this process on a free local port) with gradio_client: upload, queue, the app's
analysis (predict_video + per-window scores; with Grad-CAM in the second row) and the result files.

    python benchmarks/predict.py [--seconds 10] [--repeats 3] [--image-size 112 224] [--no-app]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "_work" / "predict"


def make_video(seconds: float) -> Path:
    """One real-face 640x480 video from the embedded sample generator (cached in benchmarks/_work)."""
    from dfdlib import SampleConfig, make_sample_dataset

    out = make_sample_dataset(WORK / f"video_{seconds:g}s", SampleConfig(n_real=1, n_fake=0, seconds=seconds,
                                                                          width=640, height=480, seed=3),
                              progress=False)
    return next((out / "real").glob("*.mp4"))


def make_models(seq: int, image_size: int) -> tuple[Path, Path]:
    """Our model file (format + metadata) and an original-style bare state_dict, same architecture size."""
    import torch

    from dfdlib.model import LegacyResNeXtLSTM, ResNeXtLSTM, save_model
    from dfdlib.preprocess.faces import PreprocessConfig

    ours = WORK / f"model_{seq}_acc_0.0_bench_{image_size}.pt"
    if not ours.is_file():
        meta = {"sequence_length": seq, "image_size": image_size, "sampling": "even", "threshold": 0.5,
                "preprocess": asdict(PreprocessConfig(frames=seq, size=image_size)),
                "class_names": ["REAL", "FAKE"]}
        save_model(ours, ResNeXtLSTM(backbone="resnext50_32x4d", weights=None).eval(), meta)
    legacy = WORK / f"model_0_acc_{seq}_frames_original.pt"
    if not legacy.is_file():
        torch.save(LegacyResNeXtLSTM().state_dict(), legacy)
    return ours, legacy


def original_predict(video: Path, legacy_file: Path, seq: int, detector, image_size: int = 112) -> str:
    """The original app's request: build model, decode all, detect on every full-res frame, predict."""
    import cv2
    import torch
    from torchvision.transforms import v2

    from dfdlib.model import LegacyResNeXtLSTM

    model = LegacyResNeXtLSTM()  # built per request, as views.py did
    model.load_state_dict(torch.load(legacy_file, map_location="cpu", weights_only=True))
    model.eval()
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:  # the whole video into a list
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]
    dets = detector.detect(rgb, max_side=0)  # every frame at full resolution
    crops = []
    for f, d in zip(rgb, dets, strict=True):
        if len(d) and len(crops) < seq:
            x1, y1, x2, y2 = (max(0, int(v)) for v in d[0, :4])
            crops.append(f[y1:y2, x1:x2])
    tf = v2.Compose([v2.ToImage(), v2.Resize((image_size, image_size), antialias=True),
                     v2.ToDtype(torch.float32, scale=True),
                     v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    clip = torch.stack([tf(c) for c in crops])[None]
    with torch.inference_mode():
        logits = model(clip)
    return "REAL" if int(logits.argmax(1)) == 1 else "FAKE"


def app_rows(model_file: Path, video: Path, seq: int, size: int, repeats: int) -> list[tuple]:
    """(name, wall, cpu) rows: one video through the web app via gradio_client, warm, without/with Grad-CAM."""
    import shutil

    from gradio_client import Client, handle_file

    from dfdlib.app.web import launch_app

    models = WORK / f"app_models_{size}"
    models.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_file, models / model_file.name)
    app = launch_app(models, port=None, examples=None, device="cpu", block=False, quiet=True)
    rows = []
    try:
        client = Client(app.local_url, verbose=False, download_files=False)

        def request(explain):
            verdict = client.predict([handle_file(str(video))], str(seq), "best", explain, api_name="/analyse")[0]
            assert "confidence" in verdict, verdict  # a verdict, not an error message
            return verdict

        request(False)  # the first request loads the model into the app's cache
        for explain in (False, True):
            # The server runs in this process, so CPU s counts the app's analysis as for predict_video.
            wall, cpu, _ = timed(lambda e=explain: request(e), repeats)
            what = "predict_video + window scores" + (" + Grad-CAM" if explain else "")
            rows.append((f"dfdlib web app via gradio_client, {size} px, warm ({what}, upload, result files)",
                         wall, cpu))
    finally:
        app.close()
    return rows


def decode_only(video: Path) -> None:
    import cv2

    cap = cv2.VideoCapture(str(video))
    while cap.grab():
        pass
    cap.release()


def timed(fn, repeats: int = 1):
    """Median wall and CPU seconds (process time: all threads, TensorFlow's included) of fn()."""
    walls, cpus, out = [], [], None
    for _ in range(max(1, repeats)):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="video length")
    ap.add_argument("--sequence-length", type=int, default=20)
    ap.add_argument("--image-size", type=int, nargs="+", default=[112, 224], help="our model's input size(s)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of our warm pipeline (median)")
    ap.add_argument("--baseline-repeats", type=int, default=1, help="timed runs of the original approach")
    ap.add_argument("--no-app", action="store_true", help="skip the web app rows")
    ap.add_argument("--out", default=str(ROOT / "results" / "predict.md"))
    args = ap.parse_args()

    import torch
    import torchvision  # noqa: F401  (before TensorFlow: importing it after TF segfaults here)

    from dfdlib.data import frames_to_clip
    from dfdlib.model import load_model
    from dfdlib.predict.verdict import predict_video
    from dfdlib.preprocess.faces import PreprocessConfig, default_detector, extract_faces
    from dfdlib.utils import atomic_write
    from dfdlib.video import probe_video

    seq = args.sequence_length
    video = make_video(args.seconds)
    info = probe_video(video)
    load_start = os.getloadavg()[0]
    detector = default_detector()
    detector.detect([torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()])  # build TF graphs outside timing
    rows = []  # (name, wall, cpu)
    for size in args.image_size:
        ours_file, legacy_file = make_models(seq, size)
        wall, cpu, model = timed(lambda f=ours_file: load_model(f))
        first = predict_video(model, video, detector=detector)
        rows.append((f"dfdlib first request incl. load_model ({size} px)", wall + first.seconds, None))
        wall, cpu, pred = timed(lambda m=model: predict_video(m, video, detector=detector), args.repeats)
        assert pred.status == "ok", pred
        rows.append((f"**dfdlib predict_video, {size} px, model loaded once**", wall, cpu))
        cfg = PreprocessConfig(frames=seq, size=size)
        wall_f, cpu_f, res = timed(lambda c=cfg: extract_faces(video, c, detector), args.repeats)
        rows.append((f"&nbsp;&nbsp;stage: extract_faces ({seq} sampled frames, MTCNN at <= 480 px)", wall_f, cpu_f))
        clip = frames_to_clip(res.crops, seq, size)[None]

        def forward(m=model, x=clip):
            with torch.inference_mode():
                return m(x)

        wall_m, cpu_m, _ = timed(forward, args.repeats)
        rows.append((f"&nbsp;&nbsp;stage: ResNeXt50-LSTM forward, {seq} x {size} px", wall_m, cpu_m))
        if not args.no_app:
            try:
                import gradio  # noqa: F401
            except ModuleNotFoundError:
                print("gradio not installed (pip install 'dfdlib[app]'): no app rows")
                args.no_app = True
            else:
                rows += app_rows(ours_file, video, seq, size, args.repeats)
    t_base, c_base, _ = timed(lambda: original_predict(video, legacy_file, seq, detector), args.baseline_repeats)
    rows.append(("original approach (112 px): build model + decode all + MTCNN on every full-res frame",
                 t_base, c_base))
    wall, cpu, _ = timed(lambda: decode_only(video), 3)
    rows.append(("reference: decode every frame only", wall, cpu))

    def cell(v, fmt="{:.2f}"):
        return "" if v is None else fmt.format(v)

    lines = [
        "# Prediction benchmark (benchmarks/predict.py)",
        "",
        f"One {args.seconds:g} s video, {info.width}x{info.height}, {info.frame_count} frames, one real face; "
        f"{seq}-frame ResNeXt50-LSTM (hidden 2048, random weights), CPU only, detector and TF warm.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); load average {load_start:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at the end (the cores are shared with other jobs, so wall times are "
        "inflated; CPU seconds, summed over all threads, depend much less on the load).",
        "",
        "| pipeline | wall s | CPU s | wall vs original | CPU vs original |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, wall, cpu in rows:
        lines.append(f"| {name} | {wall:.2f} | {cell(cpu)} | {cell(t_base / wall, '{:.1f}x')} | "
                     f"{cell(None if cpu is None else c_base / max(cpu, 1e-9), '{:.1f}x')} |")
    warm = [(n, c) for n, _, c in rows if n.startswith("**")]
    lines += ["", "Target: <= 3 s wall per video for the warm dfdlib pipeline on this 2-core CPU. Wall times above "
              "include waiting for cores used by other jobs; on an idle machine a run takes between CPU s / "
              f"{os.cpu_count()} (all cores busy) and CPU s (one core): "
              + "; ".join(f"{n.strip('*').split(',')[1].strip()}: {c / os.cpu_count():.1f}–{c:.1f} s" for n, c in warm)
              + ".", ""]
    text = "\n".join(lines)
    print(text)
    with atomic_write(args.out) as f:
        f.write(text)


if __name__ == "__main__":
    main()
