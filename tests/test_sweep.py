"""dfdlib.training.sweep: grid expansion, typed values, metrics collection, and real papermill runs of a tiny notebook."""
from __future__ import annotations

import json
import math

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dfdlib.cli import main as dfd
from dfdlib.training import sweep

TINY_PARAMS = '''\
a: int = 1  # first knob
b: float = 0.5  # second knob
out_dir: str = ""  # where this run writes metrics.json'''

# Writes metrics derived from its parameters (and where it ran); a == 3 fails, like a bad setting would.
TINY_BODY = '''\
import json
import pathlib

if a == 3:
    raise ValueError("a=3 is not allowed")
out = pathlib.Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({
    "accuracy": a * b, "val": {"auc": a / 10}, "confusion_matrix": [[1, 0], [0, 1]],
    "cwd": str(pathlib.Path.cwd()), "n": a,
}))'''


def write_notebook(path, params_src: str | None = TINY_PARAMS, body: str = TINY_BODY):
    cells = [new_markdown_cell("# tiny")]
    if params_src is not None:
        cells.append(new_code_cell(params_src, metadata={"tags": ["parameters"]}))
    cells.append(new_code_cell(body))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_nb(tmp_path_factory):
    return write_notebook(tmp_path_factory.mktemp("nb") / "nbdir" / "tiny.ipynb")


# ---- pure helpers -----------------------------------------------------------------------------------

def test_expand_grid_is_the_cartesian_product_first_name_slowest():
    combos = sweep.expand_grid({"sequence_length": [10, 20, 40], "learning_rate": [1e-4, 3e-4]})
    assert len(combos) == 6
    assert combos[0] == {"sequence_length": 10, "learning_rate": 1e-4}
    assert combos[1] == {"sequence_length": 10, "learning_rate": 3e-4}
    assert combos[-1] == {"sequence_length": 40, "learning_rate": 3e-4}


@pytest.mark.parametrize("grid, message", [
    ({}, "empty"), ({"a": []}, "no values"), ({"a": "10,20"}, "must be a list"), ({"a": 3}, "must be a list"),
])
def test_expand_grid_rejects_bad_grids(grid, message):
    with pytest.raises(ValueError, match=message):
        sweep.expand_grid(grid)


def test_run_name_is_folder_safe_and_distinct():
    assert sweep.run_name({"sequence_length": 10, "learning_rate": 0.0001}) == "sequence_length-10_learning_rate-0.0001"
    name = sweep.run_name({"path": "a/b c", "x": None})
    assert "/" not in name and " " not in name
    assert sweep.run_name({"a": 1}) != sweep.run_name({"a": 2})


@pytest.mark.parametrize("text, type_name, expected", [
    ("20", "int", 20), ("1e3", "int", 1000), ("3e-4", "float", 3e-4), ("1", "float", 1.0),
    ("true", "bool", True), ("No", "bool", False), ("resnet18", "str", "resnet18"), ("20", "str", "20"),
    ("[0.8, 0.1, 0.1]", "list", [0.8, 0.1, 0.1]), ("0.5", "None", 0.5), ("tiny", "None", "tiny"),
])
def test_parse_value_follows_the_declared_type(text, type_name, expected):
    value = sweep.parse_value(text, type_name)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text, type_name", [("2.5", "int"), ("abc", "float"), ("maybe", "bool")])
def test_parse_value_rejects_values_of_the_wrong_type(text, type_name):
    with pytest.raises(ValueError, match=type_name):
        sweep.parse_value(text, type_name)


def test_parse_grid_args_types_and_merges_repeated_names():
    declared = {"sequence_length": {"type": "int"}, "learning_rate": {"type": "float"}}
    grid = sweep.parse_grid_args([["sequence_length", "10,20"], ["learning_rate", "1e-4,3e-4"],
                                  ["sequence_length", "40"]], declared)
    assert grid == {"sequence_length": [10, 20, 40], "learning_rate": [1e-4, 3e-4]}


def test_markdown_table_shape_formats_and_escapes():
    df = pd.DataFrame({"run": ["x|y", "z"], "acc": [0.123456, math.nan], "n": [3, 4]})
    lines = sweep.markdown_table(df).splitlines()
    assert lines[0] == "| run | acc | n |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| x\\|y | 0.1235 | 3 |"
    assert lines[3] == "| z |  | 4 |"


def test_summary_view_keeps_parameters_status_and_headline_metrics():
    df = pd.DataFrame({"run": ["a-1"], "a": [1], "status": ["ok"], "seconds": [1.0], "error": [""],
                       "test.accuracy": [0.9], "test.n": [4], "val.accuracy": [0.8], "model": ["m.pt"]})
    assert list(sweep.summary_view(df, ["a"]).columns) == ["run", "a", "status", "seconds", "test.accuracy"]
    df.loc[0, "error"] = "boom"
    assert "error" in sweep.summary_view(df, ["a"]).columns
    other = pd.DataFrame({"run": ["a-1"], "a": [1], "status": ["ok"], "seconds": [1.0], "loss": [0.3]})
    assert list(sweep.summary_view(other, ["a"]).columns) == ["run", "a", "status", "seconds", "loss"]


