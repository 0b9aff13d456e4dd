"""The `models/` folder as a registry: list model files and pick the best one per sequence length.

This replaces the original app's hand-edited `MODEL_MAPPING = {10: ..., 20: ..., 100: ...}`: the
sequence length and accuracy come from each file's metadata (our files) or from its name (the original
project's files, and ours when the metadata lacks them), and accuracies are compared as numbers.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

MODEL_SUFFIXES = (".pt", ".pth")

# The original project's names put the accuracy first: model_84_acc_10_frames_final_data.pt = 84 % at
# 10 frames. Ours put the sequence length first: model_20_acc_95.8_final_data.pt = 95.8 % at 20 frames.
# The original pattern is tried first because "model_84_acc_10_frames" also fits ours read naively.
_ORIGINAL_NAME = re.compile(r"model_(?P<acc>\d+(?:\.\d+)?)_acc_(?P<seq>\d+)_frames", re.IGNORECASE)
_OURS_NAME = re.compile(r"model_(?P<seq>\d+)_acc_(?P<acc>\d+(?:\.\d+)?)(?:_|\.|$)", re.IGNORECASE)

# checkpoint.clear_old_run moves an earlier run aside into <run>/previous/<time>/: kept for the user, never picked.
PREVIOUS = "previous"

COLUMNS = ["path", "name", "sequence_length", "accuracy", "legacy", "created", "backbone", "image_size",
           "error"]


def parse_model_name(name: str) -> dict:
    """Sequence length and accuracy (in %) from a model file name, in either naming scheme.

    Takes a file name; returns {"sequence_length": int|None, "accuracy": float|None, "scheme":
    "original"|"dfdlib"|None}.
    """
    m = _ORIGINAL_NAME.search(name)
    if m:
        return {"sequence_length": int(m["seq"]), "accuracy": float(m["acc"]), "scheme": "original"}
    m = _OURS_NAME.search(name)
    if m:
        return {"sequence_length": int(m["seq"]), "accuracy": float(m["acc"]), "scheme": "dfdlib"}
    return {"sequence_length": None, "accuracy": None, "scheme": None}


def _accuracy_from_meta(meta: dict) -> float | None:
    """Validation accuracy in % from a model file's metadata (fractions are scaled to %)."""
    metrics = meta.get("metrics") or {}
    for key in ("accuracy", "val_acc", "val_accuracy"):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # compute_metrics reports fractions (0.958); files written by hand may hold percents (95.8).
            return float(value) * 100.0 if value <= 1.0 else float(value)
    reported = meta.get("reported_accuracy")  # legacy files: the accuracy their name announced, in %
    return float(reported) if isinstance(reported, (int, float)) else None


