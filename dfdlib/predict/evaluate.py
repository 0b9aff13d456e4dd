"""Stage 4 (evaluation): metrics of a model or Ensemble on a labelled split of processed face frames.

Owns `evaluate_model` and `dfd evaluate`. It reads the face frames the preprocess stage wrote through
`data.FaceSequenceDataset` (evaluation transforms) and a labels CSV through the labels stage's reader
(`labels.io.read_labels`); loading models and ensembles, their thresholds and
sequence lengths come from ensemble.py, as for `verdict.py`.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from dfdlib.labels.io import read_labels
from dfdlib.metrics import (
    best_threshold,
    compute_metrics,
    metrics_by_method,
    plot_confusion,
    plot_roc,
    plot_roc_by_method,
)
from dfdlib.predict.ensemble import as_model, members_of, sequence_length_of, threshold_of
from dfdlib.utils import atomic_write, ensure_writable, write_csv


def _split_scores(member, rows: pd.DataFrame, processed_root, seq: int, batch_size: int, progress: bool):
    """One member on every usable row: (filenames, labels, prob_fake, skipped) in dataset order.

    Rows whose frame folder is missing or empty are skipped (and reported), not fatal.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from dfdlib.data import FaceSequenceDataset, clip_transforms

    meta = member.meta
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped/padded rows are reported in the metrics instead
        ds = FaceSequenceDataset(rows, processed_root, seq, split=None, skip_bad=True,
                                 transform=clip_transforms(int(meta["image_size"])).eval,
                                 sampling=meta.get("sampling") or "even")
    device = next(member.parameters()).device
    probs = []
    with torch.inference_mode():
        for clips, _ in tqdm(DataLoader(ds, batch_size=batch_size, shuffle=False), desc="evaluate",
                             unit="batch", disable=not progress, leave=False):
            probs.append(member.prob_fake(member(clips.to(device))).float().cpu())
    p = torch.cat(probs).numpy().astype(np.float64)
    return list(ds.filenames), np.asarray(ds.labels), p, ds.skipped, list(ds.padded)


def _rows_of(labels: pd.DataFrame, split: str | None, source) -> pd.DataFrame:
    if split is None:
        return labels.reset_index(drop=True)
    if "split" not in labels.columns:
        raise ValueError(f"{source} has no 'split' column; split it first (dfdlib.split_labels / `dfd labels "
                         "split`) or evaluate every row with split=None (--split all)")
    rows = labels[labels["split"].astype(str) == split].reset_index(drop=True)
    if rows.empty:
        have = sorted(labels["split"].astype(str).unique())
        raise ValueError(f"{source} has no rows with split={split!r} (splits present: {have})")
    return rows


def _ensemble_scores(members, rows, processed_root, seq, batch_size, progress):
    """Mean prob_fake over members: (filenames, labels, prob_fake, skipped, padded)."""
    runs = [_split_scores(m, rows, processed_root, seq, batch_size, progress) for m in members]
    names, y, _, skipped, padded = runs[0]
    return names, y, np.mean([r[2] for r in runs], axis=0), skipped, padded


def _labels_of(labels) -> tuple[pd.DataFrame, str]:
    """(labels table, name for messages) of a DataFrame, or of a labels CSV read by the labels stage."""
    if isinstance(labels, pd.DataFrame):
        return labels, "labels"
    return read_labels(labels), str(labels)


def _methods_of(labels: pd.DataFrame, names: list[str]) -> list[str] | None:
    """Each evaluated video's method (or source) from the labels, None when the labels have neither column."""
    col = "method" if "method" in labels.columns else "source" if "source" in labels.columns else None
    if col is None:
        return None
    by_name = dict(zip(labels["filename"].astype(str), labels[col].astype(str), strict=True))
    return [by_name.get(n, "") for n in names]


def _table_dict(table: pd.DataFrame) -> dict:
    """metrics_by_method's frame → {method: {metric: value}} with None for undefined (JSON-safe)."""
    return {str(k): {c: (None if pd.isna(v) else (int(v) if c.startswith("n_") else float(v))) for c, v in row.items()}
            for k, row in table.iterrows()}


def _write_outputs(out: Path, metrics: dict, names, y, p, thr: float, methods) -> None:

    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "metrics.json") as f:
        json.dump(metrics, f, indent=2)
    preds = pd.DataFrame({"filename": names, "label": y, "prob_fake": p, "predicted": (p >= thr).astype(int)})
    if methods is not None:
        preds["method"] = methods
    write_csv(preds, out / "predictions.csv")
    plot_confusion(metrics["confusion_matrix"], out / "confusion.png")
    plot_roc(y, p, out / "roc.png")
    if methods is not None:
        plot_roc_by_method(y, p, methods, out / "roc_by_method.png")


def _scored(members, labels, source, split, root, seq, batch_size, progress, thr: float | None = None):
    """Scores + metrics of one labelled set: (metrics, names, y, p, methods). thr None: chosen later."""
    names, y, p, skipped, padded = _ensemble_scores(members, _rows_of(labels, split, source), root, seq,
                                                    batch_size, progress)
    methods = _methods_of(labels, names)
    metrics = compute_metrics(y, p, thr) if thr is not None else {}
    if thr is not None and methods is not None:
        metrics["by_method"] = _table_dict(metrics_by_method(y, p, methods, thr))
    metrics.update(skipped=[f"{f}: {why}" for f, why in skipped], padded=padded)
    return metrics, names, y, p, methods


