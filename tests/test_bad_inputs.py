"""Bad inputs across the pipeline (issue 8): every case is made here, by the test itself.

Each bad item must end in a clear message naming the file or row and what to do, or in a reported
skip; never a bare traceback from deep inside, and never a crash of the whole batch for one bad item.
Stage by stage: videos (one preprocess batch and one predict batch over a dataset full of bad files),
labels CSVs, model files, settings, devices, unwritable folders and a full disk.
"""
from __future__ import annotations

import errno
import json
import os
import struct
from dataclasses import asdict

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from test_video import _photo, set_rotation, write_video

from dfdlib import cli
from dfdlib.labels.io import LabelsError, validate_labels, write_labels
from dfdlib.labels.metadata import from_folders
from dfdlib.model import ResNeXtLSTM, load_model, save_model
from dfdlib.predict.evaluate import evaluate_model
from dfdlib.predict.registry import list_models
from dfdlib.predict.verdict import predict_folder, predict_video
from dfdlib.preprocess.faces import PreprocessConfig
from dfdlib.preprocess.run import preprocess_dataset
from dfdlib.training.loop import TrainConfig, train

CFG = PreprocessConfig(frames=4, size=32)  # small and fast; predict uses the same settings via the model file
SEQ = 4


def still(i):
    return (100, 20, 200)  # the photo at x=100, y=20, 200 px high: a ~58x73 px face


# ------------------------------------------------------------------------------ making bad videos
def vfr_copy(src, dst) -> None:
    """Copy an mp4 written by OpenCV (moov after mdat) with a variable frame rate: the first half of the
    frames runs at twice the rate, the second half at 2/3 of it (same total duration, so the edit list
    still covers every frame). Rewrites the stts box with two entries and grows its parent boxes."""
    d = bytearray(open(src, "rb").read())
    p = d.find(b"stts") - 4
    size = struct.unpack(">I", d[p:p + 4])[0]
    n, delta = struct.unpack(">II", d[p + 16:p + 24])
    body = struct.pack(">II", 0, 2) + struct.pack(">IIII", n // 2, delta // 2, n - n // 2, delta + delta // 2)
    new = struct.pack(">I4s", 8 + len(body), b"stts") + body
    for box in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):  # the boxes that contain stts
        q = d.find(box) - 4
        d[q:q + 4] = struct.pack(">I", struct.unpack(">I", d[q:q + 4])[0] + len(new) - size)
    d[p:p + size] = new
    open(dst, "wb").write(d)


def gray_video(path, n=20) -> None:
    photo = cv2.cvtColor(cv2.resize(_photo(), (170, 200)), cv2.COLOR_BGR2GRAY)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240), isColor=False)
    for _ in range(n):
        frame = np.full((240, 320), 100, np.uint8)
        frame[20:220, 100:270] = photo
        w.write(frame)
    w.release()


def two_faces_video(path, n=20) -> None:
    """A big face on the left (the main one) and a smaller one on the right."""
    photo = _photo()
    big, small = cv2.resize(photo, (170, 200)), cv2.resize(photo, (102, 120))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (480, 240))
    for _ in range(n):
        frame = np.full((240, 480, 3), 100, np.uint8)
        frame[20:220, 20:190] = big
        frame[60:180, 330:432] = small
        w.write(frame)
    w.release()


def rotated_video(path, tmp) -> None:
    """Filmed sideways and tagged as rotated by 90 degrees, as phones do."""
    photo = cv2.rotate(cv2.resize(_photo(), (170, 200)), cv2.ROTATE_90_COUNTERCLOCKWISE)
    w = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for _ in range(8):
        frame = np.full((240, 320, 3), 100, np.uint8)
        frame[35:205, 60:260] = photo
        w.write(frame)
    w.release()
    set_rotation(tmp, path, 90)


