"""Prediction, ensembles, evaluation and the predict/evaluate CLI on the shared tiny sample set."""
from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from dataclasses import asdict

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torchvision  # noqa: F401  before conftest's preprocess loads TensorFlow (the other order segfaults)

from dfdlib import cli
from dfdlib.data import FaceSequenceDataset
from dfdlib.labels.io import read_labels
from dfdlib.model import ResNeXtLSTM, load_model, save_model
from dfdlib.predict.ensemble import Ensemble
from dfdlib.predict.evaluate import evaluate_model
from dfdlib.predict.verdict import (
    Prediction,
    predict_folder,
    predict_video,
    preprocess_config_for,
)
from dfdlib.preprocess.faces import PreprocessConfig, default_detector
from dfdlib.utils import seed_everything

SEQ, SIZE = 8, 64  # conftest's processed_dir: 8 frames per video, 64 px crops


def _meta(preprocess: dict | None, threshold: float = 0.5) -> dict:
    return {"sequence_length": SEQ, "image_size": SIZE, "sampling": "even", "preprocess": preprocess,
            "class_names": ["REAL", "FAKE"], "threshold": threshold, "metrics": {"accuracy": 0.5}}


@pytest.fixture(scope="module")
def model_paths(processed_dir, labels_csv, tmp_path_factory):
    """Two tiny models: one trained a few steps on the train split, one at its seeded initialisation."""
    out = tmp_path_factory.mktemp("predict_models")
    faces_json = json.loads(next(processed_dir.rglob("faces.json")).read_text())
    preprocess = faces_json["preprocess"]  # the settings the frames were made with, as the trainer records
    assert preprocess["frames"] == SEQ and preprocess["size"] == SIZE
    seed_everything(0)
    model = ResNeXtLSTM(backbone="tiny", hidden_dim=32)
    ds = FaceSequenceDataset(read_labels(labels_csv), processed_dir, SEQ, split="train", image_size=SIZE)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(3):
        for clips, labels in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(clips), labels).backward()
            opt.step()
    trained = save_model(out / "model_8_acc_50.0_final_data.pt", model.eval(), _meta(preprocess))
    seed_everything(1)
    other = save_model(out / "model_8_acc_40.0_other.pt", ResNeXtLSTM(backbone="tiny", hidden_dim=32).eval(),
                       _meta(preprocess, threshold=0.3))
    return trained, other


@pytest.fixture(scope="module")
def model(model_paths):
    return load_model(model_paths[0])


@pytest.fixture(scope="module")
def detector():
    return default_detector()


@pytest.fixture(scope="module")
def blank_video(tmp_path_factory):
    """2 s of grey noise: decodes fine, shows no face."""
    path = tmp_path_factory.mktemp("blank") / "blank.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(50):
        writer.write(rng.integers(100, 140, size=(240, 320, 3), dtype=np.uint8))
    writer.release()
    return path


def test_predict_sample_videos(model, sample_dir, detector):
    for video in (sorted(sample_dir.glob("real/*.mp4"))[0], sorted(sample_dir.glob("fake/*.mp4"))[0]):
        pred = predict_video(model, video, detector=detector)
        assert isinstance(pred, Prediction) and pred.status == "ok", pred
        assert pred.label in ("REAL", "FAKE") and 0.0 <= pred.prob_fake <= 1.0
        expected = pred.prob_fake if pred.label == "FAKE" else 1 - pred.prob_fake  # at threshold 0.5 the two agree
        assert pred.confidence == pytest.approx(expected)
        assert pred.frames_used == SEQ and 1 <= pred.faces_found <= SEQ
        assert pred.threshold == 0.5 and pred.to_dict()["video"] == str(video)


def test_prediction_repeats_training_preprocessing(model, sample_dir, processed_dir, detector):
    """The clip built from the raw video equals the clip training read from the processed folder."""
    video = sorted(sample_dir.glob("fake/*.mp4"))[0]
    pred, clip = predict_video(model, video, detector=detector, return_clip=True)
    ds = FaceSequenceDataset(pd.DataFrame({"filename": [f"fake/{video.stem}"], "label": [1]}), processed_dir,
                             SEQ, image_size=SIZE)
    trained_clip = ds[0][0]
    assert clip.shape == trained_clip.shape == (SEQ, 3, SIZE, SIZE)
    assert torch.allclose(clip, trained_clip, atol=1e-5), (clip - trained_clip).abs().max()
    with torch.inference_mode():
        p_train = model.prob_fake(model(trained_clip[None])).item()
    assert pred.prob_fake == pytest.approx(p_train, abs=1e-5)