def test_collect_metrics_flattens_scalars_and_finds_nested_files(tmp_path):
    assert sweep.collect_metrics(tmp_path / "missing") == {}
    (tmp_path / "run" / "sub").mkdir(parents=True)
    (tmp_path / "run" / "sub" / "metrics.json").write_text(json.dumps(
        {"accuracy": 0.9, "test": {"f1": 0.8, "n": 5}, "confusion_matrix": [[1, 2], [3, 4]], "note": None}))
    assert sweep.collect_metrics(tmp_path / "run") == {"accuracy": 0.9, "test.f1": 0.8, "test.n": 5, "note": None}


def test_notebook_parameters_reads_types_defaults_and_help(tiny_nb):
    declared = sweep.notebook_parameters(tiny_nb)
    assert list(declared) == ["a", "b", "out_dir"]
    assert declared["a"] == {"type": "int", "default": "1", "help": "first knob"}
    assert declared["b"]["type"] == "float"


def test_notebook_parameters_errors_name_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ipynb"):
        sweep.notebook_parameters(tmp_path / "nope.ipynb")
    bare = write_notebook(tmp_path / "bare.ipynb", params_src=None, body="x = 1")
    with pytest.raises(ValueError, match="bare.ipynb.*parameters"):
        sweep.notebook_parameters(bare)


def test_unknown_parameter_fails_before_anything_runs(tiny_nb, tmp_path):
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['sequence_lenght'\].*'a', 'b', 'out_dir'"):
        sweep.run_sweep(tiny_nb, {"sequence_lenght": [10]}, out=out)
    with pytest.raises(ValueError, match="zzz"):
        sweep.run_sweep(tiny_nb, {"a": [1]}, out=out, base_params={"zzz": 1})
    assert not out.exists()


def test_cli_list_shows_the_parameters(tiny_nb, capsys):
    assert dfd(["sweep", str(tiny_nb), "--list"]) == 0
    text = capsys.readouterr().out
    assert "a" in text and "int" in text and "first knob" in text and "out_dir" in text


def test_cli_without_grid_is_a_clear_error(tiny_nb, capsys):
    assert dfd(["sweep", str(tiny_nb)]) == 1
    assert "-p NAME V1,V2" in capsys.readouterr().err


# ---- real runs (papermill + a kernel) ---------------------------------------------------------------

@pytest.mark.slow
def test_sweep_runs_the_grid_records_failures_and_resumes(tiny_nb, tmp_path, capsys):
    out = tmp_path / "runs" / "sweep" / "ab"
    # CLI: 3 values x 1, base parameter via --set; a=3 fails in the notebook, the others go on.
    code = dfd(["sweep", str(tiny_nb), "-p", "a", "1,2,3", "-s", "b", "0.25", "--name", "ab", "--out", str(out)])
    assert code == 1  # one run failed
    printed = capsys.readouterr().out
    assert "| run | a | status | seconds | error |" in printed and "[sweep] 3/3 a-3: failed" in printed

    df = pd.read_csv(out / "results.csv")
    assert list(df["run"]) == ["a-1", "a-2", "a-3"]
    assert list(df["status"]) == ["ok", "ok", "failed"]
    assert df.loc[0, "accuracy"] == pytest.approx(0.25) and df.loc[1, "accuracy"] == pytest.approx(0.5)
    assert df.loc[1, "val.auc"] == pytest.approx(0.2)
    assert "confusion_matrix" not in df.columns  # lists stay in metrics.json, out of the table
    assert "ValueError" in df.loc[2, "error"] and "a=3 is not allowed" in df.loc[2, "error"]
    # Runs execute in the notebook's folder (relative paths behave as in Jupyter).
    assert df.loc[0, "cwd"] == str(tiny_nb.parent)
    md = (out / "results.md").read_text()
    assert md.startswith("| run | a | status | seconds | error | accuracy |\n") and md.count("\n") == 5
    for run in ("a-1", "a-2", "a-3"):  # executed notebooks kept, the failed one too
        executed = nbformat.read(str(out / f"{run}.ipynb"), 4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "b = 0.25" in injected[0].source and f"a = {run[-1]}" in injected[0].source
    assert not list(out.glob(".*.tmp.ipynb"))

    # Rerun through the API: finished runs are skipped (metrics re-read), the failed one is tried again.
    df2 = sweep.run_sweep(tiny_nb, {"a": [1, 2, 3]}, out=out, base_params={"b": 0.25}, log=lambda *_: None)
    assert list(df2["status"]) == ["skipped_done", "skipped_done", "failed"]
    assert df2.loc[1, "accuracy"] == pytest.approx(0.5)
