"""video.py: streaming decode, frame sampling, rotation, bad files. No TensorFlow here.

`write_video` and `PHOTO_FACE_BOX` are also used by test_faces.py and test_preprocess.py.
"""
from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfdlib.video import VideoError, probe_video, read_frames, sample_indices

# Where MTCNN finds the face in matplotlib's grace_hopper.jpg (512x600), xyxy.
PHOTO_FACE_BOX = (178.0, 110.0, 351.0, 330.0)


def _photo() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        data = np.frombuffer(f.read(), np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR)  # BGR


def write_video(path, n=30, size=(320, 240), fps=25, fourcc="mp4v", face=None, value=None):
    """Write a small video; returns the expected face box per frame (xyxy, or None).

    face(i) -> (x, y, height) pastes the photo with its top-left at (x, y) scaled to `height` px in frame
    i (None: no face that frame); value(i) -> int fills frame i with that grey level instead.
    """
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path} with {fourcc}"
    photo = _photo() if face else None
    boxes = []
    for i in range(n):
        if value is not None:
            frame = np.full((h, w, 3), value(i), np.uint8)
        else:
            frame = np.zeros((h, w, 3), np.uint8)
            frame[:] = np.linspace(60, 140, w, dtype=np.uint8)[None, :, None]  # plain gradient background
        spec = face(i) if face else None
        if spec is None:
            boxes.append(None)
        else:
            x, y, ph = spec
            s = ph / photo.shape[0]
            pw = round(photo.shape[1] * s)
            small = cv2.resize(photo, (pw, ph), interpolation=cv2.INTER_AREA)
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
            frame[y0:y1, x0:x1] = small[y0 - y:y1 - y, x0 - x:x1 - x]
            bx = PHOTO_FACE_BOX
            boxes.append((x + bx[0] * s, y + bx[1] * s, x + bx[2] * s, y + bx[3] * s))
        writer.write(frame)
    writer.release()
    return boxes


def grey(i: int) -> int:
    return min(250, 10 + 8 * i)  # a distinct grey level per frame for i < 31


def frame_number(frame: np.ndarray) -> int:
    """Which frame of a `grey` video this is (nearest level; codecs shift levels by a few units)."""
    return int(np.argmin([abs(float(frame.mean()) - grey(i)) for i in range(31)]))


def set_rotation(src, dst, degrees=90) -> None:
    """Copy an mp4 with its track's display matrix set to a rotation (what phones write)."""
    d = bytearray(open(src, "rb").read())
    p = d.find(b"tkhd")
    off = p + 4 + (40 if d[p + 4] == 0 else 52)
    one = 0x10000
    matrix = {90: (0, one, 0, -one, 0, 0, 0, 0, 0x40000000), 270: (0, -one, 0, one, 0, 0, 0, 0, 0x40000000)}[degrees]
    d[off:off + 36] = struct.pack(">9i", *matrix)
    open(dst, "wb").write(d)


@pytest.fixture(scope="module")
def grey_mp4(tmp_path_factory):
    p = tmp_path_factory.mktemp("video") / "grey.mp4"
    write_video(p, n=30, value=grey)
    return p


# --- sample_indices -------------------------------------------------------------------------------
def test_sample_indices_even_and_first():
    assert sample_indices(100, 4) == [12, 37, 62, 87]  # middle of each quarter
    assert sample_indices(5, 5) == [0, 1, 2, 3, 4]
    assert sample_indices(300, 3, "first") == [0, 1, 2]