def test_longer_sequence_and_threshold(model, sample_dir, detector):
    video = sorted(sample_dir.glob("real/*.mp4"))[0]
    pred = predict_video(model, video, sequence_length=12, detector=detector, threshold=0.0)
    assert pred.frames_used == 12 and pred.label == "FAKE" and pred.threshold == 0.0
    assert pred.confidence == pytest.approx(0.5 + 0.5 * pred.prob_fake)  # prob 0 → 50 % sure, at the threshold


def test_no_face_video_gets_no_verdict(model, blank_video, detector):
    pred = predict_video(model, blank_video, detector=detector)
    assert pred.status == "no_face" and pred.label is None and pred.prob_fake is None
    assert pred.reason.startswith("no face found") and "blank.mp4" in pred.reason
    pred, clip = predict_video(model, blank_video, detector=detector, return_clip=True)
    assert clip is None


def test_unreadable_and_missing_files(model, tmp_path, detector):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    for path in (bad, empty, tmp_path / "missing.mp4"):
        pred = predict_video(model, path, detector=detector)
        assert pred.status == "unreadable" and pred.label is None and path.name in pred.reason


def test_video_shorter_than_training_frames_is_padded(model, sample_dir, tmp_path, detector):
    """5 frames for a model trained on 8 sampled frames: a verdict on all 5, padded as training pads."""
    src = cv2.VideoCapture(str(sorted(sample_dir.glob("real/*.mp4"))[0]))
    short = tmp_path / "short.mp4"
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*"mp4v"), 25, (320, 240))
    for _ in range(5):
        writer.write(src.read()[1])
    writer.release()
    src.release()
    pred = predict_video(model, short, detector=detector)
    assert pred.status == "ok" and pred.label in ("REAL", "FAKE") and pred.frames_used == SEQ
    assert pred.faces_found <= 5 and "only 5 frames" in pred.reason


def test_ensemble_is_the_mean_of_its_members(model_paths, sample_dir, detector):
    video = sorted(sample_dir.glob("fake/*.mp4"))[1]
    p1 = predict_video(model_paths[0], video, detector=detector).prob_fake
    p2 = predict_video(model_paths[1], video, detector=detector).prob_fake
    assert abs(p1 - p2) > 1e-4  # the test means something only if the members disagree
    ens = Ensemble(model_paths)
    pred = predict_video(ens, video, detector=detector)
    assert pred.prob_fake == pytest.approx((p1 + p2) / 2, abs=1e-6)
    assert pred.threshold == pytest.approx((0.5 + 0.3) / 2)
    assert predict_video(list(model_paths), video, detector=detector).prob_fake == pytest.approx(pred.prob_fake)


def test_an_ensemble_threshold_is_calibrated_on_its_averaged_validation_scores(model_paths, processed_dir,
                                                                              labels_csv):
    from dfdlib.metrics import best_threshold
    from dfdlib.predict.evaluate import _ensemble_scores

    ens = Ensemble(model_paths)
    assert ens.meta["threshold"] == pytest.approx(0.4) and ens.meta["threshold_source"].startswith("uncalibrated")
    from dfdlib import calibrate_threshold

    assert calibrate_threshold(ens, labels_csv, processed_dir, progress=False) is ens
    rows = pd.read_csv(labels_csv, dtype={"filename": str}).query("split == 'val'").reset_index(drop=True)
    _, y, p, _, _ = _ensemble_scores(ens.members, rows, processed_dir, SEQ, 8, False)
    assert ens.meta["threshold"] == pytest.approx(best_threshold(y, p))
    assert "calibrated on" in ens.meta["threshold_source"] and "split=val" in ens.meta["threshold_source"]


def test_ensemble_with_different_sequence_lengths_warns(model_paths, tmp_path):
    m2 = load_model(model_paths[1])
    m2.meta["sequence_length"] = 16
    with pytest.warns(UserWarning, match="sequence lengths"):
        ens = Ensemble([load_model(model_paths[0]), m2])
    assert ens.meta["sequence_length"] == SEQ and len(ens) == 2