def evaluate_model(model, labels_csv, processed_root, split: str | None = "test", out_dir=None,
                   threshold: str | float | None = "val", batch_size: int = 8, sequence_length=None,
                   progress: bool = True, device: str = "auto", cross_labels=None, cross_root=None,
                   cross_split: str | None = "test") -> dict:
    """Metrics of a model (or Ensemble) on one split of a labels CSV (a path, read by dfdlib.read_labels, or
    the table), from the processed face frames.

    `threshold`: "val" chooses it on the validation split (Youden's J, metrics.best_threshold) and
    applies it here; a float is used as given; None uses the model file's. Returns compute_metrics'
    dict plus split, threshold_source, sequence_length, models, skipped (rows without frames, left
    out), padded (clips shorter than the sequence) and, when the labels have a `method` (or `source`)
    column, by_method (metrics.metrics_by_method: each method's fakes against all reals).
    Cross-dataset protocol (train on FF++, test on Celeb-DF): `cross_labels` + `cross_root` name a second
    dataset, evaluated on `cross_split` (its `test` rows when it has them, else every row) with the same
    threshold; `metrics["cross"]` holds its metrics, by_method and the threshold report (the threshold
    used vs the best one on that set, which is optimistic: it peeks at the labels). With `out_dir`, writes
    metrics.json, predictions.csv, confusion.png, roc.png, roc_by_method.png there (and in out_dir/cross).
    Raises ValueError for a missing split, FileNotFoundError / LabelsError for a missing or malformed CSV.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1 (clips per forward pass), got {batch_size}")
    if (cross_labels is None) != (cross_root is None):
        raise ValueError("cross-dataset evaluation needs both cross_labels (its labels CSV) and cross_root "
                         "(its processed root)")
    if out_dir is not None:
        ensure_writable(out_dir, "evaluation output folder")
    model = as_model(model, device)
    members = members_of(model)
    seq = sequence_length_of(model.meta, sequence_length)
    labels, source = _labels_of(labels_csv)
    args = (seq, batch_size, progress)
    first, names, y, p, methods = _scored(members, labels, source, split, processed_root, *args)
    if threshold == "val":
        if "split" in labels.columns and (labels["split"].astype(str) == "val").any():
            _, _, yv, pv, _ = _scored(members, labels, source, "val", processed_root, *args)
            thr = best_threshold(yv, pv)
            thr_source = "val" if split != "val" else "val (chosen on the split evaluated: optimistic)"
        else:
            thr, thr_source = threshold_of(model.meta), "model file (no val split to calibrate on)"
    elif threshold is None:
        thr, thr_source = threshold_of(model.meta), "model file"
    else:
        thr, thr_source = float(threshold), "given"
    metrics = compute_metrics(y, p, thr)
    if methods is not None:
        metrics["by_method"] = _table_dict(metrics_by_method(y, p, methods, thr))
    metrics.update(split=split or "all", threshold_source=thr_source, sequence_length=seq,
                   models=[str(m.meta.get("path", "")) for m in members], **first)
    cross = None
    if cross_labels is not None:
        clabels, csource = _labels_of(cross_labels)
        csplit = cross_split if cross_split is None or ("split" in clabels.columns and
                                                       (clabels["split"].astype(str) == cross_split).any()) else None
        cross = _scored(members, clabels, csource, csplit, cross_root, *args, thr=thr)
        cm, _, yc, pc, _ = cross
        best = best_threshold(yc, pc)
        at_best = compute_metrics(yc, pc, best)
        cm.update(labels=csource, split=csplit or "all", threshold=thr, threshold_source=f"{thr_source} (of the "
                  "first dataset: the protocol)", best_threshold=best,
                  at_best_threshold={k: at_best[k] for k in ("accuracy", "precision", "recall", "f1")})
        metrics["cross"] = cm
    if out_dir is not None:
        _write_outputs(Path(out_dir), metrics, names, y, p, thr, methods)
        if cross is not None:
            _write_outputs(Path(out_dir) / "cross", cross[0], *cross[1:4], thr, cross[4])
    return metrics


def calibrate_threshold(model, labels_csv, processed_root, split: str = "val", batch_size: int = 8,
                        sequence_length=None, progress: bool = True, device: str = "auto"):
    """Chooses a model's (or Ensemble's) threshold on a labelled split and stores it in `model.meta`.

    For an Ensemble this is the threshold of its averaged scores (Youden's J, metrics.best_threshold),
    which the mean of its members' thresholds is not. Returns the model, with meta["threshold"] and
    meta["threshold_source"] set; predict_video then uses it. Raises ValueError for a missing split.
    """

    model = as_model(model, device)
    labels, source = _labels_of(labels_csv)
    _, y, p, _, _ = _ensemble_scores(members_of(model), _rows_of(labels, split, source), processed_root,
                                     sequence_length_of(model.meta, sequence_length), batch_size, progress)
    model.meta["threshold"] = best_threshold(y, p)
    model.meta["threshold_source"] = f"calibrated on {source} split={split} ({len(y)} clips)"
    return model
