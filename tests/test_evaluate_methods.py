"""`dfd evaluate` per method/source and across datasets (train on one, test on another), on tiny frame
folders and an untrained tiny model: the numbers are checked against predictions.csv, not against luck."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from dfdlib import cli
from dfdlib.metrics import best_threshold, compute_metrics, metrics_by_method
from dfdlib.model import ResNeXtLSTM, save_model
from dfdlib.predict.evaluate import evaluate_model
from dfdlib.utils import seed_everything

SEQ, SIZE = 4, 32


def frames(folder, n, seed, ext="jpg", pattern="frame_{}"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cv2.imwrite(str(folder / f"{pattern.format(i)}.{ext}"), rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("evm")
    first, rows = base / "ffpp", []
    for i in range(12):  # FF++-like processed tree: reals and two methods, train/val/test
        split = ("train", "val", "test")[i % 3]
        for label, rel, method in ((0, f"real/youtube/c23/{i:03d}", "real"),
                                   (1, f"fake/Deepfakes/c23/{i:03d}_x", "Deepfakes"),
                                   (1, f"fake/FaceSwap/c23/{i:03d}_x", "FaceSwap")):
            frames(first / rel, 5, seed=len(rows))
            rows.append((rel, label, split, f"g{i}", method))
    pd.DataFrame(rows, columns=["filename", "label", "split", "group", "method"]).to_csv(base / "ffpp.csv", index=False)
    second, rows = base / "celeb", []
    for i in range(6):  # a face-frame dataset (png, numbered from 1), no split column
        for label, rel, method in ((0, f"real/Celeb-real/id{i}_0000", "real"),
                                   (1, f"fake/Celeb-synthesis/id{i}_id9_0000", "Celeb-synthesis")):
            frames(second / rel, 5, seed=100 + len(rows), ext="png", pattern="{:04d}")
            rows.append((rel, label, method))
    pd.DataFrame(rows, columns=["filename", "label", "method"]).to_csv(base / "celeb.csv", index=False)
    seed_everything(0)
    model = save_model(base / "m.pt", ResNeXtLSTM(backbone="tiny", hidden_dim=16).eval(),
                       {"sequence_length": SEQ, "image_size": SIZE, "sampling": "even", "threshold": 0.5,
                        "class_names": ["REAL", "FAKE"]})
    return base, model


def test_by_method_and_cross_dataset_report(setup):
    base, model = setup
    torch.manual_seed(0)
    m = evaluate_model(model, base / "ffpp.csv", base / "ffpp", split="test", out_dir=base / "ev", progress=False,
                       cross_labels=base / "celeb.csv", cross_root=base / "celeb")
    preds = pd.read_csv(base / "ev" / "predictions.csv")
    assert len(preds) == 12 and set(preds["method"]) == {"real", "Deepfakes", "FaceSwap"}
    want = metrics_by_method(preds["label"], preds["prob_fake"], preds["method"], m["threshold"])
    assert list(m["by_method"]) == ["all", "Deepfakes", "FaceSwap"]
    for name in want.index:
        assert m["by_method"][name]["n_fake"] == want.loc[name, "n_fake"]
        assert m["by_method"][name]["n_real"] == 4
        assert m["by_method"][name]["accuracy"] == pytest.approx(want.loc[name, "accuracy"])
    assert (base / "ev" / "roc_by_method.png").stat().st_size > 0
    assert json.loads((base / "ev" / "metrics.json").read_text())["by_method"]["FaceSwap"]["n_fake"] == 4
    # the second dataset: every row (no split column), the first dataset's threshold, and the best one on it
    c = m["cross"]
    cp = pd.read_csv(base / "ev" / "cross" / "predictions.csv")
    assert c["split"] == "all" and c["n"] == len(cp) == 12
    assert c["threshold"] == m["threshold"]
    assert c["accuracy"] == pytest.approx(compute_metrics(cp["label"], cp["prob_fake"], m["threshold"])["accuracy"])
    assert c["best_threshold"] == pytest.approx(best_threshold(cp["label"], cp["prob_fake"]))
    assert c["at_best_threshold"]["accuracy"] == pytest.approx(
        compute_metrics(cp["label"], cp["prob_fake"], c["best_threshold"])["accuracy"])
    assert list(c["by_method"]) == ["all", "Celeb-synthesis"]
    assert (base / "ev" / "cross" / "roc_by_method.png").is_file()


def test_cli_prints_method_table_and_threshold_report(setup, capsys):
    base, model = setup
    assert cli.main(["evaluate", str(model), "--csv", str(base / "ffpp.csv"), "--data", str(base / "ffpp"),
                     "--cross-csv", str(base / "celeb.csv"), "--cross-data", str(base / "celeb"),
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "per method" in out and "Deepfakes" in out and "FaceSwap" in out
    assert "cross-dataset:" in out and "threshold report: calibrated" in out and "best threshold on this set" in out
    assert cli.main(["evaluate", str(model), "--csv", str(base / "ffpp.csv"), "--data", str(base / "ffpp"),
                     "--cross-csv", str(base / "celeb.csv"), "--no-progress"]) == 1
    assert "--cross-csv and --cross-data go together" in capsys.readouterr().err