@given(total=st.integers(1, 5000), n=st.integers(1, 200))
def test_sample_indices_properties(total, n):
    if total < n:
        with pytest.raises(ValueError, match="fewer than"):
            sample_indices(total, n)
        return
    idx = sample_indices(total, n)
    assert len(idx) == n and idx == sorted(set(idx)) and 0 <= idx[0] and idx[-1] < total
    # Evenly spread: each index lies in its own 1/n of the video.
    assert all(i * total // n <= x < (i + 1) * total / n + 1 for i, x in enumerate(idx))


def test_sample_indices_bad_arguments():
    with pytest.raises(ValueError, match="at least 1"):
        sample_indices(10, 0)
    with pytest.raises(ValueError, match="'even' or 'first'"):
        sample_indices(10, 2, "random")


# --- probe / read ---------------------------------------------------------------------------------
def test_probe_video(grey_mp4):
    info = probe_video(grey_mp4)
    assert (info.width, info.height, info.frame_count, info.rotation) == (320, 240, 30, 0)
    assert info.fps == pytest.approx(25.0)


@pytest.mark.parametrize("mode", ["even", "first"])
def test_read_frames_returns_the_sampled_frames(grey_mp4, mode):
    frames, idx, info = read_frames(grey_mp4, 5, mode)
    assert idx == sample_indices(30, 5, mode)
    assert len(frames) == 5 and all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    # Each frame's grey level identifies it: no off-by-one from grab/retrieve.
    assert [frame_number(f) for f in frames] == idx
    assert info.frame_count == 30


def test_read_frames_rgb_order(tmp_path):
    p = tmp_path / "red.avi"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for _ in range(3):
        w.write(np.dstack([np.zeros((48, 64), np.uint8)] * 2 + [np.full((48, 64), 250, np.uint8)]))  # BGR red
    w.release()
    frames, _, _ = read_frames(p, 1)
    r, g, b = frames[0].reshape(-1, 3).mean(0)
    assert r > 200 and g < 40 and b < 40


def test_header_overcount_truncated_avi(tmp_path):
    """A truncated AVI says 40 frames but decodes fewer: sampling uses the decoded count."""
    full = tmp_path / "full.avi"
    write_video(full, n=40, fourcc="MJPG", value=grey)
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    frames, idx, info = read_frames(cut, 4)
    assert 5 < info.frame_count < 40
    assert idx == sample_indices(info.frame_count, 4)
    assert [frame_number(f) for f in frames] == idx


def test_unknown_frame_count_streams_to_the_end(tmp_path):
    p = tmp_path / "raw.mjpeg"  # a raw MJPEG stream: the container has no frame count
    with open(p, "wb") as f:
        for i in range(25):
            f.write(cv2.imencode(".jpg", np.full((48, 64, 3), grey(i), np.uint8))[1].tobytes())
    assert probe_video(p).frame_count == 25
    frames, idx, info = read_frames(p, 5)
    assert info.frame_count == 25 and idx == sample_indices(25, 5)
    assert [frame_number(f) for f in frames] == idx


def test_rotation_metadata_is_applied(tmp_path):
    p = tmp_path / "plain.mp4"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for _ in range(5):
        img = np.zeros((240, 320, 3), np.uint8)
        img[:, :160] = 255  # left half white
        w.write(img)
    w.release()
    rot = tmp_path / "rot90.mp4"
    set_rotation(p, rot, 90)
    info = probe_video(rot)
    assert (info.rotation, info.width, info.height) == (90, 240, 320)
    frames, _, info = read_frames(rot, 2)
    assert frames[0].shape == (320, 240, 3) and (info.width, info.height) == (240, 320)
    assert frames[0][:100].mean() > 200 and frames[0][-100:].mean() < 50  # rotated clockwise: white on top


def test_max_pixels_downscales_but_reports_full_size(grey_mp4):
    frames, _, info = read_frames(grey_mp4, 3, max_pixels=80 * 60)
    assert frames[0].shape == (60, 80, 3)
    assert (info.width, info.height) == (320, 240)


# --- bad input ------------------------------------------------------------------------------------
def test_bad_files_raise_video_error(tmp_path, grey_mp4):
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    data = grey_mp4.read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])  # mp4v writes its index last: unopenable
    cases = {"zero.mp4": "empty", "text.mp4": "cannot open", "trunc.mp4": "cannot open", "missing.mp4": "no such"}
    for name, words in cases.items():
        with pytest.raises(VideoError, match=words) as e:
            read_frames(tmp_path / name, 3)
        assert e.value.kind == "unreadable" and name in str(e.value)
        with pytest.raises(VideoError):
            probe_video(tmp_path / name)


def test_too_short(tmp_path):
    p = tmp_path / "short.mp4"
    write_video(p, n=3, value=grey)
    for mode in ("even", "first"):
        with pytest.raises(VideoError, match="3 decodable frames, fewer than the 5") as e:
            read_frames(p, 5, mode)
        assert e.value.kind == "too_short"
    frames, idx, _ = read_frames(p, 3)
    assert idx == [0, 1, 2] and len(frames) == 3