def _load_lazily(path: Path):
    """torch.load for metadata: mmap so listing does not pull a 200 MB ResNeXt into memory."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e).lower():  # only files in the pre-1.6 format cannot be mapped
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def read_model_info(path: str | Path) -> dict:
    """One registry row for a model file, without building the model.

    Takes a path; returns a dict with the COLUMNS keys. A file that cannot be read gets `error` set
    (and the other fields from its name where possible) instead of raising.
    """
    import torch

    path = Path(path)
    parsed = parse_model_name(path.name)
    row = {"path": str(path), "name": path.name, "sequence_length": parsed["sequence_length"],
           "accuracy": parsed["accuracy"], "legacy": parsed["scheme"] == "original", "created": None,
           "backbone": None, "image_size": None, "error": None}
    try:
        obj = _load_lazily(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file becomes an error row, never a crash
        row["error"] = (f"cannot read: not a PyTorch file, truncated, or refused by weights_only "
                        f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]})")
        return row
    if isinstance(obj, dict) and str(obj.get("format", "")).startswith("dfdlib-model"):
        meta = obj.get("meta") or {}
        row["legacy"] = bool(meta.get("legacy", False))
        if meta.get("sequence_length") is not None:
            row["sequence_length"] = int(meta["sequence_length"])
        acc = _accuracy_from_meta(meta)
        if acc is not None:
            row["accuracy"] = acc
        row["created"] = meta.get("created")
        row["backbone"] = (meta.get("model") or {}).get("backbone")
        row["image_size"] = meta.get("image_size")
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        # A bare state_dict: the original project's format (see model.load_model's legacy mode).
        row["legacy"] = True
        row["backbone"] = "resnext50_32x4d" if any(k.startswith("model.") for k in obj) else None
        row["image_size"] = 112 if row["backbone"] else None
    else:
        row["error"] = "not a model file (neither a dfdlib model nor a state_dict)"
    if row["error"] is None and row["sequence_length"] is None:
        row["error"] = ("sequence length unknown: not in the metadata and the name does not follow "
                        "model_<seq>_acc_<acc>_... or model_<acc>_acc_<seq>_frames_...; rename the file")
    return row


def _model_files(models_dir: Path, include_previous: bool) -> tuple[list[Path], int]:
    """(model files under `models_dir`, how many were left out for sitting in a previous/ folder)."""
    files, aside = [], 0
    for p in sorted(models_dir.rglob("*")):
        if p.suffix.lower() not in MODEL_SUFFIXES or not p.is_file() or p.name.startswith(".") or p.name == "last.pt":
            continue
        if not include_previous and PREVIOUS in p.relative_to(models_dir).parts[:-1]:
            aside += 1
            continue
        files.append(p)
    return files, aside


def list_models(models_dir: str | Path = "models", include_previous: bool = False) -> pd.DataFrame:
    """Every model file (.pt/.pth) under `models_dir`, read from its metadata or its name. Files of earlier
    runs moved aside into a `previous/` folder are left out (so never picked) unless `include_previous`.

    Takes a folder; returns a DataFrame with COLUMNS (accuracy is a float in %, NaN when unknown),
    sorted by sequence length then accuracy (best first). Raises FileNotFoundError if the folder is missing.
    """
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise FileNotFoundError(f"model folder {models_dir} does not exist; create it and copy model files "
                                "(model_<seq>_acc_<acc>_final_data.pt) into it")
    files, aside = _model_files(models_dir, include_previous)
    df = pd.DataFrame([read_model_info(p) for p in files], columns=COLUMNS)
    df["accuracy"] = pd.to_numeric(df["accuracy"], errors="coerce").astype(float)
    for col in ("sequence_length", "image_size"):
        df[col] = df[col].astype("Int64")
    df = df.sort_values(["sequence_length", "accuracy"], ascending=[True, False], na_position="last",
                        ignore_index=True)
    df.attrs["previous"] = aside
    return df


def best_model(sequence_length: int, models_dir: str | Path = "models", include_legacy: bool = True) -> Path:
    """The most accurate readable model file for `sequence_length` (numeric comparison; newest wins ties).

    Takes a sequence length and a folder; returns the file's Path. Raises FileNotFoundError naming the
    sequence lengths that are available when none matches.
    """
    return pick_best(list_models(models_dir), sequence_length, models_dir, include_legacy)


def pick_best(df: pd.DataFrame, sequence_length: int, models_dir, include_legacy: bool = True) -> Path:
    """best_model on a list_models table `df` already read (from `models_dir`, named in the error)."""
    ok = df[df["error"].isna()]
    if not include_legacy:
        ok = ok[~ok["legacy"].astype(bool)]
    match = ok[ok["sequence_length"] == int(sequence_length)]
    if match.empty:
        have = ", ".join(f"{int(s)} ({n} file{'s' if n > 1 else ''})"
                         for s, n in ok["sequence_length"].value_counts().sort_index().items()) or "none"
        bad = len(df) - len(df[df["error"].isna()])
        raise FileNotFoundError(
            f"no model for sequence_length={sequence_length} in {models_dir}/; sequence lengths available: "
            f"{have}" + (f"; {bad} file(s) could not be read (run `dfd models --dir {models_dir}`)" if bad else "")
            + ". Train one with `dfd train --sequence-length N` or pick an available length.")
    match = match.assign(_created=match["created"].fillna("").astype(str))
    match = match.sort_values(["accuracy", "_created"], ascending=[False, False], na_position="last")
    return Path(match.iloc[0]["path"])
