"""The notebook suite: structure checks (fast) and papermill runs with small parameters (slow).

The runs chain through files as a user's would (videos → faces → labels CSV → model → verdict), each
notebook executed by papermill from notebooks/ into a temporary workspace, and each test asserts on the
files its notebook wrote. `smoke=True` is passed explicitly, so a run behaves the same with or without
DFD_SMOKE/CI in the environment; the parameters set here must win over the smoke sizes.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = ["preprocessing.ipynb", "Create_csv_from_glob.ipynb", "Model_and_train_csv.ipynb", "Predict.ipynb"]


def load_sync():
    spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "scripts" / "sync_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read(name: str):
    return nbformat.read(str(NB_DIR / name), as_version=4)


def params_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged 'parameters'"
    return cells[0]


def texts(nb) -> str:
    """All text a notebook printed or displayed (streams, text/plain results, errors)."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                out.append(o["text"])
            elif "data" in o:
                out.append(o["data"].get("text/plain", ""))
            elif o.get("output_type") == "error":
                out.append(f"{o['ename']}: {o['evalue']}")
    return "\n".join(out)


def mime_types(nb) -> set[str]:
    return {m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})}


# ---- structure (fast) -------------------------------------------------------------------------------

def test_notebooks_are_tidy_and_share_the_colab_cell():
    """The notebooks are their own source; scripts/sync_notebooks.py --check finds nothing to strip or update."""
    assert load_sync().main(["--check"]) == 0, "run python scripts/sync_notebooks.py"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_code_is_thin_and_uses_the_flat_api(name):
    """Logic lives in dfdlib: no classes or long functions, no imports from dfdlib submodules, short cells."""
    for cell in read(name).cells[2:]:  # after the title and the Colab cell
        if cell.cell_type != "code":
            continue
        tree = ast.parse("\n".join("" if ln.startswith("%") else ln for ln in cell.source.splitlines()))
        # small callbacks (a live plot for train(on_epoch=...), widget handlers) stay; logic does not
        defined = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                   or (isinstance(n, ast.FunctionDef) and n.end_lineno - n.lineno > 10)]
        assert defined == [], f"{name}: move {defined} into dfdlib"
        deep = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and (n.module or "").startswith("dfdlib.")]
        assert deep == [], f"{name}: use the flat API (dfdlib.<name>) instead of {deep}"
        assert cell.source.count("\n") < 40, f"{name}: a {cell.source.count(chr(10)) + 1}-line cell:\n{cell.source}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    for cell in read(name).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_holds_typed_literals_papermill_can_document(name):
    import papermill

    nb = read(name)
    tree = ast.parse(params_cell(nb).source)
    names = []
    for stmt in tree.body:
        assert isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name), ast.unparse(stmt)
        ast.literal_eval(stmt.value)  # literals only: raises for names, calls, expressions
        names.append(stmt.target.id)
    inferred = papermill.inspect_notebook(str(NB_DIR / name))
    assert list(inferred) == names
    for pname, p in inferred.items():
        assert p["inferred_type_name"] in ("str", "int", "float", "bool", "list"), pname
        assert p["help"], f"{name}: parameter {pname} has no help comment"
    assert {"project_root", "smoke"} <= set(names)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_layout_title_colab_cell_parameters_then_numbered_sections(name):
    nb = read(name)
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert "google.colab" in cells[1].source and cells[1].cell_type == "code"
    idx = cells.index(params_cell(nb))
    # derived values come right after the parameters: smoke from the environment, paths from project_root
    assert "notebook.smoke_mode(smoke)" in cells[idx + 1].source
    assert "notebook.notebook_root(project_root, colab_root, smoke)" in cells[idx + 1].source
    headings = [c.source.split("\n", 1)[0] for c in cells[idx:] if c.cell_type == "markdown"]
    assert headings and all(h.startswith(f"## {i}. ") for i, h in enumerate(headings, 1)), headings
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_colab_cell_does_nothing_outside_colab(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(Path(tmp_path).iterdir())
    exec(compile(read("Predict.ipynb").cells[1].source, "colab-cell", "exec"), {})
    assert Path.cwd() == tmp_path and sorted(Path(tmp_path).iterdir()) == before


def test_smoke_sizes_come_from_the_demo_preset():
    """Smoke-mode numbers are read from dfdlib.sample.demo.SMOKE, not repeated in the notebooks."""
    for name in NOTEBOOKS:
        derived = read(name).cells[[c for c in read(name).cells].index(params_cell(read(name))) + 1].source
        for line in derived.splitlines():
            m = re.match(r"    (\w+) = (.+) if \1 == .+ else \1$", line)
            if m and re.fullmatch(r"-?[0-9.e-]+", m[2]) and m[1] not in ("learning_rate", "num_workers"):
                raise AssertionError(f"{name}: {m[1]} = {m[2]} in smoke mode; read it from demo.SMOKE")


def test_parameter_help_survives_papermill_parsing():
    """papermill reads the help after '#'; what it shows must be the whole comment."""
    import papermill

    for name in NOTEBOOKS:
        source = params_cell(read(name)).source
        for pname, p in papermill.inspect_notebook(str(NB_DIR / name)).items():
            line = next(ln for ln in source.splitlines() if ln.startswith(f"{pname}:"))
            assert line.split("#", 1)[1].strip() == p["help"], (name, pname)


# ---- papermill runs (slow) --------------------------------------------------------------------------

def run_notebook(name: str, dest: Path, **params):
    import papermill

    out = dest / name
    papermill.execute_notebook(str(NB_DIR / name), str(out), parameters={"smoke": True, **params},
                               cwd=str(NB_DIR), progress_bar=False, log_output=False)
    return nbformat.read(str(out), as_version=4)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture(scope="module")
def preprocessed(ws, sample_dir):
    nb = run_notebook("preprocessing.ipynb", ws, project_root=str(ws), videos_dir=str(sample_dir),
                      processed_dir=str(ws / "processed"), frames=6)
    return nb, ws / "processed"


@pytest.fixture(scope="module")
def labelled(preprocessed, ws):
    csv = ws / "labels" / "labels.csv"
    nb = run_notebook("Create_csv_from_glob.ipynb", ws, project_root=str(ws), processed_dir=str(preprocessed[1]),
                      labels_csv=str(csv), seed=1, make_inputs=False)
    return nb, csv


@pytest.fixture(scope="module")
def trained(labelled, preprocessed, ws):
    nb = run_notebook("Model_and_train_csv.ipynb", ws, project_root=str(ws), processed_dir=str(preprocessed[1]),
                      labels_csv=str(labelled[1]), out_dir=str(ws / "train"), sequence_length=6,
                      make_inputs=False)
    return nb, ws / "train"


@pytest.fixture(scope="module")
def predicted(trained, labelled, preprocessed, ws, sample_dir):
    video = sorted((sample_dir / "fake").glob("*.mp4"))[0]
    nb = run_notebook("Predict.ipynb", ws, project_root=str(ws), models_dir=str(trained[1]), sequence_length=6,
                      video=str(video), videos_dir=str(sample_dir), processed_dir=str(preprocessed[1]),
                      labels_csv=str(labelled[1]), out_dir=str(ws / "predict"), top_k=2, make_inputs=False)
    return nb, ws / "predict", video


@pytest.mark.slow
@pytest.mark.notebooks
def test_preprocessing_notebook_writes_face_frames_and_report(preprocessed, sample_dir):
    import cv2

    nb, processed = preprocessed
    videos = sorted(sample_dir.glob("*/*.mp4"))
    folders = sorted(p for p in processed.glob("*/*") if p.is_dir() and not p.name.startswith("."))
    assert [f"{f.parent.name}/{f.name}" for f in folders] == [f"{v.parent.name}/{v.stem}" for v in videos]
    for folder in folders:  # -p frames=6 wins over the smoke preset (8); the crop size stays the smoke 64
        assert sorted(p.name for p in folder.glob("frame_*.jpg")) == [f"frame_{i}.jpg" for i in range(6)]
        assert json.loads((folder / "faces.json").read_text())
        assert cv2.imread(str(folder / "frame_0.jpg")).shape == (64, 64, 3)
    import pandas as pd

    report = pd.read_csv(processed / "preprocess_report.csv")
    assert len(report) == len(videos) and set(report["status"]) <= {"ok", "skipped_done"}
    assert "image/png" in mime_types(nb)  # the crop grid


@pytest.mark.slow
@pytest.mark.notebooks
def test_create_csv_notebook_writes_labels_with_a_split(labelled, preprocessed):
    from dfdlib import read_labels

    nb, csv = labelled
    df = read_labels(csv)
    assert list(df.columns[:3]) == ["filename", "label", "split"]
    assert len(df) == 8 and sorted(df["label"].value_counts().tolist()) == [4, 4]
    assert set(df["split"]) == {"train", "val", "test"}
    assert all((preprocessed[1] / f).is_dir() for f in df["filename"])
    assert "real" in texts(nb) and "image/png" in mime_types(nb)  # balance table and bar plot


@pytest.mark.slow
@pytest.mark.notebooks
def test_training_notebook_writes_model_metrics_and_plots(trained):
    import torch

    nb, run = trained
    models = list(run.glob("model_*_acc_*_final_data.pt"))
    assert len(models) == 1 and models[0].name.startswith("model_6_acc_")
    meta = torch.load(models[0], map_location="cpu", weights_only=True)["meta"]
    # -p sequence_length=6 wins; the smoke preset fills the rest (tiny backbone, 64 px, hidden 32)
    assert meta["sequence_length"] == 6 and meta["image_size"] == 64 and meta["train"]["backbone"] == "tiny"
    assert meta["train"]["hidden_dim"] == 32 and meta["train"]["num_epochs"] == 1
    metrics = json.loads((run / "metrics.json").read_text())
    test, cm = metrics["test"], metrics["test"]["confusion_matrix"]
    assert test["n"] >= 1 and sum(map(sum, cm)) == test["n"]
    assert test["accuracy"] == pytest.approx((cm[0][0] + cm[1][1]) / test["n"])  # consistent with its matrix
    assert metrics["model"] == models[0].name and metrics["best_epoch"] == 1
    assert len((run / "history.csv").read_text().strip().splitlines()) == 2  # header + 1 epoch
    assert all((run / "plots" / f"{p}.png").is_file() for p in ("curves", "confusion", "roc"))
    out = texts(nb)
    assert f"model file  : {models[0]}" in out and "Accuracy" in out
    train_cell = next(c for c in nb.cells if "dfdlib.train(config, on_epoch=" in c.source)
    assert any("image/png" in o.get("data", {}) for o in train_cell.outputs)  # the live curves
    assert "image/png" in mime_types(nb)


@pytest.mark.slow
@pytest.mark.notebooks
def test_predict_notebook_gives_a_verdict_gradcam_and_test_metrics(predicted):
    nb, out, video = predicted
    said = texts(nb)
    assert f"{video.name}: FAKE" in said or f"{video.name}: REAL" in said
    cams = sorted((out / "gradcam" / video.stem).glob("cam_*.png"))
    assert len(cams) == 2  # top_k=2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["sequence_length"] == 6 and metrics["n"] >= 1
    assert (out / "predictions.csv").is_file() and (out / "confusion.png").is_file()
    types = mime_types(nb)
    assert "image/png" in types and "application/vnd.jupyter.widget-view+json" in types


@pytest.mark.slow
@pytest.mark.notebooks
def test_predict_notebook_runs_alone_on_a_fresh_clone(tmp_path):
    """No inputs at all: the notebook builds the sample set, faces, labels and a smoke model itself."""
    nb = run_notebook("Predict.ipynb", tmp_path, project_root=str(tmp_path / "clone"))
    base = tmp_path / "clone" / "runs" / "smoke"  # smoke runs keep their files apart from real ones
    assert sorted(p.name for p in (base / "data" / "sample" / "fake").glob("*.mp4"))
    assert list((base / "runs" / "train").glob("model_8_acc_*_final_data.pt"))  # smoke sequence length 8
    assert json.loads((base / "runs" / "predict" / "metrics.json").read_text())["split"] == "test"
    assert ": FAKE" in texts(nb) or ": REAL" in texts(nb)


@pytest.mark.slow
@pytest.mark.notebooks
def test_sweep_over_the_training_notebook_tabulates_each_run(labelled, preprocessed, ws):
    """`dfd sweep` with the real training notebook: -p values reach the run, metrics land in the table."""
    from dfdlib.training.sweep import run_sweep

    out = ws / "sweep" / "seq"
    df = run_sweep(NB_DIR / "Model_and_train_csv.ipynb", {"sequence_length": [4, 6]}, out=out,
                   base_params={"smoke": True, "project_root": str(ws), "processed_dir": str(preprocessed[1]),
                                "labels_csv": str(labelled[1]), "make_inputs": False}, log=lambda *_: None)
    assert list(df["run"]) == ["sequence_length-4", "sequence_length-6"]
    assert list(df["status"]) == ["ok", "ok"], df["error"].tolist()
    assert df["test.accuracy"].between(0, 1).all() and (df["best_epoch"] == 1).all()
    for seq in (4, 6):
        assert list((out / f"sequence_length-{seq}").glob(f"model_{seq}_acc_*_final_data.pt"))
        assert (out / f"sequence_length-{seq}.ipynb").is_file()
    assert (out / "results.md").read_text().startswith("| run | sequence_length | status |")
