"""The models/ registry: metadata first, both file-name schemes, numeric accuracy, bad files listed."""
from __future__ import annotations

import pytest
import torch

from dfdlib import cli
from dfdlib.model import ResNeXtLSTM, save_model
from dfdlib.predict.registry import best_model, list_models, parse_model_name


def _ours(path, seq, acc=None, created="2026-01-01T00:00:00"):
    model = ResNeXtLSTM(backbone="tiny", hidden_dim=8)
    meta = {"sequence_length": seq, "image_size": 64, "class_names": ["REAL", "FAKE"], "threshold": 0.5,
            "created": created, "preprocess": None,
            "metrics": {} if acc is None else {"accuracy": acc}}
    save_model(path, model, meta)


def _legacy(path):
    # A bare state_dict with the original project's key layout (tiny tensors: the registry never builds it).
    torch.save({"model.0.weight": torch.zeros(2, 3, 1, 1), "lstm.weight_ih_l0": torch.zeros(8, 2),
                "lstm.weight_hh_l0": torch.zeros(8, 2), "linear1.weight": torch.zeros(2, 2),
                "linear1.bias": torch.zeros(2)}, path)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    _ours(d / "model_10_acc_80.0_final_data.pt", 10, 0.80)
    # As strings "9.5" > "85.0" > "10.2"; as numbers 85.0 wins.
    _ours(d / "model_20_acc_9.5_final_data.pt", 20, 0.095)
    _ours(d / "model_20_acc_10.2_final_data.pt", 20, 0.102)
    _ours(d / "model_20_acc_85.0_final_data.pt", 20, 0.85)
    # Metadata wins over a name that says nothing; a name is the fallback when metadata lacks accuracy.
    _ours(d / "renamed_by_user.pt", 40, 0.91)
    _ours(d / "model_40_acc_93.5_final_data.pt", 40, None)
    _legacy(d / "model_84_acc_10_frames_final_data.pt")
    _legacy(d / "model_87_acc_20_frames_final_data.pt")
    (d / "broken.pt").write_bytes(b"this is not a torch file")
    (d / "notes.txt").write_text("ignored: not a model file suffix")
    return d


@pytest.mark.parametrize("name, seq, acc, scheme", [
    ("model_84_acc_10_frames_final_data.pt", 10, 84.0, "original"),
    ("model_97_acc_100_frames_FF_data.pt", 100, 97.0, "original"),
    ("model_100_acc_95.8_final_data.pt", 100, 95.8, "dfdlib"),
    ("model_20_acc_9.5_final_data.pt", 20, 9.5, "dfdlib"),
    ("my_detector.pt", None, None, None),
])
def test_parse_model_name_both_schemes(name, seq, acc, scheme):
    assert parse_model_name(name) == {"sequence_length": seq, "accuracy": acc, "scheme": scheme}


def test_list_models_reads_metadata_and_names(models_dir):
    df = list_models(models_dir)
    rows = df.set_index("name")
    assert len(df) == 9  # notes.txt is not listed
    assert rows.loc["renamed_by_user.pt", "sequence_length"] == 40
    assert rows.loc["renamed_by_user.pt", "accuracy"] == pytest.approx(91.0)
    assert rows.loc["renamed_by_user.pt", "backbone"] == "tiny"
    assert rows.loc["model_40_acc_93.5_final_data.pt", "accuracy"] == pytest.approx(93.5)
    legacy = rows.loc["model_84_acc_10_frames_final_data.pt"]
    assert (legacy["sequence_length"], legacy["accuracy"], bool(legacy["legacy"])) == (10, 84.0, True)
    assert not rows.loc["model_10_acc_80.0_final_data.pt", "legacy"]
    assert df["accuracy"].dtype == float
    assert "cannot read" in rows.loc["broken.pt", "error"]
    assert rows.drop(index="broken.pt")["error"].isna().all()


def test_best_model_compares_accuracy_as_numbers(models_dir):
    assert best_model(20, models_dir).name == "model_87_acc_20_frames_final_data.pt"
    assert best_model(20, models_dir, include_legacy=False).name == "model_20_acc_85.0_final_data.pt"
    assert best_model(10, models_dir).name == "model_84_acc_10_frames_final_data.pt"
    assert best_model(40, models_dir).name == "model_40_acc_93.5_final_data.pt"


def test_best_model_newest_wins_a_tie(tmp_path):
    _ours(tmp_path / "model_10_acc_90.0_a.pt", 10, 0.9, created="2026-01-01T00:00:00")
    _ours(tmp_path / "model_10_acc_90.0_b.pt", 10, 0.9, created="2026-03-01T00:00:00")
    assert best_model(10, tmp_path).name == "model_10_acc_90.0_b.pt"


def test_best_model_error_lists_what_is_there(models_dir):
    with pytest.raises(FileNotFoundError) as e:
        best_model(30, models_dir)
    msg = str(e.value)
    assert "sequence_length=30" in msg and "10 (2 files)" in msg and "20 (4 files)" in msg
    assert "1 file(s) could not be read" in msg


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_models(tmp_path / "nope")


def test_cli_models_lists_and_picks(models_dir, capsys):
    assert cli.main(["models", "--dir", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert "broken.pt" in out and "cannot read" in out
    assert "best for  20 frames: model_87_acc_20_frames_final_data.pt" in out


def test_a_run_moved_aside_into_previous_is_never_picked(tmp_path, capsys):
    """Issue 25.1: retraining into the same --out moves the old run into previous/<time>/; its (better) model
    file must not be picked by best_model, `dfd models` or the app over the new run's file."""
    run = tmp_path / "models" / "run"
    (run / "previous" / "20260101-120000").mkdir(parents=True)
    _ours(run / "previous" / "20260101-120000" / "model_8_acc_91.7_final_data.pt", 8, 0.917)
    _ours(run / "model_8_acc_50.0_final_data.pt", 8, 0.50)
    models = tmp_path / "models"
    assert best_model(8, models) == run / "model_8_acc_50.0_final_data.pt"
    assert list(list_models(models)["name"]) == ["model_8_acc_50.0_final_data.pt"]
    assert len(list_models(models, include_previous=True)) == 2
    assert cli.main(["models", "--dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert "best for   8 frames: run/model_8_acc_50.0_final_data.pt" in out and "1 model file(s) of earlier" in out
    assert cli.main(["models", "--dir", str(models), "--all"]) == 0
    out = capsys.readouterr().out
    assert "91.7" in out and "best for   8 frames: run/model_8_acc_50.0_final_data.pt" in out