# name → (preprocess status, words in its reason, predict status, words in its reason)
VIDEO_CASES = {
    "real/zero.mp4": ("unreadable", "empty (0 bytes)", "unreadable", "empty (0 bytes)"),
    "real/text.mp4": ("unreadable", "cannot open", "unreadable", "cannot open"),
    "real/truncated.mp4": ("unreadable", "truncated", "unreadable", "truncated"),
    "real/one_frame.mp4": ("too_short", "sample fewer frames (--frames)", "ok", "padded"),
    "real/three_frames.mp4": ("too_short", "fewer than the 4 frames", "ok", "padded"),
    "real/no_face.mp4": ("no_face", "no face", "no_face", "no face"),
    "real/face_in_two_frames.mp4": ("no_face", "only 1 of 4", "no_face", "--min-detected"),
    "real/face_in_most_frames.mp4": ("ok", "", "ok", ""),
    "real/vidéo ünï 1.mp4": ("ok", "", "ok", ""),
    "real/self_loop.mp4": ("unreadable", "symbolic link", "unreadable", "symbolic link"),
    "fake/two_faces.mp4": ("ok", "", "ok", ""),
    "fake/gray.mp4": ("ok", "", "ok", ""),
    "fake/uhd_4k.mp4": ("ok", "", "ok", ""),
    "fake/rotated.mp4": ("ok", "", "ok", ""),
    "fake/vfr.mp4": ("ok", "", "ok", ""),
    "fake/dangling.mp4": ("unreadable", "symbolic link", "unreadable", "symbolic link"),
}


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    """A dataset root holding every kind of bad video next to good ones (and a folder symlink loop)."""
    src = tmp_path_factory.mktemp("bad_videos") / "videos"
    real, fake = src / "real", src / "fake"
    real.mkdir(parents=True)
    fake.mkdir()
    work = src.parent
    write_video(work / "face.mp4", n=30, face=still)
    (real / "zero.mp4").write_bytes(b"")
    (real / "text.mp4").write_text("this is not a video\n" * 50)
    data = (work / "face.mp4").read_bytes()
    (real / "truncated.mp4").write_bytes(data[:len(data) // 2])  # cut mid-stream: the index (moov) is lost
    write_video(real / "one_frame.mp4", n=1, face=still)
    write_video(real / "three_frames.mp4", n=3, face=still)
    write_video(real / "no_face.mp4", n=30, value=lambda i: 90)
    write_video(real / "face_in_two_frames.mp4", n=30, face=lambda i: still(i) if i in (3, 17) else None)
    write_video(real / "face_in_most_frames.mp4", n=30, face=lambda i: still(i) if i < 20 else None)
    os.link(work / "face.mp4", real / "vidéo ünï 1.mp4")
    (real / "self_loop.mp4").symlink_to("self_loop.mp4")
    (real / "loop").symlink_to("..", target_is_directory=True)  # a folder symlink loop: never walked forever
    (real / "notes.txt").write_text("not a video, ignored")
    two_faces_video(fake / "two_faces.mp4")
    gray_video(fake / "gray.mp4")
    write_video(fake / "uhd_4k.mp4", n=5, size=(3840, 2160), face=lambda i: (1200, 300, 1400))
    rotated_video(fake / "rotated.mp4", work / "sideways.mp4")
    vfr_copy(work / "face.mp4", fake / "vfr.mp4")
    (fake / "dangling.mp4").symlink_to(work / "deleted.mp4")
    return src


@pytest.fixture(scope="module")
def preprocessed(bad_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("bad_processed") / "processed"
    # real/ and fake/ are scanned recursively now; the folder symlink loop real/loop is not followed
    report = preprocess_dataset(bad_videos, out, CFG, progress=False)
    assert not any("loop/" in v for v in report["video"]), report["video"].tolist()
    return out, report


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained tiny model file recording CFG as its preprocessing (verdicts do not matter here)."""
    torch.manual_seed(0)
    model = ResNeXtLSTM(backbone="tiny", hidden_dim=16).eval()
    meta = {"sequence_length": SEQ, "image_size": CFG.size, "sampling": "even", "preprocess": asdict(CFG),
            "class_names": ["REAL", "FAKE"], "threshold": 0.5, "metrics": {"accuracy": 0.5}}
    return save_model(tmp_path_factory.mktemp("models") / "model_4_acc_50.0_final_data.pt", model, meta)


def test_preprocess_batch_reports_every_bad_video_and_finishes(bad_videos, preprocessed):
    out, report = preprocessed
    assert sorted(report["video"]) == sorted(VIDEO_CASES)  # every video has a row; nothing else (no loop, no .txt)
    for video, (status, words, _, _) in VIDEO_CASES.items():
        row = report.set_index("video").loc[video]
        assert row["status"] == status, (video, row["reason"])
        assert words in row["reason"], (video, row["reason"])
        folder = out / video.split("/")[0] / video.split("/")[1].rsplit(".", 1)[0]
        if status == "ok":
            assert sorted(p.name for p in folder.iterdir()) == ["faces.json"] + [f"frame_{i}.jpg" for i in range(4)]
        else:
            assert os.path.basename(video) in row["reason"], row["reason"]  # names the file
            assert not folder.exists()  # nothing half-made that a rerun would skip
    assert (out / "preprocess_report.csv").is_file()
    assert not list(out.rglob(".*.tmp-*"))


def test_odd_but_valid_videos_give_the_right_face(preprocessed):
    out, _ = preprocessed
    meta = {p.parent.name: json.loads(p.read_text()) for p in out.rglob("faces.json")}
    two = meta["two_faces"]
    assert all((b[0] + b[2]) / 2 < 240 for b in two["boxes"])  # the big face on the left, in every frame
    assert (meta["uhd_4k"]["width"], meta["uhd_4k"]["height"]) == (3840, 2160)
    assert meta["uhd_4k"]["boxes"][0][2] - meta["uhd_4k"]["boxes"][0][0] > 300  # full-resolution boxes
    assert meta["rotated"]["rotation"] == 90 and (meta["rotated"]["width"], meta["rotated"]["height"]) == (240, 320)
    assert meta["vfr"]["total_frames"] == 30
    assert sum(meta["face_in_most_frames"]["filled"]) == 1  # 3 of 4 sampled frames show the face
    crop = cv2.imread(str(out / "fake" / "gray" / "frame_0.jpg"))
    assert crop.shape == (32, 32, 3)


def test_unicode_names_survive_labels_and_dataset(preprocessed):
    from dfdlib.data import FaceSequenceDataset

    out, _ = preprocessed
    df = from_folders(out, out_csv=out.parent / "labels.csv", split=None)
    assert "real/vidéo ünï 1" in set(df["filename"])
    checked = validate_labels(out.parent / "labels.csv", out, sequence_length=SEQ)
    ds = FaceSequenceDataset(checked, out, SEQ, image_size=32)
    i = ds.filenames.index("real/vidéo ünï 1")
    assert ds[i][0].shape == (SEQ, 3, 32, 32)


def test_predict_batch_reports_every_bad_video(bad_videos, tiny_model):
    df = predict_folder(tiny_model, bad_videos, progress=False).set_index("video")
    assert sorted(df.index) == sorted(v for v in VIDEO_CASES)
    for video, (_, _, status, words) in VIDEO_CASES.items():
        row = df.loc[video]
        assert row["status"] == status, (video, row["reason"])
        assert words in row["reason"], (video, row["reason"])
        if status == "ok":
            assert row["label"] in ("REAL", "FAKE") and 0 <= row["prob_fake"] <= 1
        else:
            assert pd.isna(row["label"]) and os.path.basename(video) in row["reason"]


def test_predict_cli_prints_one_line_per_bad_video(bad_videos, tiny_model, tmp_path, capsys):
    rc = cli.main(["predict", str(tiny_model), str(bad_videos / "real" / "zero.mp4"),
                   str(bad_videos / "real" / "no_face.mp4"), str(bad_videos / "fake" / "gray.mp4"),
                   "--out", str(tmp_path / "p.csv"), "--no-progress"])
    text = capsys.readouterr()
    assert rc == 1  # two videos got no verdict: a script must be able to tell (issue 25.3)
    assert "predict: 3 video(s): 1 verdict(s)" in text.out and "2 without a verdict" in text.out
    assert "unreadable:" in text.out and "zero.mp4" in text.out and "no_face:" in text.out
    assert "Traceback" not in text.out + text.err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 3


# ---------------------------------------------------------------------------------- labels CSVs
@pytest.fixture(scope="module")
def processed_root(tmp_path_factory):
    """processed/<real|fake>/<v>/frame_<i>.jpg made by hand (no detector): 3 videos per class, 4 frames each."""
    root = tmp_path_factory.mktemp("labels") / "processed"
    rng = np.random.default_rng(0)
    for cls in ("real", "fake"):
        for k in range(3):
            folder = root / cls / f"v{k}"
            folder.mkdir(parents=True)
            for i in range(4):
                cv2.imwrite(str(folder / f"frame_{i}.jpg"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    return root


GOOD = "real/v0,0\nreal/v1,0\nfake/v0,1\nfake/v1,1\n"
# name → (CSV text, line named in the message or None, words that say what is wrong / what to do)
CSV_CASES = {
    "empty": ("", 1, "the file is empty"),
    "header_only": ("filename,label\n", None, "no rows: add one row per processed video"),
    "missing_column": ("filename,kind\nreal/v0,0\n", 1, "missing column(s) label"),
    "label_2": ("filename,label\n" + GOOD + "real/v2,2\n", 6, "label '2' is not 0/1"),
    "duplicate_rows": ("filename,label\n" + GOOD + "real/v0,0\n", 6, "duplicate filename 'real/v0' (first on line 2)"),
    "dotdot_path": ("filename,label\n" + GOOD + "../outside,0\n", 6, "points outside the processed root"),
    "absolute_path": ("filename,label\n" + GOOD + "/etc/passwd,0\n", 6, "give the folder relative to the processed root"),
    "folder_missing": ("filename,label\n" + GOOD + "real/v9,0\n", 6, "'real/v9' does not exist"),
    "one_class_only": ("filename,label\nreal/v0,0\nreal/v1,0\n", None, "training needs both real (0) and fake (1)"),
    "semicolons": ("filename;label\nreal/v0;0\n", 1, "separated by ';'"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_bad_labels_csv_names_the_row_and_what_to_do(processed_root, tmp_path, case, capsys):
    text, line, words = CSV_CASES[case]
    csv = tmp_path / f"{case}.csv"
    csv.write_text(text)
    with pytest.raises(LabelsError) as exc:
        validate_labels(csv, processed_root)
    msg = str(exc.value)
    assert str(csv) in msg and words in msg, msg
    if line is not None:
        assert f"line {line}" in msg, msg
    # the same through the CLI: one clear message, exit code 1
    assert cli.main(["labels", str(processed_root), "--check", str(csv)]) == 1
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_train_refuses_a_bad_csv_before_training(processed_root, tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("filename,label,split\nreal/v0,0,train\nfake/v0,1,train\nreal/v1,0,val\nfake/v1,1,val\n"
                   "real/v2,fake?,test\n")
    rc = cli.main(["train", "--csv", str(csv), "--data", str(processed_root), "--out", str(tmp_path / "run"),
                   "--backbone", "tiny", "--weights", "none", "--device", "cpu", "--sequence-length", "4"])
    err = capsys.readouterr().err
    assert rc == 1 and "line 6" in err and "use 0 for real, 1 for fake" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_evaluate_skips_a_row_whose_folder_vanished(processed_root, tiny_model, tmp_path):
    import shutil

    root = tmp_path / "processed"
    shutil.copytree(processed_root, root)
    write_labels(pd.DataFrame({"filename": ["real/v0", "real/v1", "fake/v0", "fake/v1"], "label": [0, 0, 1, 1],
                               "split": "test"}), tmp_path / "labels.csv")
    shutil.rmtree(root / "fake" / "v1")  # deleted after the CSV was made
    m = evaluate_model(tiny_model, tmp_path / "labels.csv", root, split="test", threshold=0.5, progress=False)
    assert m["n"] == 3 and m["skipped"] == ["fake/v1: folder does not exist"]


# ---------------------------------------------------------------------------------- model files
class _RunsCode:
    """Unpickling this runs Path.touch(marker): what a malicious model file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (self.marker,))


def _bad_model(kind: str, folder, tiny_model):
    path = folder / f"model_4_acc_99.0_{kind}.pt"
    if kind == "not_a_model":
        path.write_text("<html>404 Not Found</html>\n")
    elif kind == "truncated":
        data = tiny_model.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif kind == "other_architecture":
        import torchvision

        torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    elif kind == "other_head":  # a dfdlib file whose metadata does not match its weights
        obj = torch.load(tiny_model, weights_only=True)
        obj["meta"]["model"]["hidden_dim"] = 64
        torch.save(obj, path)
    elif kind == "runs_code":
        torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsCode(folder / "CODE_RAN")}, path)
    elif kind == "resume_checkpoint":
        torch.save({"format": "dfdlib-last/1", "epoch": 1}, path)
    return path


