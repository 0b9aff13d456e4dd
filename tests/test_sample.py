"""The embedded sample set: layout, decodability, determinism, faces MTCNN finds, where fakes differ, CLI."""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
import numpy as np
import pytest

from dfdlib.sample.dataset import (
    MANIFEST,
    SampleConfig,
    iter_frames,
    make_sample_dataset,
    read_manifest,
    video_specs,
)

TINY = dict(n_real=1, n_fake=1, seconds=0.6, fps=10, width=160, height=120)


def decode(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:  # stream: the project never seeks with CAP_PROP_POS_FRAMES
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def all_files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ---------------------------------------------------------------------------------------------- layout
def test_layout_and_manifest(sample_dir):
    cfg, videos = read_manifest(sample_dir)
    assert (cfg.n_real, cfg.n_fake, cfg.width, cfg.height) == (4, 4, 320, 240)
    real = sorted(p.name for p in (sample_dir / "real").glob("*.mp4"))
    fake = sorted(p.name for p in (sample_dir / "fake").glob("*.mp4"))
    assert real == [f"real_{i:03d}.mp4" for i in range(4)]
    assert fake == [f"fake_{i:03d}.mp4" for i in range(4)]
    # Nothing else: no temp files or folders left behind (pathlib's glob would list dot-files as videos).
    assert all_files(sample_dir) == sorted([MANIFEST, "real", "fake"] + [f"real/{n}" for n in real]
                                           + [f"fake/{n}" for n in fake])
    assert [v["file"] for v in videos] == [f"real/{n}" for n in real] + [f"fake/{n}" for n in fake]
    for v in videos:
        assert v["label"] == (1 if v["file"].startswith("fake/") else 0)
        assert len(v["face_boxes"]) == cfg.n_frames
        if v["label"]:
            assert {"mask", "warp", "colour", "resample"} <= set(v["fake"])
        else:
            assert v["fake"] is None


def test_videos_decode_with_configured_size_fps_and_length(sample_dir):
    for path in sorted(sample_dir.glob("*/*.mp4")):
        cap = cv2.VideoCapture(str(path))
        assert cap.isOpened(), path
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25, abs=0.01)
        cap.release()
        frames = decode(path)
        assert len(frames) == 50, path
        assert all(f.shape == (240, 320, 3) for f in frames)


@pytest.mark.slow
def test_mtcnn_finds_the_face(sample_dir):
    from dfdlib.preprocess.detector import import_tensorflow

    import_tensorflow()  # triton before TensorFlow: the other order segfaults a later torchvision import
    from mtcnn import MTCNN

    detector = MTCNN(device="CPU:0")
    _, videos = read_manifest(sample_dir)
    found, total = 0, 0
    for v in videos:
        frames = decode(sample_dir / v["file"])
        hits = 0
        for i in np.linspace(0, len(frames) - 1, 6).round().astype(int):
            faces = detector.detect_faces(np.ascontiguousarray(frames[i][:, :, ::-1]))
            if faces:
                best = max(faces, key=lambda f: f["confidence"])
                x, y, w, h = best["box"]
                # The manifest's ground-truth box is where MTCNN finds the face.
                assert iou((x, y, x + w, y + h), v["face_boxes"][i]) > 0.6, (v["file"], i)
                hits += 1
        assert hits >= 5, f"{v['file']}: face found in {hits}/6 frames"
        found, total = found + hits, total + 6
    assert found / total >= 0.95


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_frames_different_seed_different(tmp_path):
    a = make_sample_dataset(tmp_path / "a", SampleConfig(**TINY, seed=3), progress=False)
    b = make_sample_dataset(tmp_path / "b", SampleConfig(**TINY, seed=3), progress=False)
    c = make_sample_dataset(tmp_path / "c", SampleConfig(**TINY, seed=4), progress=False)
    for name in ("real/real_000.mp4", "fake/fake_000.mp4"):
        fa, fb, fc = decode(a / name), decode(b / name), decode(c / name)
        assert len(fa) == len(fb) == len(fc) == 6
        assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True)), name
        assert np.mean([np.abs(x.astype(int) - z).mean() for x, z in zip(fa, fc, strict=True)]) > 5, name
    assert json.loads((a / MANIFEST).read_text()) == json.loads((b / MANIFEST).read_text())


def test_adding_videos_keeps_the_existing_ones():
    small = video_specs(SampleConfig(n_real=2, n_fake=1))
    big = video_specs(SampleConfig(n_real=5, n_fake=3))
    assert small[:2] == big[:2] and small[2] == big[5]


