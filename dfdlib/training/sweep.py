"""Batch runs: execute a notebook over a parameter grid with papermill and collect each run's metrics.

`run_sweep("notebooks/Model_and_train_csv.ipynb", {"sequence_length": [10, 20, 40],
"learning_rate": [1e-4, 3e-4]}, name="seq_lr")` writes, under `runs/sweep/seq_lr/`:
`<run>.ipynb` (the executed notebook), `<run>/` (the run's `out_dir`, where the notebook writes its
`metrics.json`), `results.csv` (one row per run: parameters, status, every scalar metric) and
`results.md` (the same rows with the headline metrics).
A failed run is recorded with its error and the sweep goes on; a finished run is not repeated.
"""
from __future__ import annotations

import ast
import itertools
import json
import math
import os
import re
import time
from pathlib import Path

import pandas as pd

from dfdlib.utils import atomic_write, write_csv

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
METRICS_JSON = "metrics.json"
# Metrics shown in results.md and on the console (results.csv has every scalar the runs wrote).
HEADLINE = ("accuracy", "precision", "recall", "f1", "roc_auc", "eer", "log_loss")


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """Takes {name: [values]}; returns every combination as a dict, first name varying slowest.

    Raises ValueError for an empty grid or a name with no values.
    """
    if not grid:
        raise ValueError("the parameter grid is empty: give at least one parameter with values")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"grid[{name!r}] must be a list of values, got {values!r}")
        if len(list(values)) == 0:
            raise ValueError(f"grid[{name!r}] has no values")
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(list(grid[n]) for n in names))]


def run_name(params: dict) -> str:
    """A folder-safe name for one run, e.g. `sequence_length-10_learning_rate-0.0001`."""
    parts = [f"{k}-{v}" for k, v in params.items()]
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", "_".join(parts)) or "run"


def notebook_parameters(notebook: str | os.PathLike) -> dict[str, dict]:
    """Takes a notebook path; returns {name: {"type", "default", "help"}} from its `parameters` cell.

    Raises FileNotFoundError if the notebook is missing, ValueError if it has no tagged parameters cell.
    """
    import papermill

    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    params = papermill.inspect_notebook(str(notebook))
    if not params:
        raise ValueError(
            f"{notebook} has no cell tagged 'parameters' (or it assigns nothing): tag the cell that holds "
            "the notebook's parameters so papermill can set them"
        )
    return {k: {"type": v["inferred_type_name"], "default": v["default"], "help": v["help"]}
            for k, v in params.items()}


def parse_value(text: str, type_name: str = "None"):
    """Convert a command-line value to the parameter's declared type (`int`, `float`, `bool`, `str`, ...).

    Untyped or unknown types fall back to a Python literal, else the plain string.
    Raises ValueError when the text does not fit the declared type.
    """
    text = text.strip()
    base = type_name.replace(" ", "").split("|")[0].lower()
    try:
        if base == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if base == "int":
            return int(float(text)) if float(text).is_integer() else int(text)
        if base == "float":
            return float(text)
        if base == "str":
            return text
    except ValueError:
        raise ValueError(f"value {text!r} is not a valid {type_name}") from None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grid_args(pairs: list[list[str]], declared: dict[str, dict]) -> dict[str, list]:
    """Takes [["NAME", "V1,V2"], ...] from `-p`; returns a typed grid. Repeated names extend the list."""
    grid: dict[str, list] = {}
    for name, values in pairs:
        typ = declared.get(name, {}).get("type", "None")
        grid.setdefault(name, []).extend(parse_value(v, typ) for v in values.split(",") if v.strip())
    return grid


def collect_metrics(run_out: str | os.PathLike) -> dict:
    """Read the run's `metrics.json` (in `run_out`, else the newest one below it); returns flat scalars.

    Nested dicts become `outer.inner` keys; lists (e.g. a confusion matrix) are left out of the table.
    Returns {} when the run wrote no metrics file.
    """
    run_out = Path(run_out)
    path = run_out / METRICS_JSON
    if not path.is_file():
        found = sorted(run_out.rglob(METRICS_JSON), key=lambda p: p.stat().st_mtime) if run_out.is_dir() else []
        if not found:
            return {}
        path = found[-1]
    with open(path) as f:
        data = json.load(f)
    flat: dict = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif v is None or isinstance(v, (bool, int, float, str)):
                flat[f"{prefix}{k}"] = v

    walk(data if isinstance(data, dict) else {"value": data}, "")
    return flat


