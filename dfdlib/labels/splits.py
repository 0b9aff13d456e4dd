"""Stage 2, split: train/val/test assignment of a labels frame, seeded, stratified by label, with no
group (same `group`, or a fake and its `original`) crossing splits; a dataset's official split kept
(`split_official`); the last step of every creator (`finish_labels`: sort, split, write).

Builds on schema.py (schema, groups, balance, leakage check; re-exported here) and io.py (write).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dfdlib.labels.io import write_labels
from dfdlib.labels.schema import (
    SPLITS,
    LabelsError,
    find_leaks,
    group_ids,
    log,
    split_summary,
    warn,
    warn_imbalance,
)
from dfdlib.utils import cell, parse_label

if TYPE_CHECKING:  # pandas is imported lazily: `dfd --help` imports the labels stage
    import pandas as pd


# ---------------------------------------------------------------- split


def check_ratios(ratios) -> np.ndarray:
    """(train, val, test) shares, or a "70,15,15" string → shares normalised to sum 1."""
    try:
        r = np.asarray(ratios.split(",") if isinstance(ratios, str) else ratios, dtype=float)
    except (TypeError, ValueError):
        r = np.array([])
    if r.shape != (3,) or not np.isfinite(r).all() or (r < 0).any() or r[0] <= 0:
        raise ValueError(f"ratios must be three non-negative numbers train,val,test with train > 0 "
                         f"(e.g. 0.7,0.15,0.15), got {ratios!r}")
    return r / r.sum()


def split_labels(df: pd.DataFrame, ratios=(0.7, 0.15, 0.15), seed: int = 0, group_col: str | None = "group"
                 ) -> pd.DataFrame:
    """Assign train/val/test, seeded, stratified by label at group level, with no group crossing splits.

    Groups: rows sharing `group_col`, plus each fake with its `original` (see _group_ids). When a class
    has >= 3 groups, each split with a non-zero ratio gets at least one group of it, so val/test metrics
    such as ROC-AUC are defined even on tiny sets. Takes a labels frame; returns a copy with `split`
    set (row order kept); logs split_summary and warns on strong class imbalance.
    """
    r = check_ratios(ratios)
    out = df.copy()
    parsed = [parse_label(v)[0] for v in out["label"]]
    bad = [(i + 2, f"label {cell(v)!r} is not 0/1 (or REAL/FAKE)")
           for i, (p, v) in enumerate(zip(parsed, out["label"], strict=True)) if p is None]
    if bad:
        raise LabelsError("labels (DataFrame)", bad)
    y = np.array(parsed, dtype=np.int64)
    frame = out.reset_index(drop=True).assign(filename=[cell(f) for f in out["filename"]])
    _, gid = np.unique(group_ids(frame, y, group_col), return_inverse=True)
    n_groups = int(gid.max()) + 1 if len(gid) else 0
    cnt = np.zeros((n_groups, 2), dtype=np.int64)  # rows per group and class
    np.add.at(cnt, (gid, y), 1)
    has, size = cnt > 0, cnt.sum(1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    where = np.full(n_groups, -1)
    filled = np.zeros((3, 2))
    target = r[:, None] * cnt.sum(0)[None, :]

    def put(g: int, s: int) -> None:
        where[g] = s
        filled[s] += cnt[g]

    # 1) one group of each class into every split (rarest class first), smallest groups first.
    for c in np.argsort(has.sum(0), kind="stable"):
        if has[:, c].sum() < 3:
            continue
        for s in (2, 1, 0):
            if r[s] == 0 or (has[:, c] & (where == s)).any():
                continue
            free = [g for g in order if where[g] < 0 and has[g, c]]
            if free:
                put(min(free, key=lambda g: size[g]), s)
    # 2) the rest, largest first (random order among equal sizes), each to the split where it most
    #    lowers sum (filled - target)^2 / target: relative shortfalls, so every split fills in proportion
    #    (an absolute one would pour all the big groups into train); classes weighted equally.
    weight = 1.0 / (np.maximum(target, 1e-9) * np.maximum(cnt.sum(0), 1))
    for g in sorted((g for g in order if where[g] < 0), key=lambda g: -size[g]):
        gain = (((filled + cnt[g] - target) ** 2 - (filled - target) ** 2) * weight).sum(1)
        gain[r == 0] = np.inf
        put(g, int(np.argmin(gain)))
    out["split"] = [SPLITS[where[g]] for g in gid]
    summary = split_summary(out)
    log.info("class balance per split:\n%s", summary.to_string())
    warn_imbalance(summary, "split")
    return out


def split_official(df: pd.DataFrame, ratios=(0.7, 0.15, 0.15), seed: int = 0) -> pd.DataFrame:
    """Group-aware split that keeps the official split in column `official` (train/val/test or '').

    A group with any officially placed row goes, whole, where most of its placed rows are. The other
    groups are split by `ratios` (seeded, stratified, split_labels) over the splits the official
    lists do not fill: with only a test list (Celeb-DF) the rest becomes train/val; with all three lists
    (FF++) rows in none of them are split by the full ratios. Without official splits this is split_labels.
    Returns a copy with `split` (no `official`)."""
    r = check_ratios(ratios)
    out = df.drop(columns=["official"]).copy() if "official" in df.columns else df.copy()
    official = [str(x).strip().lower() if str(x).strip().lower() in SPLITS else "" for x in
                (df["official"] if "official" in df.columns else [""] * len(df))]
    if not any(official):
        return split_labels(out, r, seed=seed)
    groups = [str(g) or f"row:{i}" for i, g in enumerate(out.get("group", [""] * len(out)))]
    votes: dict[str, dict[str, int]] = {}
    for g, s in zip(groups, official, strict=True):
        if s:
            votes.setdefault(g, {}).setdefault(s, 0)
            votes[g][s] += 1
    placed = {g: max(v, key=lambda s: (v[s], -SPLITS.index(s))) for g, v in votes.items()}
    split = np.array([placed.get(g, "") for g in groups], dtype=object)
    rest = split == ""
    if rest.any():
        covered = set(placed.values())
        rr = r.copy() if "train" in covered else np.array([0.0 if s in covered else x for s, x in zip(SPLITS, r, strict=True)])
        part = split_labels(out[rest], rr, seed=seed)
        split[rest] = part["split"].to_numpy()
    out["split"] = list(split)
    return out


def finish_labels(df: pd.DataFrame, out_csv, split, seed: int) -> pd.DataFrame:
    """The last step of every labels creator: rows sorted by filename, split (`split`: ratios, True for
    70/15/15, None/False for no split column; an `official` column is kept as split_official says) and
    written atomically to `out_csv` when given. Returns the table."""
    df = df.sort_values("filename", kind="stable").reset_index(drop=True)
    if split is not None and split is not False:
        df = split_official(df, (0.7, 0.15, 0.15) if split is True else split, seed=seed)
        leaks = find_leaks(df)
        if leaks:  # only an official list that itself splits a group gets here
            warn(f"the official split separates {len(leaks)} group(s) (kept as the lists say): "
                 + "; ".join(t for _, t in leaks[:3]))
    elif "official" in df.columns:
        df = df.drop(columns=["official"])
    if out_csv is not None:
        write_labels(df, out_csv)
        log.info("wrote %d rows to %s", len(df), out_csv)
    return df
