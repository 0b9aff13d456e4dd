"""The web app's computations without the web (no Gradio needed): upload checks, model menu, windows,
and that `import dfdlib` / `dfd --help` do not import Gradio."""
from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest
import torch

from dfdlib.app import core as app_core
from dfdlib.model import ResNeXtLSTM, save_model


def test_check_upload_names_the_file_and_what_to_do(tmp_path):
    ok = tmp_path / "Clip.MP4"
    ok.write_bytes(b"x" * 1000)
    assert app_core.check_upload(ok, max_mb=1) is None  # content is judged by the decoder, later
    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF")
    assert "report.pdf: unsupported file type '.pdf'" in app_core.check_upload(doc)
    assert "(no extension)" in app_core.check_upload(tmp_path / "README")
    empty = tmp_path / "empty.mov"
    empty.touch()
    assert "empty.mov: the file is empty (0 bytes)" in app_core.check_upload(empty)
    assert "did not arrive" in app_core.check_upload(tmp_path / "gone.mp4")
    assert "0.0 MB is over the 1e-05 MB limit" in app_core.check_upload(ok, max_mb=1e-5)


def _save(path, seq, acc):
    meta = {"sequence_length": seq, "image_size": 32, "class_names": ["REAL", "FAKE"], "threshold": 0.5,
            "metrics": {"accuracy": acc}}
    return save_model(path, ResNeXtLSTM(backbone="tiny", hidden_dim=8).eval(), meta)


def test_model_menu_and_resolution(tmp_path):
    with pytest.raises(FileNotFoundError, match="no readable model file"):
        (tmp_path / "m").mkdir()
        app_core.resolve_model(app_core.BEST, None, tmp_path / "m")
    a = _save(tmp_path / "m" / "model_8_acc_70.0_a.pt", 8, 0.70)
    b = _save(tmp_path / "m" / "sub" / "model_8_acc_90.0_b.pt", 8, 0.90)
    c = _save(tmp_path / "m" / "model_20_acc_95.0_c.pt", 20, 0.95)
    (tmp_path / "m" / "model_8_acc_99.0_broken.pt").write_text("not a model")
    from dfdlib.predict.registry import list_models

    df = list_models(tmp_path / "m")
    assert app_core.sequence_lengths(df) == [20, 8]  # the most accurate model's length first
    values = [v for _, v in app_core.model_choices(df, tmp_path / "m")]
    assert values[:2] == [app_core.BEST, app_core.ENSEMBLE] and "sub/model_8_acc_90.0_b.pt" in values
    assert not any("broken" in v for v in values)
    m = tmp_path / "m"
    assert app_core.resolve_model(app_core.BEST, "8", m) == [b]
    assert app_core.resolve_model(None, None, m) == [c]
    assert sorted(app_core.resolve_model(app_core.ENSEMBLE, 8, m)) == sorted([a, b])
    assert app_core.resolve_model("sub/model_8_acc_90.0_b.pt", None, m) == [b]
    with pytest.raises(FileNotFoundError, match="sequence lengths available: 8 .2 files., 20"):
        app_core.resolve_model(app_core.ENSEMBLE, 40, m)
    for bad in ("../model_8_acc_70.0_a.pt", str(a), "model_8_acc_99.0_broken.pt"):
        with pytest.raises(FileNotFoundError, match="not .or no longer. a readable model file"):
            app_core.resolve_model(bad, None, m)
    cache = app_core.ModelCache(size=2, device="cpu")
    assert cache.get([a]) is cache.get([a]) and cache.loads == 1
    assert len(cache.get([a, b])) == 2 and cache.loads == 3
    _save(a, 8, 0.75)  # the file changed on disk: read again
    cache.get([a])
    assert cache.loads == 4


def test_window_scores_cover_every_frame_once():
    torch.manual_seed(0)
    model = ResNeXtLSTM(backbone="tiny", hidden_dim=8).eval()
    clip = torch.randn(23, 3, 32, 32)
    w = app_core.window_scores(model, clip)
    assert w["start"].tolist() == [0, 3, 6, 9, 12, 15, 18, 21] and w["end"].tolist()[-1] == 22
    with torch.inference_mode():
        last = model.prob_fake(model(clip[21:][None])).item()
        first = model.prob_fake(model(clip[:3][None])).item()
    assert w["prob_fake"].iloc[-1] == pytest.approx(last, abs=1e-4)
    assert w["prob_fake"].iloc[0] == pytest.approx(first, abs=1e-4)
    per_frame = app_core.window_scores(model, clip[:8])
    assert len(per_frame) == 8 and (per_frame["start"] == per_frame["end"]).all()


def test_write_results_json_and_csv(tmp_path):
    from dfdlib.predict.verdict import Prediction

    ok = app_core.Analysis(Prediction(video="a.mp4", label="FAKE", confidence=0.8, prob_fake=0.8),
                           model_paths=["models/m.pt"],
                           windows=pd.DataFrame({"start": [0], "end": [1], "center": [0.5], "prob_fake": [0.8]}))
    bad = app_core.Analysis(Prediction(video="b.mp4", status="no_face", reason="no face found: b.mp4: ..."))
    js, csv = app_core.write_results([("a.mp4", ok), ("b.mp4", bad)], tmp_path)
    import json

    records = json.loads(js.read_text())
    assert records[0]["window_scores"][0]["prob_fake"] == 0.8 and records[1]["status"] == "no_face"
    df = pd.read_csv(csv)
    assert df["video"].tolist() == ["a.mp4", "b.mp4"] and df["faces"].tolist() == [1, 0]
    assert "What to try" in app_core.verdict_markdown(bad, "b.mp4")
    text = re.sub(r"<[^>]+>", "", app_core.verdict_markdown(ok, "a.mp4"))  # the badge is an HTML span
    assert "a.mp4: FAKE · confidence 80.0%" in text and "validation set" in text


def test_import_dfdlib_and_cli_help_do_not_import_gradio():
    code = ("import sys, dfdlib, dfdlib.app.web; from dfdlib import cli; p = cli.build_parser(); "
            "assert 'app' in p._subparsers._group_actions[0].choices; "
            "assert 'gradio' not in sys.modules, 'gradio imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_dfd_app_cli_defaults_to_localhost_and_warns_for_other_hosts(monkeypatch, capsys):
    import dfdlib.app.web as app_module
    from dfdlib import cli

    args = cli.build_parser().parse_args(["app"])
    assert (args.models, args.host, args.port, args.share) == ("models", "127.0.0.1", 7860, False)
    calls = []
    monkeypatch.setattr(app_module, "launch_app", lambda *a, **k: calls.append((a, k)))
    assert cli.main(["app", "--models", "my_models", "--host", "0.0.0.0", "--port", "8000", "--share"]) == 0
    assert calls[0][0] == ("my_models", "0.0.0.0", 8000, True)
    assert "anyone on your network can use the app" in capsys.readouterr().err
    assert cli.main(["app"]) == 0 and calls[1][0][1] == "127.0.0.1" and not capsys.readouterr().err