MODEL_CASES = {
    "not_a_model": "is not a PyTorch model file or is truncated/corrupt",
    "truncated": "is not a PyTorch model file or is truncated/corrupt",
    "other_architecture": "not of the original project's layout",
    "other_head": "holds weights of another architecture",
    "runs_code": "refused for safety",
    "resume_checkpoint": "prediction needs the model_*.pt file",
}


@pytest.mark.parametrize("kind", list(MODEL_CASES))
def test_bad_model_file_is_refused_by_every_entry_point(kind, tiny_model, bad_videos, tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    path = _bad_model(kind, models, tiny_model)
    with pytest.raises(ValueError) as exc:
        load_model(path)
    assert str(path) in str(exc.value) and MODEL_CASES[kind] in str(exc.value)
    # CLI: one line naming the file, exit code 1
    rc = cli.main(["predict", str(path), str(bad_videos / "fake" / "gray.mp4"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and str(path) in err and MODEL_CASES[kind] in err and "Traceback" not in err
    # the registry lists it as an error row and still picks the good file beside it
    (models / tiny_model.name).write_bytes(tiny_model.read_bytes())
    listed = list_models(models).set_index("name")
    if kind in ("not_a_model", "truncated", "runs_code"):
        assert isinstance(listed.loc[path.name, "error"], str)
    assert listed.loc[tiny_model.name, "error"] is None or pd.isna(listed.loc[tiny_model.name, "error"])
    assert not (models / "CODE_RAN").exists()  # weights_only=True everywhere: the payload never ran


# ---------------------------------------------------------------------------------- settings
@pytest.mark.parametrize("field, value, words", [
    ("sequence_length", 0, "sequence_length must be >= 1"),
    ("batch_size", 0, "batch_size must be >= 1"),
    ("num_epochs", 0, "num_epochs must be >= 1"),
    ("learning_rate", 0.0, "learning_rate must be > 0"),
])
def test_bad_training_settings_fail_before_any_work(processed_root, tmp_path, field, value, words, capsys):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**{field: value})
    flag = "--" + field.replace("_", "-")
    rc = cli.main(["train", "--csv", str(tmp_path / "l.csv"), "--data", str(processed_root), flag, str(value)])
    err = capsys.readouterr().err
    assert rc == 1 and words in err and "Traceback" not in err


def test_zero_frames_and_zero_sequence_length_elsewhere(bad_videos, tiny_model, processed_root):
    from dfdlib.data import FaceSequenceDataset, frames_to_clip

    with pytest.raises(ValueError, match="frames must be >= 1"):
        preprocess_dataset(bad_videos, processed_root.parent / "never", PreprocessConfig(frames=0), progress=False)
    with pytest.raises(ValueError, match="sequence_length must be >= 1"):
        frames_to_clip([np.zeros((8, 8, 3), np.uint8)], 0, 32)
    with pytest.raises(ValueError, match="sequence_length must be >= 1"):
        FaceSequenceDataset(pd.DataFrame({"filename": ["real/v0"], "label": [0]}), processed_root, 0)
    with pytest.raises(ValueError, match="sequence_length must be >= 1"):
        predict_video(tiny_model, bad_videos / "fake" / "gray.mp4", sequence_length=0)


def test_sequence_longer_than_the_frames_is_padded_and_said(bad_videos, tiny_model, processed_root, tmp_path):
    # predict: a 20-frame video asked for 40 frames → every frame, the clip padded, and the reason says so
    pred = predict_video(tiny_model, bad_videos / "fake" / "gray.mp4", sequence_length=40)
    assert pred.status == "ok" and pred.frames_used == 40 and "padded" in pred.reason
    # labels check: 4-frame folders for sequence_length 8 are an error that says what to do...
    csv = tmp_path / "l.csv"
    csv.write_text("filename,label\nreal/v0,0\nfake/v0,1\n")
    with pytest.raises(LabelsError, match="fewer than sequence_length=8") as exc:
        validate_labels(csv, processed_root, sequence_length=8)
    assert "short='drop'" in str(exc.value) and "short='pad'" in str(exc.value)
    # ...and training pads them with a warning instead of failing after hours
    with pytest.warns(UserWarning, match="last frame will be repeated"):
        ds_check = validate_labels(csv, processed_root, sequence_length=8, short="pad")
    assert ds_check["frames"].tolist() == [4, 4]


def test_evaluate_batch_size_zero_is_a_clear_error(tiny_model, processed_root, tmp_path, capsys):
    write_labels(pd.DataFrame({"filename": ["real/v0", "fake/v0"], "label": [0, 1], "split": "test"}),
                 tmp_path / "l.csv")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        evaluate_model(tiny_model, tmp_path / "l.csv", processed_root, batch_size=0, progress=False)
    rc = cli.main(["evaluate", str(tiny_model), "--csv", str(tmp_path / "l.csv"), "--data", str(processed_root),
                   "--batch-size", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "batch_size must be >= 1" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_requested_without_cuda(tiny_model, processed_root, tmp_path, capsys):
    from dfdlib.utils import resolve_device

    assert resolve_device("auto").type in ("cpu", "mps")  # "auto" falls back
    for call in (lambda: resolve_device("cuda"), lambda: load_model(tiny_model, device="cuda:0")):
        with pytest.raises(RuntimeError, match="no CUDA GPU") as exc:
            call()
        assert "device='auto'" in str(exc.value)
    rc = cli.main(["train", "--csv", str(tmp_path / "l.csv"), "--data", str(processed_root), "--out",
                   str(tmp_path / "run"), "--device", "cuda"])
    err = capsys.readouterr().err
    assert rc == 1 and "no CUDA GPU" in err and "device='auto'" in err and "Traceback" not in err


# ------------------------------------------------------------------------- unwritable output, full disk
@pytest.fixture
def readonly_dir(tmp_path, monkeypatch):
    """A folder nothing can be created in: chmod 0555, and for root (which ignores modes) a simulated EACCES
    on creating files or folders inside it."""
    d = tmp_path / "readonly"
    d.mkdir()
    d.chmod(0o555)
    probe = d / ".probe"
    try:
        probe.mkdir()
    except PermissionError:
        pass
    else:  # running as root: refuse creation ourselves, as a read-only mount would
        probe.rmdir()
        inside = str(d) + os.sep
        real_open, real_mkdir = os.open, os.mkdir

        def deny(path):
            if os.path.abspath(os.fspath(path)).startswith(inside):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

        def guarded_open(path, flags, *args, **kwargs):
            if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
                deny(path)
            return real_open(path, flags, *args, **kwargs)

        def guarded_mkdir(path, *args, **kwargs):
            deny(path)
            return real_mkdir(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", guarded_open)
        monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    yield d
    d.chmod(0o755)


def test_unwritable_output_folder_is_named_before_the_work_starts(readonly_dir, bad_videos, processed_root,
                                                                  tiny_model, tmp_path, capsys):
    src = tmp_path / "one"
    (src / "real").mkdir(parents=True)
    (src / "real" / "a.mp4").write_bytes(b"")
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        import dfdlib.preprocess.run as pre

        mp.setattr(pre, "run_tasks", lambda *a, **k: calls.append(1) or [])
        with pytest.raises(PermissionError, match="not writable") as exc:
            preprocess_dataset(src, readonly_dir, CFG, progress=False)
    assert str(readonly_dir) in str(exc.value) and not calls  # no video was processed in vain
    # labels: the CSV path named, not a temp file
    with pytest.raises(PermissionError, match="not writable") as exc:
        from_folders(processed_root, out_csv=readonly_dir / "labels.csv")
    assert str(readonly_dir) in str(exc.value)
    # predict --out: refused before predicting, not after hours of work
    rc = cli.main(["predict", str(tiny_model), str(bad_videos / "real" / "zero.mp4"), "--out",
                   str(readonly_dir / "p.csv"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "not writable" in err and str(readonly_dir) in err and "Traceback" not in err
    # train: refused before the first epoch
    csv = tmp_path / "l.csv"
    write_labels(pd.DataFrame({"filename": ["real/v0", "real/v1", "fake/v0", "fake/v1"], "label": [0, 0, 1, 1],
                               "split": ["train", "val", "train", "val"]}), csv)
    with pytest.raises(PermissionError, match="not writable"):
        train(TrainConfig(dataset_path=str(processed_root), csv_file=str(csv), out_dir=str(readonly_dir / "run"),
                          sequence_length=4, batch_size=2, num_epochs=1, device="cpu", num_workers=0,
                          backbone="tiny", weights=None, hidden_dim=16, image_size=32, show_progress=False))


def test_disk_full_while_writing_crops_skips_that_video_and_keeps_the_rest(tmp_path, monkeypatch):
    src = tmp_path / "videos"
    (src / "real").mkdir(parents=True)
    for name in ("a", "b", "c"):
        write_video(src / "real" / f"{name}.mp4", n=12, face=still)
    real_imwrite = cv2.imwrite

    def imwrite(path, *args, **kwargs):  # the disk is full while b's crops are written
        if os.sep + ".b.tmp-" in str(path) and str(path).endswith("frame_2.jpg"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_imwrite(path, *args, **kwargs)

    monkeypatch.setattr(cv2, "imwrite", imwrite)
    out = tmp_path / "processed"
    report = preprocess_dataset(src, out, CFG, progress=False).set_index("video")
    assert report.loc["real/a.mp4", "status"] == "ok" and report.loc["real/c.mp4", "status"] == "ok"
    reason = report.loc["real/b.mp4", "reason"]
    assert report.loc["real/b.mp4", "status"] != "ok"
    assert "No space left on device" in reason and "free disk space" in reason and "rerun" in reason
    assert sorted(p.name for p in (out / "real").iterdir()) == ["a", "c"]  # no half-written b, no temp folder
    # after freeing space, the rerun does only b
    monkeypatch.setattr(cv2, "imwrite", real_imwrite)
    again = preprocess_dataset(src, out, CFG, progress=False).set_index("video")
    assert again["status"].to_dict() == {"real/a.mp4": "skipped_done", "real/b.mp4": "ok",
                                         "real/c.mp4": "skipped_done"}


def test_preprocess_exits_1_and_prints_its_summary_with_no_progress_when_videos_were_lost(tmp_path, monkeypatch,
                                                                                        capsys):
    """Issue 25.3: 1 of 3 videos lost to a full disk, 1 without a face: the summary is printed with
    --no-progress, the lost video is named on stderr and the exit status is 1 (a SLURM job can tell)."""
    src = tmp_path / "videos"
    (src / "real").mkdir(parents=True)
    for name in ("a", "b"):
        write_video(src / "real" / f"{name}.mp4", n=12, face=still)
    write_video(src / "real" / "c.mp4", n=12, face=None)  # a wall, no face
    real_imwrite = cv2.imwrite

    def imwrite(path, *args, **kwargs):
        if os.sep + ".b.tmp-" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_imwrite(path, *args, **kwargs)

    monkeypatch.setattr(cv2, "imwrite", imwrite)
    argv = ["preprocess", str(src), str(tmp_path / "out"), "--frames", "4", "--size", "32", "--no-progress"]
    rc = cli.main(argv)
    text = capsys.readouterr()
    assert rc == 1 and "Traceback" not in text.out + text.err
    assert "preprocess: 3 videos: 1 ok" in text.out and "1 no_face" in text.out and "1 unreadable" in text.out
    assert "No space left on device" in text.out and "1 of 3 videos failed" in text.err
    monkeypatch.setattr(cv2, "imwrite", real_imwrite)  # space freed: the rerun does b, a video without a face is
    assert cli.main(argv) == 0                        # what the data holds, not a failure
    assert "1 ok, 1 skipped_done, 1 no_face" in capsys.readouterr().out


@pytest.mark.parametrize("splits, problem", [
    (["train", "val", "train", ""], "line 5: empty split"),
    (["train", "train", "train", "test"], "no 'val' rows"),
])
def test_labels_check_refuses_what_train_refuses(processed_root, tmp_path, capsys, splits, problem):
    """Issue 25.5: `dfd labels --check` said OK (with a '(none): 0 real / 1 fake' imbalance warning) to a CSV
    that `dfd train` refused. One validation: both refuse it with the same message naming the file and line."""
    csv = tmp_path / "l.csv"
    write_labels(pd.DataFrame({"filename": ["real/v0", "real/v1", "fake/v0", "fake/v1"], "label": [0, 0, 1, 1],
                               "split": splits}), csv)
    assert cli.main(["labels", str(processed_root), "--check", str(csv)]) == 1
    check = capsys.readouterr()
    assert "OK" not in check.out and str(csv) in check.err and problem in check.err and "(none)" not in check.err
    rc = cli.main(["train", "--csv", str(csv), "--data", str(processed_root), "--out", str(tmp_path / "run"),
                   "--sequence-length", "4", "--backbone", "tiny", "--weights", "none", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and problem in err and str(csv) in err and "Traceback" not in err
    assert err.split(": error: ", 1)[1].strip() == check.err.split("dfd labels: ", 1)[1].strip()  # the same words


def test_disk_full_while_saving_a_checkpoint_says_how_to_resume(processed_root, tmp_path, monkeypatch, capsys):
    import dfdlib.training.checkpoint as ck

    csv = tmp_path / "l.csv"
    write_labels(pd.DataFrame({"filename": ["real/v0", "real/v1", "fake/v0", "fake/v1"], "label": [0, 0, 1, 1],
                               "split": ["train", "val", "train", "val"]}), csv)
    save_last = ck.save_last

    def full_disk(path, **state):
        if state["epoch"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        save_last(path, **state)

    monkeypatch.setattr(ck, "save_last", full_disk)
    rc = cli.main(["train", "--csv", str(csv), "--data", str(processed_root), "--out", str(tmp_path / "run"),
                   "--sequence-length", "4", "--batch-size", "2", "--epochs", "3", "--backbone", "tiny",
                   "--weights", "none", "--hidden-dim", "16", "--image-size", "32", "--num-workers", "0",
                   "--device", "cpu", "--no-show-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "No space left on device" in err and "--resume" in err and "Traceback" not in err
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 1  # epoch 1 is safe


def test_cli_errors_are_one_line_for_missing_inputs(tmp_path, capsys):
    for argv in (["preprocess", str(tmp_path / "nope"), str(tmp_path / "out")],
                 ["labels", str(tmp_path / "nope")],
                 ["evaluate", str(tmp_path / "nope.pt"), "--csv", "x.csv", "--data", "y"],
                 ["models", "--dir", str(tmp_path / "nope")]):
        assert cli.main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "nope" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
