"""preprocess/run.py: dataset discovery, report, atomic folders, resume, workers, shards, crashes, CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from test_video import write_video

from dfdlib import PreprocessConfig, preprocess_dataset
from dfdlib.cli import main
from dfdlib.preprocess.run import REPORT_COLUMNS, VideoTask, find_tasks, in_shard, parse_shard, run_tasks

CFG = PreprocessConfig(frames=4, size=32)


def still(i):
    return (100, 20, 200)


def walking(i):
    return (40 + 6 * i, 20, 200)  # the face moves right across the frame


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """real/: 2 faces + 4 bad files + 2 ignored; fake/: 3 faces, two of them named a.*"""
    root = tmp_path_factory.mktemp("ds") / "videos"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    write_video(root / "real" / "face1.mp4", n=12, face=still)
    write_video(root / "real" / "face2.avi", n=12, face=walking, fourcc="MJPG")
    write_video(root / "real" / "blank.mp4", n=12, value=lambda i: 90)
    write_video(root / "real" / "short.mp4", n=3, face=still)
    (root / "real" / "zero.mp4").write_bytes(b"")
    (root / "real" / "text.mp4").write_text("not a video\n" * 40)
    (root / "real" / "notes.txt").write_text("ignored: not a video extension")
    (root / "real" / ".hidden.mp4").write_bytes(b"ignored: hidden")
    write_video(root / "fake" / "a.mp4", n=12, face=walking)
    write_video(root / "fake" / "a.avi", n=12, face=still, fourcc="MJPG")
    write_video(root / "fake" / "f3.mp4", n=12, face=still)
    return root


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Two good videos, for the runs that repeat work."""
    root = tmp_path_factory.mktemp("small") / "videos"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    write_video(root / "real" / "r1.mp4", n=12, face=still)
    write_video(root / "fake" / "f1.mp4", n=12, face=walking)
    return root


def folders(out):
    return sorted(p.relative_to(out).as_posix() for p in out.glob("*/*"))


# --- discovery and shards (no detector) ---------------------------------------------------------------
def test_find_videos_names_collisions_and_ignores(dataset):
    tasks = find_tasks(dataset)
    assert [(t.video, t.label, t.name) for t in tasks] == [
        ("real/blank.mp4", "real", "blank"), ("real/face1.mp4", "real", "face1"),
        ("real/face2.avi", "real", "face2"), ("real/short.mp4", "real", "short"),
        ("real/text.mp4", "real", "text"), ("real/zero.mp4", "real", "zero"),
        ("fake/a.avi", "fake", "a"), ("fake/a.mp4", "fake", "a.mp4"), ("fake/f3.mp4", "fake", "f3")]
    assert "fake/a is taken by a.avi" in tasks[7].note


