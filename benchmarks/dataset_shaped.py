"""Face extraction on videos shaped like the public datasets' (H.264, their sizes and lengths) vs decode-only,
and a FF++-shaped tree of originals and fakes with and without box reuse.

The main preprocess table uses short mp4v clips, which decode almost for free, so its ours/decode-only
column mostly measures detection. Real dataset videos are H.264 at the datasets' sizes and lengths, and a
video has to be decoded to its last sampled frame by any method. These rows are encoded with libx264 at CRF 23
and x264's default preset (FaceForensics++'s `c23` is exactly that), from the same real face footage:

  ffpp_c23_640x480    FF++ original: 510 frames (FF++'s 509,914 frames over 1,000 originals), 480p
  celebdf_1280x720    Celeb-DF-like: 390 frames (~13 s), a stage edit cutting between close-up and medium shot
  dfdc_1920x1080      DFDC: 300 frames (10 s at 29.97 fps), 1080p
  crowd_1920x1080     a 1080p crowd, six people (max_faces=6), 300 frames

For each: decode-only (grab() of every frame), ours (extract_faces at defaults), detection on every sampled
frame (keyframes=1) and the crop IoU of the two. The encoded videos are cached in benchmarks/_work/ (the first
run encodes them: about 3 minutes on 2 cores).

The FF++-shaped tree (dfdlib.sample.scenes.ffpp_tree: 2 originals x 4 methods whose fakes change only the
inner face) is preprocessed with and without `reuse_boxes`, as generated (mp4v, 150 frames) and transcoded
to H.264 c23 at 150 and at 510 frames (FF++'s mean length), where decoding is most of a video's cost.

Needs PyAV (`pip install -e '.[bench]'`); OpenCV's wheels
cannot write H.264.
"""
from __future__ import annotations

import dataclasses
import time
from fractions import Fraction
from pathlib import Path

import cv2

CACHE = Path(__file__).parent / "_work" / "dataset_shaped"
# name -> (size, kind for preprocess.make_video, frames, max_faces)
SHAPES = {"ffpp_c23_640x480": ((640, 480), "plain", 510, 1),
          "celebdf_1280x720": ((1280, 720), "zoomcut", 390, 1),
          "dfdc_1920x1080": ((1920, 1080), "plain", 300, 1),
          "crowd_1920x1080": ((1920, 1080), "crowd", 300, 6)}


def h264_available() -> str:
    """"" when PyAV with libx264 is installed, else what to install."""
    try:
        import av
    except ImportError:
        return "PyAV is not installed (pip install -e '.[bench]')"
    return "" if "libx264" in av.codecs_available else "this PyAV build has no libx264"


