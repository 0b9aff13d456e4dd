"""Public dataset layouts end to end: `dfd preprocess` on miniature FF++ / DFDC trees (MTCNN on a few tiny
videos), the layout it records, groups and methods in the report, faces.json and samples.csv."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from test_video import write_video

from dfdlib.cli import main


def still(i):
    return (100, 20, 200)


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    p = tmp_path_factory.mktemp("clip") / "face.mp4"
    write_video(p, n=12, face=still)
    return p


def put(clip, root, *rels):
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, root / rel)


def test_preprocess_ffpp_tree_records_layout_groups_methods(face_clip, tmp_path, capsys):
    src, out = tmp_path / "FaceForensics++", tmp_path / "processed"
    put(face_clip, src, "original_sequences/youtube/c23/videos/000.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
        "manipulated_sequences/FaceSwap/c23/videos/000_003.mp4")
    (src / "manipulated_sequences/Face2Face/c23/videos").mkdir(parents=True)  # empty: reported, rest goes on
    with pytest.warns(UserWarning, match="Face2Face/c23/videos has no videos"):
        rc = main(["preprocess", str(src), str(out), "--frames", "4", "--size", "32", "--no-progress"])
    assert rc == 0
    assert sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("faces.json")) == [
        "fake/Deepfakes/c23/000_003", "fake/FaceSwap/c23/000_003", "real/youtube/c23/000"]
    report = pd.read_csv(out / "preprocess_report.csv", keep_default_na=False)
    assert (report["status"] == "ok").all() and report["group"].nunique() == 1
    assert sorted(report["method"]) == ["Deepfakes", "FaceSwap", "real"]
    layout = json.loads((out / "layout.json").read_text())
    assert layout["layout"] == "ffpp" and layout["chosen"] == "detected" and layout["samples"] == 3
    assert "Face2Face" in layout["problems"][0]
    m = json.loads((out / "fake/FaceSwap/c23/000_003/faces.json").read_text())
    assert (m["method"], m["group"]) == ("FaceSwap", "ff:000")
    samples = pd.read_csv(out / "samples.csv", keep_default_na=False)
    assert set(samples["filename"]) == {"real/youtube/c23/000", "fake/Deepfakes/c23/000_003",
                                        "fake/FaceSwap/c23/000_003"}
    assert set(samples.loc[samples["label"] == 1, "original"]) == {"real/youtube/c23/000"}
    # a rerun with --layout skips finished videos and records the override
    assert main(["preprocess", str(src), str(out), "--layout", "ffpp", "--no-progress"]) == 0
    assert json.loads((out / "layout.json").read_text())["chosen"] == "--layout"


def test_preprocess_unknown_tree_error_names_layouts(tmp_path, capsys):
    (tmp_path / "src" / "clips").mkdir(parents=True)
    assert main(["preprocess", str(tmp_path / "src"), str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "matches no dataset layout" in err and "manipulated_sequences/Deepfakes" in err and "dfdc" in err


def test_preprocess_dfdc_missing_files_reported(face_clip, tmp_path, capsys):
    src, out = tmp_path / "dfdc", tmp_path / "out"
    put(face_clip, src, "dfdc_train_part_3/aaa.mp4")
    (src / "dfdc_train_part_3/metadata.json").write_text(json.dumps({
        "aaa.mp4": {"label": "REAL", "original": None}, "zzz.mp4": {"label": "FAKE", "original": "aaa.mp4"}}))
    with pytest.warns(UserWarning, match="zzz.mp4"):
        assert main(["preprocess", str(src), str(out), "--frames", "4", "--size", "32"]) == 0
    text = capsys.readouterr().out
    assert "layout: dfdc (detected): 1 videos" in text and "1 problem(s) skipped" in text
    assert (out / "real/dfdc_train_part_3/aaa/faces.json").is_file()


def test_metrics_by_method_scores_each_method_against_all_reals(tmp_path):
    from dfdlib.metrics import metrics_by_method, plot_roc_by_method

    y = [0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.2, 0.6, 0.9, 0.8, 0.3, 0.7]
    m = ["real", "real", "real", "Deepfakes", "Deepfakes", "FaceSwap", "FaceSwap"]
    t = metrics_by_method(y, p, m)
    assert list(t.index) == ["all", "Deepfakes", "FaceSwap"]
    assert t.loc["Deepfakes", ["n_real", "n_fake"]].tolist() == [3, 2]
    assert t.loc["Deepfakes", "roc_auc"] == 1.0 and t.loc["FaceSwap", "roc_auc"] == pytest.approx(5 / 6)
    assert t.loc["all", "roc_auc"] == pytest.approx(11 / 12)
    assert t.loc["FaceSwap", "recall"] == 0.5  # 0.3 < 0.5 is missed
    fig = plot_roc_by_method(y, p, m, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").stat().st_size > 0
    assert len(fig.axes[0].get_lines()) == 4  # all, 2 methods, chance
