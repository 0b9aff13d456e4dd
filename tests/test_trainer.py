"""dfdlib.training.loop: config, overfitting a tiny set, run-folder outputs, exact resume, OOM, early stopping, CLI.

Most tests use a tiny processed folder built here (random-colour JPEG frames; fake clips carry a
visible checkerboard) so they need neither video decoding nor face detection.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from dfdlib.training.loop import TrainConfig, TrainResult, train

SPLITS = ["train"] * 4 + ["val"] * 2 + ["test"] * 2  # per class


def make_tiny_processed(root, n_frames: int = 6, size: int = 32, splits=SPLITS, seed: int = 0):
    """processed/<real|fake>/v<k>/frame_<i>.jpg + labels.csv (filename,label,split); returns (root, csv)."""
    import cv2

    rng = np.random.default_rng(seed)
    rows = []
    yy, xx = np.mgrid[:size, :size]
    checker = (((yy // 4) + (xx // 4)) % 2 * 80 - 40)[..., None]
    for label, cls in ((0, "real"), (1, "fake")):
        for k, split in enumerate(splits):
            folder = root / cls / f"v{k}"
            folder.mkdir(parents=True)
            base = rng.integers(60, 196, size=3)
            for i in range(n_frames):
                img = base + rng.normal(0, 8, (size, size, 3))
                if label:
                    img = img + checker
                bgr = np.clip(img, 0, 255).astype(np.uint8)[..., ::-1]
                cv2.imwrite(str(folder / f"frame_{i}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            rows.append({"filename": f"{cls}/v{k}", "label": label, "split": split})
    (root / "real" / "v0" / "faces.json").write_text(json.dumps({"preprocess": {"frames": n_frames, "size": size}}))
    csv = root.parent / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return root, csv


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_processed(tmp_path_factory.mktemp("tiny") / "processed")


def tiny_config(tiny, out, **kw) -> TrainConfig:
    root, csv = tiny
    base = dict(dataset_path=str(root), csv_file=str(csv), out_dir=str(out), sequence_length=4, batch_size=4,
                learning_rate=3e-3, num_epochs=2, device="cpu", num_workers=0, backbone="tiny", weights=None,
                hidden_dim=32, image_size=32, early_stopping=0, warmup_epochs=0, show_progress=False)
    return TrainConfig(**(base | kw))


def state_of(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------------------ config
def test_config_roundtrip_validation(tmp_path):
    cfg = TrainConfig(dataset_path=tmp_path / "p", weights="none", max_steps_per_epoch=3)
    d = cfg.to_dict()
    assert d["dataset_path"] == str(tmp_path / "p") and d["weights"] is None
    json.dumps(d)
    assert TrainConfig.from_dict(d) == cfg
    assert (cfg.learning_rate, cfg.num_epochs, cfg.batch_size, cfg.sequence_length) == (1e-3, 50, 4, 20)  # from scratch
    with pytest.raises(ValueError, match="unknown TrainConfig field.*'epochs'"):
        TrainConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="balance='oversample'.*weighted, sampler, none"):
        TrainConfig(balance="oversample")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    tiny_fp16 = make_tiny_processed(tmp_path / "processed", n_frames=2, size=16, splits=["train", "val"])
    with pytest.raises(ValueError, match="'fp16' needs a CUDA GPU"):
        train(tiny_config(tiny_fp16, tmp_path / "run", amp="fp16", sequence_length=2, image_size=16))


# ----------------------------------------------------------------------------- overfit + run folder
def test_tiny_model_overfits_and_writes_run_folder(tiny, tmp_path, capsys):
    from dfdlib import load_model
    from dfdlib.data import FaceSequenceDataset, build_transforms
    from dfdlib.labels.io import read_labels

    out = tmp_path / "run"
    cfg = tiny_config(tiny, out, num_epochs=8, augment=False, dropout=0.0, lr_schedule="none")
    res = train(cfg)
    assert isinstance(res, TrainResult)
    h = res.history
    assert list(h.columns[:8]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "lr",
                                   "seconds"]
    assert h["epoch"].tolist() == list(range(1, 9))
    # loss falls and the training set is learned completely
    assert h["train_loss"].iloc[-3:].mean() < 0.5 * h["train_loss"].iloc[0]
    assert h["train_acc"].iloc[-1] == 1.0
    last = state_of(res.last_path)
    assert last["epoch"] == 8
    model = load_model(res.best_model_path)
    model.load_state_dict(last["model"])
    ds = FaceSequenceDataset(read_labels(tiny[1]), tiny[0], 4, split="train", transform=build_transforms(False, 32))
    with torch.no_grad():
        x = torch.stack([ds[i][0] for i in range(len(ds))])
        prob = model.prob_fake(model(x))
    assert ((prob >= 0.5).long().tolist()) == ds.labels  # 100 % in eval mode too

    # the guide's epoch line, once per epoch, and the final test summary
    text = capsys.readouterr().out
    lines = re.findall(r"Epoch (\d+)/8  Loss: \d\.\d{4} \| Val_Loss: \d+\.\d{4} \| Accuracy: \d+\.\d% \| Val_AUC:", text)
    assert lines == [str(i) for i in range(1, 9)]
    assert "Final Test Accuracy:" in text and "Precision:" in text

    # run folder: one best model named after seq length + val accuracy, last.pt, history, metrics, plots
    models = sorted(out.glob("model_*_final_data.pt"))
    assert models == [res.best_model_path]
    best_row = h.loc[h["epoch"] == res.val_metrics["epoch"]].iloc[0]
    assert res.best_model_path.name == f"model_4_acc_{100 * best_row['val_acc']:.1f}_final_data.pt"
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == list(range(1, 9))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n"] == 4 and metrics["test"]["n_fake"] == 2
    assert metrics["test"] == res.test_metrics and metrics["threshold"] == res.threshold
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer", "log_loss",
                "confusion_matrix"):
        assert key in res.test_metrics
    for name in ("curves", "confusion", "roc"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"

    # the model file's metadata (design.md), readable with weights_only=True
    meta = state_of(res.best_model_path)["meta"]
    assert meta["sequence_length"] == 4 and meta["image_size"] == 32 and meta["sampling"] == "even"
    assert meta["class_names"] == ["REAL", "FAKE"] and meta["preprocess"] == {"frames": 6, "size": 32}
    assert meta["train"] == cfg.to_dict() and meta["threshold"] == res.threshold
    assert meta["metrics"]["accuracy"] == best_row["val_acc"] and "dfdlib_version" in meta and "created" in meta
    assert meta["model"]["backbone"] == "tiny" and meta["model"]["num_classes"] == 2

    # a fresh run in the same folder moves the earlier run aside (never two best models, nothing lost)
    first_model = res.best_model_path.name
    res2 = train(tiny_config(tiny, out, num_epochs=1, seed=7))
    assert sorted(out.glob("model_*_final_data.pt")) == [res2.best_model_path]
    assert len(pd.read_csv(out / "history.csv")) == 1
    (previous,) = (out / "previous").iterdir()
    assert (previous / first_model).is_file() and (previous / "last.pt").is_file()
    assert len(pd.read_csv(previous / "history.csv")) == len(res.history)


# ------------------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("workers,schedule,stop", [(0, "none", "epochs"), (2, "cosine", "kill")])
def test_resume_matches_uninterrupted_run(tiny, tmp_path, monkeypatch, workers, schedule, stop):
    from dfdlib.training import checkpoint as ck

    kw = dict(num_epochs=2, deterministic=True, augment=True, cache=True, grad_accum=2, lr_schedule=schedule,
              warmup_epochs=1, num_workers=workers, batch_size=2, dropout=0.4)
    full = train(tiny_config(tiny, tmp_path / "full", **kw))
    if stop == "epochs":  # the recipe: 1 epoch, then resume with num_epochs=2 (a constant LR)
        train(tiny_config(tiny, tmp_path / "split", **(kw | {"num_epochs": 1})))
    else:  # killed between epochs 1 and 2 of a 2-epoch run (the cosine schedule spans both)
        save_last = ck.save_last

        def killed(path, **state):
            save_last(path, **state)
            raise KeyboardInterrupt

        monkeypatch.setattr(ck, "save_last", killed)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config(tiny, tmp_path / "split", **kw))
        monkeypatch.setattr(ck, "save_last", save_last)
    assert state_of(tmp_path / "split" / "last.pt")["epoch"] == 1
    resumed = train(tiny_config(tiny, tmp_path / "split", **(kw | {"resume": True})))
    a, b = state_of(full.last_path), state_of(resumed.last_path)
    assert a["epoch"] == b["epoch"] == 2
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in ("state",):
        for pid in a["optimizer"][k]:
            for name, t in a["optimizer"][k][pid].items():
                assert torch.equal(t, b["optimizer"][k][pid][name]), (pid, name)
    cols = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "lr"]
    pd.testing.assert_frame_equal(full.history[cols], resumed.history[cols])
    assert full.best_model_path.name == resumed.best_model_path.name


def test_resume_refuses_changed_model_settings(tiny, tmp_path):
    train(tiny_config(tiny, tmp_path / "r", num_epochs=1))
    with pytest.raises(ValueError, match="hidden_dim: 32 → 16"):
        train(tiny_config(tiny, tmp_path / "r", num_epochs=2, resume=True, hidden_dim=16))


# -------------------------------------------------------------------- bce, sampler, freeze, accum
def test_bce_sampler_onecycle_freeze(tiny, tmp_path):
    from dfdlib import load_model
    from dfdlib.model import ResNeXtLSTM

    out = tmp_path / "bce"
    cfg = tiny_config(tiny, out, num_epochs=1, loss="bce", balance="sampler", lr_schedule="onecycle",
                      freeze_backbone_epochs=1, grad_accum=2, max_steps_per_epoch=1)
    train(cfg)
    torch.manual_seed(cfg.seed)
    init = ResNeXtLSTM(num_classes=1, hidden_dim=32, backbone="tiny").state_dict()
    after = state_of(out / "last.pt")["model"]
    back = [k for k in init if k.startswith("backbone.")]
    assert back and all(torch.equal(init[k], after[k]) for k in back)  # weights and BN statistics frozen
    assert not torch.equal(init["fc.weight"], after["fc.weight"])  # the head learned
    res = train(tiny_config(tiny, out, **(cfg.to_dict() | {"num_epochs": 2, "resume": True})))
    later = state_of(res.last_path)["model"]
    assert any(not torch.equal(after[k], later[k]) for k in back)  # unfrozen in epoch 2
    assert len(res.history) == 2
    model = load_model(res.best_model_path)
    assert model.meta["model"]["num_classes"] == 1
    p = model.prob_fake(model(torch.zeros(2, 4, 3, 32, 32)))
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()


# -------------------------------------------------------------------------------------------- errors
def test_out_of_memory_keeps_last_checkpoint(tiny, tmp_path, monkeypatch):
    from dfdlib.model import ResNeXtLSTM

    out = tmp_path / "oom"
    forward = ResNeXtLSTM.forward
    calls = {"n": 0}

    def fake_oom(self, x, *a, **k):
        if self.training:
            calls["n"] += 1
            if calls["n"] > 4:  # epoch 1 has 4 training batches; fail inside epoch 2
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, x, *a, **k)

    monkeypatch.setattr(ResNeXtLSTM, "forward", fake_oom)
    with pytest.raises(RuntimeError, match=r"out of memory in epoch 2 \(batch_size=2.*batch_size \(e.g. 1\).*"
                                           r"grad_accum=2.*sequence_length or image_size.*last.pt.*resume=True"):
        train(tiny_config(tiny, out, num_epochs=3, batch_size=2))
    assert state_of(out / "last.pt")["epoch"] == 1
    monkeypatch.setattr(ResNeXtLSTM, "forward", forward)
    res = train(tiny_config(tiny, out, num_epochs=2, batch_size=2, resume=True))
    assert res.history["epoch"].tolist() == [1, 2]


def test_label_errors(tiny, tmp_path):
    root, csv = tiny
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        train(tiny_config(tiny, tmp_path / "a", csv_file=str(tmp_path / "missing.csv")))
    df = pd.read_csv(csv)
    no_val = tmp_path / "no_val.csv"
    df.assign(split=df["split"].replace("val", "train")).to_csv(no_val, index=False)
    with pytest.raises(ValueError, match="no 'val' rows"):
        train(tiny_config(tiny, tmp_path / "b", csv_file=str(no_val)))


def test_no_split_column_is_split_here(tiny, tmp_path, capsys):
    root, csv = tiny
    plain = tmp_path / "plain.csv"
    pd.read_csv(csv)[["filename", "label"]].to_csv(plain, index=False)
    res = train(tiny_config(tiny, tmp_path / "run", csv_file=str(plain), num_epochs=1))
    assert "has no split column: split 70/15/15" in capsys.readouterr().out
    assert res.test_metrics["n"] >= 2 and res.val_metrics["n"] >= 2


def test_early_stopping_on_flat_validation(tiny, tmp_path, monkeypatch):
    from dfdlib.training import loop as tr

    def flat_evaluate(model, loader, n_items, loss_sum_fn, **kw):  # the validation loss never improves after epoch 1
        y = np.array(loader.dataset.ds.labels)
        return y, np.full(len(y), 0.5), 0.6931

    monkeypatch.setattr(tr, "evaluate", flat_evaluate)
    res = train(tiny_config(tiny, tmp_path / "es", num_epochs=10, early_stopping=2, monitor="val_loss",
                            max_steps_per_epoch=1))
    assert res.history["epoch"].tolist() == [1, 2, 3]  # best at 1, then 2 epochs without improvement
    assert state_of(res.last_path)["stopped"] is True
    # resuming a run that stopped early does not train further
    again = train(tiny_config(tiny, tmp_path / "es", num_epochs=10, early_stopping=2, monitor="val_loss",
                              resume=True))
    assert len(again.history) == 3


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_train(tiny, tmp_path, capsys):
    from dfdlib.cli import build_parser, main

    root, csv = tiny
    out = tmp_path / "cli"
    rc = main(["train", "--csv", str(csv), "--data", str(root), "--out", str(out), "--sequence-length", "4",
               "--epochs", "1", "--batch-size", "4", "--lr", "3e-3", "--backbone", "tiny", "--weights", "none",
               "--hidden-dim", "16", "--image-size", "32", "--num-workers", "0", "--no-show-progress",
               "--device", "cpu", "--max-steps-per-epoch", "1", "--no-augment"])
    assert rc == 0
    assert len(list(out.glob("model_4_acc_*_final_data.pt"))) == 1
    meta = state_of(next(out.glob("model_*.pt")))["meta"]
    assert meta["train"]["augment"] is False and meta["train"]["weights"] is None
    assert meta["train"]["max_steps_per_epoch"] == 1 and meta["train"]["learning_rate"] == 3e-3
    # every TrainConfig field has its flag
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    import dataclasses

    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in help_text, f.name
    # a bad CSV path is one clear line and exit code 1
    rc = main(["train", "--csv", str(tmp_path / "nope.csv"), "--data", str(root), "--out", str(out)])
    assert rc == 1 and "nope.csv" in capsys.readouterr().err


# ----------------------------------------------------------------------- the shared sample fixture
@pytest.mark.slow
def test_train_on_shared_sample_set(processed_dir, labels_csv, tmp_path):
    res = train(TrainConfig(dataset_path=str(processed_dir), csv_file=str(labels_csv), out_dir=str(tmp_path / "s"),
                            sequence_length=8, batch_size=4, learning_rate=3e-3, num_epochs=1, device="cpu",
                            num_workers=0, backbone="tiny", weights=None, hidden_dim=16, image_size=64,
                            show_progress=False))
    meta = state_of(res.best_model_path)["meta"]
    assert meta["preprocess"]["frames"] == 8 and meta["preprocess"]["size"] == 64  # from faces.json
    assert res.test_metrics is not None and res.test_metrics["n"] >= 1


def test_on_epoch_is_called_after_every_saved_epoch_with_the_history(tiny, tmp_path):
    seen = []

    def on_epoch(history):
        seen.append([row["epoch"] for row in history])
        assert (tmp_path / "run" / "history.csv").is_file()  # called after the epoch's files are written
        assert len(pd.read_csv(tmp_path / "run" / "history.csv")) == len(history)

    result = train(tiny_config(tiny, tmp_path / "run", num_epochs=3), on_epoch=on_epoch)
    assert seen == [[1], [1, 2], [1, 2, 3]] and len(result.history) == 3


def test_the_default_learning_rate_depends_on_the_backbone_weights():
    """Issue 25.9: a from-scratch backbone at the fine-tuning rate (1e-4) stayed at loss 0.69 without a word."""
    assert TrainConfig().learning_rate == 1e-4  # ImageNet weights: fine-tuning
    assert TrainConfig(weights="none").learning_rate == TrainConfig(weights=None).learning_rate == 1e-3
    assert TrainConfig(weights=None, learning_rate=5e-4).learning_rate == 5e-4  # given: kept
    assert "1e-3 from scratch" in TrainConfig.__dataclass_fields__["learning_rate"].metadata["help"]


def test_a_from_scratch_backbone_learns_at_the_default_rate_and_a_stalled_loss_is_said(tiny, tmp_path, capsys):
    cfg = tiny_config(tiny, tmp_path / "a", learning_rate=None, num_epochs=6, batch_size=2, warmup_epochs=1)
    assert cfg.learning_rate == 1e-3
    h = train(cfg).history
    assert h["train_loss"].iloc[-1] < 0.6, h  # it learns (at 1e-4: 0.70, 0.69, 0.70)
    assert "not learning" not in capsys.readouterr().out
    train(tiny_config(tiny, tmp_path / "b", learning_rate=1e-9, num_epochs=3, batch_size=2))
    out = capsys.readouterr().out
    assert "the training loss has stayed at 0.7" in out and "for 3 epochs" in out and "--lr 1e-08" in out
    assert "random weights (weights none)" in out