def test_find_videos_errors_and_warnings(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_tasks(tmp_path / "nope")
    (tmp_path / "clips").mkdir()
    with pytest.raises(ValueError, match=r"no real/ or fake/ folder \(it contains: clips\)"):
        find_tasks(tmp_path)
    (tmp_path / "real" / "part1").mkdir(parents=True)
    (tmp_path / "real" / "v.mov").write_bytes(b"x")
    (tmp_path / "real" / "part1" / "v.mp4").write_bytes(b"x")  # subfolders are scanned, kept in the name
    tasks = find_tasks(tmp_path)  # fake/ may be missing
    assert [(t.video, t.name) for t in tasks] == [("real/part1/v.mp4", "part1/v"), ("real/v.mov", "v")]


def test_shards_split_without_overlap(dataset):
    tasks = find_tasks(dataset)
    for n in (1, 2, 3, 5):
        parts = [[t.video for t in tasks if in_shard(t, (k, n))] for k in range(n)]
        assert sorted(sum(parts, [])) == sorted(t.video for t in tasks)  # union = all, each once
    # Spread even over names that differ in one digit: CRC-32 (linear) put all 8 sample videos in shard 0/2
    # and split these 24 as [0, 0, 16, 8] over 4 shards.
    many = [VideoTask("", f"{c}/{c}_{i:03d}.mp4", c, f"{c}_{i:03d}") for c in ("real", "fake") for i in range(12)]
    for n in (2, 3, 4):
        sizes = [sum(in_shard(t, (k, n)) for t in many) for k in range(n)]
        assert sum(sizes) == 24 and min(sizes) >= 2, sizes
    assert parse_shard("1/4") == (1, 4) and parse_shard((0, 2)) == (0, 2) and parse_shard(None) is None
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


# --- whole runs ---------------------------------------------------------------------------------------
def test_report_layout_and_bad_files(dataset, tmp_path):
    out = tmp_path / "processed"
    report = preprocess_dataset(dataset, out, CFG, progress=False)
    assert list(report.columns) == REPORT_COLUMNS
    status = dict(zip(report["video"], report["status"], strict=True))
    assert status == {"real/blank.mp4": "no_face", "real/face1.mp4": "ok", "real/face2.avi": "ok",
                      "real/short.mp4": "too_short", "real/text.mp4": "unreadable", "real/zero.mp4": "unreadable",
                      "fake/a.avi": "ok", "fake/a.mp4": "ok", "fake/f3.mp4": "ok"}
    reason = dict(zip(report["video"], report["reason"].fillna(""), strict=True))
    assert "blank.mp4: no face" in reason["real/blank.mp4"] and "3 decodable frames" in reason["real/short.mp4"]
    assert "empty (0 bytes)" in reason["real/zero.mp4"] and "output folder fake/a.mp4" in reason["fake/a.mp4"]
    # Only ok videos have folders, each complete; nothing temporary is left.
    assert folders(out) == ["fake/a", "fake/a.mp4", "fake/f3", "real/face1", "real/face2"]
    assert not list(out.rglob(".*"))
    for d in out.glob("*/*"):
        assert sorted(p.name for p in d.iterdir()) == ["faces.json", "frame_0.jpg", "frame_1.jpg", "frame_2.jpg",
                                                       "frame_3.jpg"]
    m = json.loads((out / "real" / "face2" / "faces.json").read_text())
    assert m["video"] == "real/face2.avi" and m["label"] == "real" and m["total_frames"] == 12
    assert len(m["boxes"]) == 4 and m["boxes"][0][0] < m["boxes"][-1][0]  # followed the walking face
    assert PreprocessConfig.from_dict(m["preprocess"]) == CFG
    saved = pd.read_csv(out / "preprocess_report.csv")
    assert list(saved["video"]) == list(report["video"]) and list(saved["status"]) == list(report["status"])


def test_resume_stale_temp_and_overwrite(small, tmp_path):
    out = tmp_path / "processed"
    stale = out / "real" / ".r1.tmp-999999"  # what kill -9 leaves behind
    stale.mkdir(parents=True)
    (stale / "frame_0.jpg").write_bytes(b"half")
    first = preprocess_dataset(small, out, CFG, progress=False)
    assert list(first["status"]) == ["ok", "ok"] and not stale.exists()
    assert folders(out) == ["fake/f1", "real/r1"]
    again = preprocess_dataset(small, out, CFG, progress=False)
    assert list(again["status"]) == ["skipped_done"] * 2 and list(again["frames"]) == [4, 4]
    changed = preprocess_dataset(small, out, PreprocessConfig(frames=5, size=32), progress=False)
    assert list(changed["status"]) == ["skipped_done"] * 2
    assert "other settings (frames 4→5)" in changed["reason"][0] and "--overwrite" in changed["reason"][0]
    redo = preprocess_dataset(small, out, PreprocessConfig(frames=5, size=32), overwrite=True, progress=False)
    assert list(redo["status"]) == ["ok", "ok"] and (out / "real" / "r1" / "frame_4.jpg").exists()
    assert not list(out.rglob(".*"))


def test_shard_runs_cover_the_dataset(small, tmp_path):
    out = tmp_path / "processed"
    reports = [preprocess_dataset(small, out, CFG, shard=f"{k}/2", progress=False) for k in range(2)]
    assert sorted(sum((list(r["video"]) for r in reports), [])) == ["fake/f1.mp4", "real/r1.mp4"]
    assert all((r["status"] == "ok").all() for r in reports)
    assert (out / "preprocess_report_shard-0-of-2.csv").exists() and (out / "preprocess_report_shard-1-of-2.csv").exists()
    assert folders(out) == ["fake/f1", "real/r1"]


@pytest.mark.slow
def test_two_workers_match_one_worker(small, tmp_path):
    one = preprocess_dataset(small, tmp_path / "one", CFG, workers=1, progress=False)
    two = preprocess_dataset(small, tmp_path / "two", CFG, workers=2, progress=False)
    assert list(one["status"]) == list(two["status"]) == ["ok", "ok"]
    for rel in ("real/r1", "fake/f1"):
        a = json.loads((tmp_path / "one" / rel / "faces.json").read_text())
        b = json.loads((tmp_path / "two" / rel / "faces.json").read_text())
        assert a["indices"] == b["indices"] and a["filled"] == b["filled"]
        assert max(abs(x - y) for p, q in zip(a["boxes"], b["boxes"], strict=True) for x, y in zip(p, q, strict=True)) < 1.0


def _exit_on_three(task: VideoTask) -> dict:
    if task.name == "v3":
        os._exit(1)  # what an out-of-memory kill or a decoder segfault looks like to the pool
    return {"video": task.video, "label": task.label, "status": "ok", "reason": "", "frames": 1, "filled": 0,
            "seconds": 0.0}


def test_a_worker_crash_loses_nothing_else():
    tasks = [VideoTask(f"/x/v{i}.mp4", f"real/v{i}.mp4", "real", f"v{i}") for i in range(7)]
    seen = []
    rows = run_tasks(tasks, _exit_on_three, workers=2, on_row=seen.append, initializer=None)
    assert [r["video"] for r in rows] == [t.video for t in tasks] and len(seen) == 7
    assert [r["status"] for r in rows] == ["ok"] * 3 + ["unreadable"] + ["ok"] * 3
    assert "worker process died on this video" in rows[3]["reason"]


@pytest.mark.slow
def test_kill_9_mid_video_leaves_no_done_folder(small, tmp_path):
    out = tmp_path / "processed"
    script = textwrap.dedent(f"""
        import os, signal, cv2
        from dfdlib import PreprocessConfig, preprocess_dataset
        real, calls = cv2.imwrite, []
        def imwrite(*a, **k):  # killed while the third crop of the first video is being written
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)
        cv2.imwrite = imwrite
        preprocess_dataset({str(small)!r}, {str(out)!r}, PreprocessConfig(frames=4, size=32), progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / "real" / "r1").exists() and list(out.glob("real/.r1.tmp-*"))
    report = preprocess_dataset(small, out, CFG, progress=False)  # the rerun cleans up and finishes
    assert list(report["status"]) == ["ok", "ok"] and not list(out.rglob(".*"))


# --- CLI ------------------------------------------------------------------------------------------------
def test_cli(small, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["preprocess", str(small), str(out), "--frames", "4", "--size", "32", "--margin", "0.2",
                 "--no-detect-retry"]) == 0
    printed = capsys.readouterr().out
    assert "2 ok" in printed and "preprocess_report.csv" in printed
    m = json.loads((out / "real" / "r1" / "faces.json").read_text())
    assert (m["preprocess"]["frames"], m["preprocess"]["size"], m["preprocess"]["margin"]) == (4, 32, 0.2)
    assert m["preprocess"]["detect_retry"] is False and m["detect_side"] == 320  # 320x240: detected as it is
    assert pd.read_csv(out / "preprocess_report.csv")["detect_side"].tolist() == [320, 320]
    (tmp_path / "flat" / "clips").mkdir(parents=True)
    assert main(["preprocess", str(tmp_path / "flat"), str(tmp_path / "o2")]) == 1  # no real/ or fake/
    assert "no real/ or fake/ folder" in capsys.readouterr().err
    assert main(["preprocess", str(small), str(out), "--shard", "3/2"]) == 1
    assert "shard" in capsys.readouterr().err


def test_shared_processed_fixture_follows_the_design(processed_dir):
    report = pd.read_csv(processed_dir / "preprocess_report.csv")
    assert set(report["status"]) == {"ok"} and set(report["label"]) == {"real", "fake"}
    for d in processed_dir.glob("*/*"):
        assert len(list(d.glob("frame_*.jpg"))) == 8 and (d / "faces.json").exists()


def test_two_faces_become_two_samples_of_one_video(tmp_path):
    import cv2
    import numpy as np
    from test_tracks import carphone, paste

    man = cv2.resize(carphone(6)[0], (211, 173))  # the carphone man, beside the photo's person
    root = tmp_path / "src"
    (root / "real").mkdir(parents=True)
    writer = cv2.VideoWriter(str(root / "real" / "two.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (480, 240))
    for _ in range(8):
        frame = np.full((240, 480, 3), 90, np.uint8)
        paste(frame[:, :320], 0, 20, 200)
        frame[40:213, 260:471] = man
        writer.write(frame)
    writer.release()
    cfg = PreprocessConfig(frames=4, size=32, max_faces=2)
    report = preprocess_dataset(root, tmp_path / "out", cfg, progress=False)
    assert list(report["status"]) == ["ok"] and list(report["faces"]) == [2]
    video = tmp_path / "out" / "real" / "two"
    assert sorted(p.name for p in video.iterdir()) == ["face_0", "face_1"]
    m0, m1 = (json.loads((video / f"face_{k}" / "faces.json").read_text()) for k in (0, 1))
    assert (m0["face"], m1["face"], m0["faces_in_video"]) == (0, 1, 2) and m0["prominence"] >= m1["prominence"]
    assert {m0["boxes"][0][0] < 240, m1["boxes"][0][0] < 240} == {True, False}  # one person each side
    assert m0["video"] == m1["video"] == "real/two.mp4" and m0["group"] == m1["group"]
    assert len(list((video / "face_1").glob("frame_*.jpg"))) == 4
    from dfdlib.labels.sources import from_processed

    labels = from_processed(tmp_path / "out", split=None)  # the default `dfd labels` path finds the faces
    assert list(labels["filename"]) == ["real/two/face_0", "real/two/face_1"]
    assert labels["group"].nunique() == 1 and labels["group"].iloc[0] == m0["group"]
    one = preprocess_dataset(root, tmp_path / "one", PreprocessConfig(frames=4, size=32), progress=False)
    assert list(one["faces"]) == [1] and (tmp_path / "one" / "real" / "two" / "frame_0.jpg").is_file()