def test_preprocessing_comes_from_the_model_file():
    custom = asdict(PreprocessConfig(frames=20, size=96, margin=0.5, min_confidence=0.8, detect_max_side=320))
    cfg = preprocess_config_for(_meta(custom), 10)
    assert (cfg.frames, cfg.size, cfg.margin, cfg.min_confidence, cfg.detect_max_side) == (20, 96, 0.5, 0.8, 320)
    assert preprocess_config_for(_meta(custom), 40).frames == 40  # a longer clip needs more frames
    legacy = {"image_size": 112, "sampling": "first", "preprocess": None, "path": "model_84_acc_10_frames.pt"}
    with pytest.warns(UserWarning, match="no preprocessing settings"):
        cfg = preprocess_config_for(legacy, 10)
    assert (cfg.size, cfg.sampling, cfg.frames) == (112, "first", 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per model file, not once per video
        preprocess_config_for(legacy, 10)


def test_legacy_models_get_tight_boxes_stretched_to_112(sample_dir, detector):
    """The original project's models (meta["legacy"], as load_model marks them) were trained on tight
    face_recognition boxes stretched to 112x112: predict crops that way without being told."""
    from dfdlib.data import frames_to_clip
    from dfdlib.model import LegacyResNeXtLSTM
    from dfdlib.predict.verdict import _as_stored
    from dfdlib.preprocess.faces import extract_faces

    meta = {"legacy": True, "sequence_length": 4, "image_size": 112, "sampling": "first", "preprocess": None,
            "class_names": ["FAKE", "REAL"], "threshold": 0.5, "path": "model_90_acc_4_frames_final_data.pt"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the crop style is known: no "no preprocessing settings" warning
        cfg = preprocess_config_for(meta, 4)
    assert (cfg.size, cfg.margin, cfg.crop, cfg.sampling) == (112, 0.0, "stretch", "first")
    torch.manual_seed(0)
    model = LegacyResNeXtLSTM(hidden_dim=16).eval()
    model.meta = meta
    video = sorted(sample_dir.glob("real/*.mp4"))[0]
    pred, clip = predict_video(model, video, detector=detector, return_clip=True)
    assert pred.status == "ok" and clip.shape == (4, 3, 112, 112)
    res = extract_faces(video, dataclasses.replace(cfg, max_faces=3), detector=detector)
    want = frames_to_clip(_as_stored(res.crops, cfg.jpeg_quality), 4, 112, sampling="first")
    assert torch.allclose(clip, want, atol=1e-5)
    square = extract_faces(video, dataclasses.replace(cfg, crop="square", max_faces=3), detector=detector)
    assert np.abs(square.crops[0].astype(float) - res.crops[0].astype(float)).mean() > 1  # not the square crop


def test_predict_folder_reports_bad_files(model_paths, sample_dir, blank_video, tmp_path, monkeypatch):
    folder = tmp_path / "incoming"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(sorted(sample_dir.glob("real/*.mp4"))[0], folder / "clip_a.MP4")
    shutil.copy(sorted(sample_dir.glob("fake/*.mp4"))[0], folder / "sub" / "clip_b.mp4")
    shutil.copy(blank_video, folder / "blank.mp4")
    (folder / "broken.avi").write_bytes(b"\x00" * 100)
    (folder / "readme.txt").write_text("not a video")
    import dfdlib.model

    loads = []
    real_load = dfdlib.model.load_model
    monkeypatch.setattr(dfdlib.model, "load_model", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    out_csv = tmp_path / "out" / "predictions.csv"
    df = predict_folder(model_paths[0], folder, out_csv=out_csv, progress=False)
    assert len(loads) == 1
    assert list(df.columns[:5]) == ["video", "label", "confidence", "prob_fake", "status"]
    status = dict(zip(df["video"], df["status"], strict=True))
    assert status == {"blank.mp4": "no_face", "broken.avi": "unreadable", "clip_a.MP4": "ok",
                      "sub/clip_b.mp4": "ok"}
    on_disk = pd.read_csv(out_csv)
    assert on_disk["video"].tolist() == df["video"].tolist()
    assert on_disk.loc[on_disk["status"] != "ok", "label"].isna().all()
    assert not predict_folder(model_paths[0], folder, recursive=False, progress=False)["video"].str.contains(
        "sub/").any()
    with pytest.raises(FileNotFoundError, match="no video files"):
        predict_folder(model_paths[0], tmp_path / "out", progress=False)  # holds only the CSV


def test_evaluate_model_writes_metrics_and_plots(model, labels_csv, processed_dir, tmp_path):
    m = evaluate_model(model, labels_csv, processed_dir, split="test", out_dir=tmp_path / "ev",
                       threshold="val", progress=False)
    labels = pd.read_csv(labels_csv)
    assert m["n"] == (labels["split"] == "test").sum() and m["split"] == "test"
    from dfdlib.metrics import best_threshold
    from dfdlib.predict.evaluate import _ensemble_scores

    val = labels.query("split == 'val'").reset_index(drop=True)
    _, yv, pv, _, _ = _ensemble_scores([model], val, processed_dir, SEQ, 8, False)
    assert m["threshold_source"] == "val" and m["threshold"] == pytest.approx(best_threshold(yv, pv))
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer", "log_loss",
                "confusion_matrix"):
        assert key in m
    assert sum(map(sum, m["confusion_matrix"])) == m["n"]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["n"] == m["n"]
    preds = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    assert len(preds) == m["n"] and preds["prob_fake"].between(0, 1).all()
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 0 and (tmp_path / "ev" / "roc.png").is_file()
    # A fixed threshold is applied as given; None takes the model file's.
    fixed = evaluate_model(model, labels_csv, processed_dir, split="test", threshold=0.0, progress=False)
    assert fixed["threshold"] == 0.0 and fixed["recall"] in (1.0, None)
    assert evaluate_model(model, labels_csv, processed_dir, threshold=None, progress=False)["threshold"] == 0.5
    with pytest.raises(ValueError, match="no rows with split='holdout'"):
        evaluate_model(model, labels_csv, processed_dir, split="holdout", progress=False)
    no_split = pd.read_csv(labels_csv).drop(columns=["split"])
    with pytest.raises(ValueError, match="no 'split' column"):
        evaluate_model(model, no_split, processed_dir, split="test", progress=False)


def test_cli_predict_explain_and_evaluate(model_paths, sample_dir, labels_csv, processed_dir, tmp_path, capsys):
    video = sorted(sample_dir.glob("fake/*.mp4"))[0]
    out_csv = tmp_path / "preds.csv"
    rc = cli.main(["predict", str(model_paths[0]), str(video), str(tmp_path / "nope.mp4"), "--out", str(out_csv),
                   "--explain", str(tmp_path / "cam"), "--no-progress"])
    assert rc == 1  # one video without a verdict (issue 25.3)
    text = capsys.readouterr().out
    assert "unreadable" in text and "faces" in text and "1 without a verdict (1 unreadable); exit status 1" in text
    df = pd.read_csv(out_csv)
    assert df["status"].tolist() == ["ok", "unreadable"]
    pngs = sorted((tmp_path / "cam").rglob("*.png"))
    assert len(pngs) == 4 and cv2.imread(str(pngs[0])).shape == (SIZE, SIZE, 3)
    # two model files = an ensemble
    assert cli.main(["predict", str(model_paths[0]), str(model_paths[1]), "--video", str(video),
                     "--no-progress"]) == 0
    assert cli.main(["evaluate", str(model_paths[0]), "--csv", str(labels_csv), "--data", str(processed_dir),
                     "--threshold", "0.5", "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    accuracy_row = next(line for line in text.splitlines() if line.startswith("Accuracy"))
    assert f"{100 * ev['accuracy']:5.1f}%" in accuracy_row  # the table prints what metrics.json holds
    assert f"threshold {ev['threshold']:.3f}" in text and ev["threshold"] == 0.5 and ev["threshold_source"] == "given"
    assert cli.main(["predict", str(video)]) == 1  # no model and no --sequence-length: a clear error
    assert "no model file" in capsys.readouterr().err


# ---------------------------------------------------------------- several people: one score per face
class MeanModel(torch.nn.Module):
    """A model whose score we control: prob_fake = sigmoid(gain * mean of the normalised clip)."""

    def __init__(self, gain: float = 4.0):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(gain))
        self.meta = _meta(asdict(PreprocessConfig(frames=SEQ, size=SIZE)))

    def forward(self, x):
        return (self.gain * x.mean(dim=(1, 2, 3, 4)))[:, None]

    def prob_fake(self, logits):
        return torch.sigmoid(logits[:, 0])


@pytest.fixture(scope="module")
def two_face_pair(tmp_path_factory):
    from two_faces import write_pair

    return write_pair(tmp_path_factory.mktemp("two_faces"))


def test_every_face_is_scored_and_the_most_fake_one_decides(two_face_pair, detector):
    _, fake = two_face_pair
    m = MeanModel()
    pred, clip = predict_video(m, fake, detector=detector, return_clip=True)
    assert pred.status == "ok" and [f["face"] for f in pred.faces] == [0, 1]
    p0, p1 = (f["prob_fake"] for f in pred.faces)
    assert p0 != pytest.approx(p1, abs=1e-3)
    assert pred.prob_fake == pytest.approx(max(p0, p1), abs=1e-6)
    assert pred.faces[0]["box"][0] < 240 < pred.faces[1]["box"][0] and pred.faces[0]["frames"] == SEQ
    with torch.inference_mode():
        assert m.prob_fake(m(clip[None])).item() == pytest.approx(pred.prob_fake, abs=1e-5)  # the top face's clip
    between = (p0 + p1) / 2
    assert predict_video(m, fake, detector=detector, threshold=between).label == "FAKE"  # one face past it
    main_only = predict_video(m, fake, detector=detector, threshold=between, max_faces=1)
    assert len(main_only.faces) == 1 and main_only.prob_fake == pytest.approx(p0, abs=1e-6)
    assert main_only.label == ("FAKE" if p0 >= between else "REAL")


def test_two_face_fake_end_to_end_per_face_verdicts(two_face_pair, detector, tmp_path):
    """Preprocess the pair with max_faces=2, train a tiny model on its faces (the swapped face fake, the
    others real), then predict: the fake's verdict comes from its swapped face, the CSV has every face."""
    from dfdlib import preprocess_dataset

    original, fake = two_face_pair
    src = tmp_path / "src"
    for label, video in (("real", original), ("fake", fake)):
        (src / label).mkdir(parents=True)
        shutil.copy(video, src / label / video.name)
    cfg = PreprocessConfig(frames=SEQ, size=SIZE, max_faces=2)
    report = preprocess_dataset(src, tmp_path / "proc", cfg, progress=False)
    assert list(report["faces"]) == [2, 2]
    rows = pd.DataFrame({"filename": ["real/two_original/face_0", "real/two_original/face_1",
                                      "fake/two_fake/face_0", "fake/two_fake/face_1"], "label": [0, 0, 0, 1]})
    ds = FaceSequenceDataset(rows, tmp_path / "proc", SEQ, image_size=SIZE)
    clips, labels = map(torch.stack, zip(*[(c, torch.tensor(y)) for c, y in (ds[i] for i in range(4))], strict=True))
    seed_everything(0)
    model = ResNeXtLSTM(backbone="tiny", hidden_dim=32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    weight = torch.tensor([1.0, 3.0])  # three real faces, one fake
    for _ in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.train()(clips), labels, weight=weight)
        loss.backward()
        opt.step()
    path = save_model(tmp_path / "model_8_two.pt", model.eval(), _meta(asdict(cfg)))
    df = predict_folder(path, src, out_csv=tmp_path / "preds.csv", progress=False)
    got = df.set_index("video")
    assert got.loc["fake/two_fake.mp4", "label"] == "FAKE" and got.loc["real/two_original.mp4", "label"] == "REAL"
    faces = json.loads(got.loc["fake/two_fake.mp4", "faces"])
    assert [f["face"] for f in faces] == [0, 1] and faces[1]["prob_fake"] >= 0.5 > faces[0]["prob_fake"]
    assert got.loc["fake/two_fake.mp4", "prob_fake"] == pytest.approx(faces[1]["prob_fake"], abs=1e-6)
    assert all(f["prob_fake"] < 0.5 for f in json.loads(got.loc["real/two_original.mp4", "faces"]))
    on_disk = pd.read_csv(tmp_path / "preds.csv")
    assert list(on_disk["n_faces"]) == [2, 2] and json.loads(on_disk["faces"][0])[1]["face"] == 1
