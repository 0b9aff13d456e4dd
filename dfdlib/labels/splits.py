"""Stage 2, split: train/val/test assignment of a labels frame, seeded, stratified by label, with no
group (same `group`, or a fake and its `original`) crossing splits.

Builds on schema.py (schema, groups, balance, leakage check; re-exported here).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dfdlib.labels.schema import (
    SPLITS,
    LabelsError,
    cell,
    find_leaks,
    group_ids,
    log,
    parse_label,
    split_summary,
    warn_imbalance,
)

__all__ = ["check_ratios", "split_labels", "split_summary", "find_leaks", "warn_imbalance"]

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