def markdown_table(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table of `df` (no `tabulate` dependency)."""

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v).replace("|", "\\|").replace("\n", " ")

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def summary_view(df: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """The readable part of a results table: run, parameters, status, time, error (if any) and the
    headline metrics (test ones when the runs report test and val metrics). results.csv keeps all columns.
    """
    has_error = "error" in df.columns and df["error"].fillna("").astype(str).str.len().gt(0).any()
    fixed = ["run", *params, "status", "seconds"] + (["error"] if has_error else [])
    metrics = [c for c in df.columns if c not in {"run", *params, "status", "seconds", "error"}]
    headline = [c for c in metrics if c.rsplit(".", 1)[-1] in HEADLINE]
    if any(c.startswith("test.") for c in headline):
        headline = [c for c in headline if c.startswith("test.")]
    return df[[c for c in fixed if c in df.columns] + (headline or metrics)]


def _write_results(rows: list[dict], out: Path, params: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    write_csv(df, out / RESULTS_CSV)
    with atomic_write(out / RESULTS_MD) as f:
        f.write(markdown_table(summary_view(df, params)))
    return df


def run_sweep(notebook: str | os.PathLike, grid: dict[str, list], out: str | os.PathLike | None = None,
              base_params: dict | None = None, *, name: str | None = None, overwrite: bool = False,
              out_dir_param: str = "out_dir", kernel_name: str | None = None,
              log=print) -> pd.DataFrame:
    """Run `notebook` once per combination of `grid` (on top of `base_params`) and tabulate the results.

    Takes the notebook path, {parameter: [values]}, the sweep folder (default `runs/sweep/<name>`),
    fixed parameters for every run, and `out_dir_param`: the notebook parameter that receives each run's
    own folder `<out>/<run>/`, where the notebook writes `metrics.json`. Runs execute with the notebook's
    folder as working directory, as in Jupyter. A run whose notebook and metrics already exist is
    skipped unless `overwrite`. Returns the results table (also written as results.csv / results.md).
    Raises ValueError for a parameter the notebook does not declare (nothing is run then).
    """
    import papermill

    notebook = Path(notebook).resolve()
    declared = notebook_parameters(notebook)
    base_params = dict(base_params or {})
    combos = expand_grid(grid)
    unknown = [k for k in [*grid, *base_params] if k not in declared]
    if unknown:
        raise ValueError(f"{notebook.name} has no parameter(s) {unknown}; its parameters are: {sorted(declared)}")
    name = name or f"{notebook.stem}-{'-'.join(grid)}"
    out = Path(out) if out is not None else Path("runs") / "sweep" / name
    out.mkdir(parents=True, exist_ok=True)
    set_out_dir = out_dir_param in declared and out_dir_param not in grid and out_dir_param not in base_params
    if not set_out_dir:
        log(f"[sweep] note: {notebook.name} gets no per-run '{out_dir_param}', so metrics are looked up "
            f"in {out}/<run>/ only if the notebook writes them there")

    rows: list[dict] = []
    for i, combo in enumerate(combos, 1):
        run = run_name(combo)
        run_out = (out / run).resolve()
        nb_out = out / f"{run}.ipynb"
        params = {**base_params, **combo}
        if set_out_dir:
            params[out_dir_param] = str(run_out)
        row: dict = {"run": run, **combo}
        metrics = collect_metrics(run_out)
        if nb_out.exists() and metrics and not overwrite:
            row.update(status="skipped_done", seconds=None, error="")
            row.update(metrics)
            rows.append(row)
            log(f"[sweep] {i}/{len(combos)} {run}: already done, skipped")
            _write_results(rows, out, list(grid))
            continue
        log(f"[sweep] {i}/{len(combos)} {run} ...")
        tmp_nb = out / f".{run}.tmp.ipynb"
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(str(notebook), str(tmp_nb), parameters=params, cwd=str(notebook.parent),
                                       kernel_name=kernel_name, progress_bar=False, log_output=False)
            status, error = "ok", ""
        except papermill.PapermillExecutionError as e:
            status, error = "failed", f"{e.ename}: {e.evalue}"
        except Exception as e:  # kernel died, bad notebook, ...: record it and go on with the next run
            status, error = "failed", f"{type(e).__name__}: {e}"
        seconds = round(time.perf_counter() - t0, 1)
        if tmp_nb.exists():  # keep the executed notebook even when it failed: it shows where
            os.replace(tmp_nb, nb_out)
        metrics = collect_metrics(run_out) if status == "ok" else {}
        if status == "ok" and not metrics:
            status, error = "no_metrics", f"the run wrote no {METRICS_JSON} in {run_out}"
        row.update(status=status, seconds=seconds, error=error)
        row.update(metrics)
        rows.append(row)
        log(f"[sweep] {i}/{len(combos)} {run}: {status} ({seconds} s){' - ' + error if error else ''}")
        _write_results(rows, out, list(grid))  # after every run, so an interrupted sweep keeps what it finished
    df = _write_results(rows, out, list(grid))
    log(f"[sweep] results: {out / RESULTS_CSV} and {out / RESULTS_MD}; executed notebooks in {out}/")
    return df