# ----------------------------------------------------------------------------------- where fakes differ
def test_fake_differs_from_its_footage_only_inside_the_mask(sample_dir):
    cfg, videos = read_manifest(sample_dir)
    for v in videos:
        blended = list(iter_frames(v, cfg, masks=True))
        footage = [f for f, _ in iter_frames(v, cfg, apply_fake=False)]
        inside = []
        for (frame, mask), pristine in zip(blended, footage, strict=True):
            diff = np.abs(frame.astype(int) - pristine).max(axis=2)
            if v["label"] == 0:
                assert not mask.any() and not diff.any()
                continue
            assert not diff[mask == 0].any(), v["file"]  # outside the soft mask: bit-identical
            inside.append(diff[mask > 0.5].mean())
            # The mask is a face-sized blob around the ground-truth face box.
            ys, xs = np.nonzero(mask > 0.5)
            assert 0.2 < (ys.max() - ys.min()) / cfg.height < 0.6
        if v["label"]:
            change = np.mean(inside)
            assert change > 6, f"{v['file']}: fake face barely changed ({change:.1f} grey levels)"


def test_fake_artefacts_survive_encoding(sample_dir):
    """Decoded fake vs its re-rendered footage: big change in the face, only codec noise elsewhere."""
    cfg, videos = read_manifest(sample_dir)
    codec_error, inside, outside = [], [], []
    for v in videos:
        decoded = decode(sample_dir / v["file"])
        rendered = zip(iter_frames(v, cfg, masks=True), iter_frames(v, cfg, apply_fake=False), strict=True)
        for i, ((_, mask), (pristine, _)) in enumerate(rendered):
            if i % 10:
                continue
            diff = np.abs(decoded[i].astype(np.float32) - pristine).mean(axis=2)
            if v["label"] == 0:
                codec_error.append(diff.mean())
                continue
            far = cv2.dilate((mask > 0).astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
            inside.append(diff[mask > 0.5].mean())
            outside.append(diff[far].mean())
    assert np.mean(outside) < np.mean(codec_error) + 1.0
    assert np.mean(inside) > 3 * np.mean(outside)


def test_strength_zero_makes_fakes_equal_to_their_footage():
    cfg = SampleConfig(**TINY, strength=0.0)
    spec = video_specs(cfg)[1]
    assert spec["label"] == 1
    for (a, _), (b, _) in zip(iter_frames(spec, cfg), iter_frames(spec, cfg, apply_fake=False), strict=True):
        assert np.array_equal(a, b)


# -------------------------------------------------------------------------------- rerun, errors, CLI
def test_rerun_keeps_matching_set_and_prunes_a_bigger_one(tmp_path):
    out = tmp_path / "s"
    make_sample_dataset(out, SampleConfig(**{**TINY, "n_real": 2}), progress=False)
    assert (out / "real/real_001.mp4").is_file()
    make_sample_dataset(out, SampleConfig(**TINY), progress=False)
    assert not (out / "real/real_001.mp4").exists()  # listed by the old manifest, not by the new config
    stamp = (out / "real/real_000.mp4").stat().st_mtime_ns
    make_sample_dataset(out, SampleConfig(**TINY), progress=False)  # up to date: nothing rewritten
    assert (out / "real/real_000.mp4").stat().st_mtime_ns == stamp
    (out / "fake/fake_000.mp4").unlink()
    make_sample_dataset(out, SampleConfig(**TINY), progress=False)  # a missing video is regenerated
    assert (out / "fake/fake_000.mp4").is_file()
    with pytest.raises(RuntimeError):  # a rewrite that fails half-way ...
        make_sample_dataset(out, SampleConfig(**TINY, codec="zzzz"), progress=False)
    assert not (out / MANIFEST).exists()  # ... leaves no manifest claiming the old set is still there


@pytest.mark.parametrize("field, value", [("width", 161), ("n_real", -1), ("seconds", 0.0), ("seed", -2),
                                          ("face_height", (0.5, 0.3)), ("strength", 3.0)])
def test_bad_config_is_rejected_naming_the_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        make_sample_dataset(tmp_path, SampleConfig(**{**TINY, field: value}))
    assert not any(tmp_path.iterdir())


def test_codec_that_opencv_lacks_gives_clear_error_and_no_partial_file(tmp_path):
    with pytest.raises(RuntimeError, match="mp4v"):
        make_sample_dataset(tmp_path, SampleConfig(**TINY, codec="zzzz"), progress=False)
    assert not list(tmp_path.rglob("*.mp4")) and not (tmp_path / MANIFEST).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_writes_the_set(tmp_path, capsys):
    from dfdlib.cli import main

    out = tmp_path / "cli"
    rc = main(["sample", str(out), "--n-real", "1", "--n-fake", "2", "--seconds", "0.4", "--width", "160",
               "--height", "120", "--fps", "10", "--seed", "7"])
    assert rc == 0
    assert "1 real + 2 fake" in capsys.readouterr().out
    assert len(list((out / "real").glob("*.mp4"))) == 1 and len(list((out / "fake").glob("*.mp4"))) == 2
    cfg, _ = read_manifest(out)
    assert (cfg.seed, cfg.fps, cfg.n_frames) == (7, 10, 4)
    assert main(["sample", str(out), "--n-real", "1", "--n-fake", "2", "--seconds", "0.4", "--width", "160",
                 "--height", "120", "--fps", "10", "--seed", "7"]) == 0
    assert "already holds this sample set" in capsys.readouterr().out
    assert main(["sample", str(tmp_path / "bad"), "--width", "161"]) == 1  # one-line error, no traceback