def transcode_h264(src: Path, dst: Path, crf: int = 23, preset: str = "medium") -> None:
    """Re-encode `src` as H.264 (yuv420p, libx264 at `crf`/`preset`, the same fps), atomically to `dst`."""
    import av

    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 29.97
    tmp = dst.with_name(dst.stem + ".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        stream.pix_fmt, stream.options = "yuv420p", {"crf": str(crf), "preset": preset}
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            out.mux(stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")))
        out.mux(stream.encode())
    cap.release()
    tmp.replace(dst)


def dataset_videos(clip, make_video) -> dict[str, Path]:
    """The SHAPES videos as H.264, made once (mp4v from the footage, then transcoded) and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (size, kind, n, _) in SHAPES.items():
        dst = CACHE / f"{name}_{n}.mp4"
        if not dst.is_file():
            raw = CACHE / f"{name}_{n}.mp4v.mp4"
            make_video(clip, size, n, raw, fps=29.97, kind=kind)
            transcode_h264(raw, dst)
            raw.unlink()
        out[name] = dst
    return out


def dataset_section(clip, cfg, det, make_video, decode_only, keyframe_iou) -> list[str]:
    """Time the SHAPES videos; returns the markdown lines (printed as it goes)."""
    from dfdlib.preprocess.faces import extract_faces

    why = h264_available()
    if why:
        lines = ["", "## Dataset-shaped H.264 videos", "", f"Not run: {why}."]
        print("\n".join(lines))
        return lines
    rows = []
    for name, path in dataset_videos(clip, make_video).items():
        vcfg = dataclasses.replace(cfg, max_faces=SHAPES[name][3])
        every = dataclasses.replace(vcfg, keyframes=1)
        extract_faces(path, vcfg, detector=det)  # warm the file cache and the detector for this shape
        t_dec, total = min((decode_only(path) for _ in range(2)), key=lambda r: r[0])
        t_ours, res = min((_timed(extract_faces, path, vcfg, detector=det) for _ in range(2)), key=lambda r: r[0])
        t_all, res_all = _timed(extract_faces, path, every, detector=det)
        assert res.status == "ok" and len(res.faces) == vcfg.max_faces, (name, res.reason, len(res.faces))
        rows.append(dict(video=name, frames=total, decode=t_dec, ours=t_ours, all=t_all,
                         k_iou=keyframe_iou(res, res_all, cfg.margin), detected=sum(res.detected)))
        r = rows[-1]
        print(f"{name:>20}: decode-only {t_dec:5.2f} s  ours {t_ours:5.2f} s ({t_ours / t_dec:.2f}x)  every-frame "
              f"detection {t_all:5.2f} s  crop IoU vs every frame {r['k_iou']:.3f}", flush=True)
    tot_dec, tot_ours = sum(r["decode"] for r in rows), sum(r["ours"] for r in rows)
    hd = [r for r in rows if r["video"].endswith("1080")]
    hd_ratio = sum(r["ours"] for r in hd) / sum(r["decode"] for r in hd)
    mean_iou = sum(r["k_iou"] for r in rows) / len(rows)
    lines = ["", "## Dataset-shaped H.264 videos (extraction vs decode-only)", "",
             "libx264 CRF 23, preset medium (FF++ `c23`), from the same real footage; sizes and lengths of the public "
             "datasets (see `benchmarks/dataset_shaped.py`). ours = `extract_faces` at defaults; every-frame = "
             "`keyframes=1`. Best of two runs each.", "",
             "| video | frames | decode-only s | ours s | ours / decode-only | every-frame detection s | "
             "frames detected | crop IoU keyframes vs every frame |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['video']} | {r['frames']} | {r['decode']:.2f} | {r['ours']:.2f} | "
                     f"{r['ours'] / r['decode']:.2f} | {r['all']:.2f} | {r['detected']}/{cfg.frames} | "
                     f"{r['k_iou']:.3f} |")
    lines.append(f"| **overall** | | {tot_dec:.2f} | {tot_ours:.2f} | **{tot_ours / tot_dec:.2f}** | "
                 f"{sum(r['all'] for r in rows):.2f} | | {mean_iou:.3f} |")
    lines += ["", f"targets: ours <= 2.0x decode-only overall ({'met' if tot_ours / tot_dec <= 2 else 'NOT met'}: "
                  f"{tot_ours / tot_dec:.2f}x), <= 1.5x at 1080p ({'met' if hd_ratio <= 1.5 else 'NOT met'}: "
                  f"{hd_ratio:.2f}x), crop IoU >= 0.95 against every-frame detection "
                  f"({'met' if mean_iou >= 0.95 else 'NOT met'}: {mean_iou:.3f})"]
    print("\n".join(lines[-1:]))
    return lines


def _timed(fn, *args, **kw):
    t0 = time.perf_counter()
    res = fn(*args, **kw)
    return time.perf_counter() - t0, res


def ffpp_tree_h264(src: Path, frames: int, dst: Path) -> Path:
    """The FF++-shaped tree at `frames` frames per video, made once under CACHE, transcoded to H.264 c23."""
    from dfdlib.sample import scenes

    if not (dst / "done").is_file():
        raw = dst.with_name(dst.name + "_mp4v")
        scenes.ffpp_tree(raw, originals=2, methods=scenes.FAKE_METHODS, size=(640, 360), frames=frames)
        for f in raw.rglob("*.mp4"):
            (dst / f.relative_to(raw)).parent.mkdir(parents=True, exist_ok=True)
            transcode_h264(f, dst / f.relative_to(raw))
        (dst / "done").write_text("")
    return dst


def ffpp_section(tmp: Path, cfg) -> list[str]:
    """FF++-shaped trees (2 originals x 4 methods) preprocessed with and without box reuse: per-video times,
    fake/original ratios, crop IoU of reused vs detected boxes, dataset-level speed-ups."""
    import json

    import numpy as np

    from dfdlib.boxes import iou, square_box
    from dfdlib.preprocess.run import preprocess_dataset
    from dfdlib.sample import scenes

    trees = [("mp4v, 150 frames (as generated)", tmp / "FaceForensics++")]
    scenes.ffpp_tree(trees[0][1], originals=2, methods=scenes.FAKE_METHODS, size=(640, 360), frames=150)
    if not h264_available():
        trees += [(f"H.264 c23, {n} frames", ffpp_tree_h264(tmp, n, CACHE / f"ffpp_tree_{n}")) for n in (150, 510)]
    lines = ["", "## Fakes cut with their original's boxes (FF++-shaped tree)", "",
             "`scenes.ffpp_tree`: 2 originals (640x360, the photo's person drifting) x 4 methods whose fakes change "
             "only the inner face. Per-video time is the report's `seconds` (decode, detection or the check, crops, "
             "JPEGs); the fake columns give the mean time and its ratio to the original's. Crop IoU: reused boxes "
             "against the fakes' own detection (`--no-reuse-boxes`), mean and min over all sampled frames. Speed-ups "
             "of the face stage per original and its fakes, from the measured means: FF++ has 4 fakes per original, "
             "DFDC 4.4.", "",
             "| tree | original s | fake, detected | fake, boxes reused | reused / checked by background | "
             "crop IoU mean (min) | FF++ speed-up | DFDC speed-up |", "|---|---|---|---|---|---|---|---|"]
    for k, (what, src) in enumerate(trees):
        runs = {}
        for name, reuse in (("reuse", True), ("detect", False)):
            out = tmp / f"ffpp_{k}_{name}"
            rep = preprocess_dataset(src, out, dataclasses.replace(cfg, reuse_boxes=reuse), progress=False)
            assert (rep["status"] == "ok").all(), rep[["video", "reason"]]
            runs[name] = (out, rep.set_index("video"))
        (out_r, rep_r), (out_d, rep_d) = runs["reuse"], runs["detect"]
        real = rep_r["label"] == "real"
        t_orig = float(rep_r.loc[real, "seconds"].mean())
        t_reuse = float(rep_r.loc[~real, "seconds"].mean())
        t_det = float(rep_d.loc[~real, "seconds"].mean())
        ious, checks = [], []
        for f in out_r.glob("fake/*/c23/*/faces.json"):
            a = json.loads(f.read_text())
            b = json.loads((out_d / f.parent.relative_to(out_r) / "faces.json").read_text())
            ious += [iou(square_box(x, cfg.margin), square_box(y, cfg.margin))
                     for x, y in zip(a["boxes"], b["boxes"], strict=True)]
            checks.append((a.get("boxes_reused") or {}).get("check", ""))
        speed = [(t_orig + r * t_det) / (t_orig + r * t_reuse) for r in (4.0, 4.4)]
        lines.append(f"| {what} | {t_orig:.2f} | {t_det:.2f} ({t_det / t_orig:.2f}x) | "
                     f"**{t_reuse:.2f} ({t_reuse / t_orig:.2f}x)** | {sum(c != '' for c in checks)}/{len(checks)} / "
                     f"{checks.count('background')} | {np.mean(ious):.3f} ({np.min(ious):.3f}) | {speed[0]:.2f}x | "
                     f"{speed[1]:.2f}x |")
        print(lines[-1], flush=True)
    lines += ["", "Target: each fake <= 0.5x its original's time with reuse, crops agreeing with `--no-reuse-boxes` "
                  "(IoU >= 0.9). A reused fake still decodes to its last sampled frame, so on long H.264 videos its "
                  "time approaches decode-only, the floor for any method that reads the video."]
    return lines
