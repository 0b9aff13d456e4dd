"""Stage 2, split: train/val/test assignment of a labels frame, seeded, stratified by label, with no
group (same `group`, or a fake and its `original`) crossing splits; the class balance per split; and the
leakage check that validate_labels runs on a CSV that already has a split column.

Split out of labels.py (which owns the CSV format, read/write and validation); `dfdlib.labels.split_labels`
and `dfdlib.labels.split_summary` still work.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

# `log` is labels.py's logger, so records keep the stage's logger name (dfdlib.labels).
from .labels import MINORITY_WARN, SPLITS, LabelsError, _cell, _parse_label, _stem, _warn, log

if TYPE_CHECKING:  # pandas is imported lazily: `dfd --help` imports the labels stage
    import pandas as pd


# ---------------------------------------------------------------- split


def _group_ids(df: pd.DataFrame, y: np.ndarray, group_col: str | None = "group") -> np.ndarray:
    """Row → group id. Rows sharing a `group_col` value, and a fake with the real video named in its
    `original` (matched by stem), are joined (union-find); any other row is its own group."""
    parent = list(range(len(df)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}

    def link(key: tuple[str, str], i: int) -> None:
        j = first.setdefault(key, i)
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    if group_col and group_col in df.columns:
        for i, g in enumerate(df[group_col]):
            if _cell(g):
                link(("group", _cell(g)), i)
    if "original" in df.columns:
        for i, (name, orig) in enumerate(zip(df["filename"], df["original"], strict=True)):
            if _cell(orig):
                link(("video", _stem(orig)), i)
            elif y[i] == 0:  # a real video is the original of the fakes that name it
                link(("video", _stem(name)), i)
    return np.array([find(i) for i in range(len(df))], dtype=np.int64)


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
    parsed = [_parse_label(v)[0] for v in out["label"]]
    bad = [(i + 2, f"label {_cell(v)!r} is not 0/1 (or REAL/FAKE)")
           for i, (p, v) in enumerate(zip(parsed, out["label"], strict=True)) if p is None]
    if bad:
        raise LabelsError("labels (DataFrame)", bad)
    y = np.array(parsed, dtype=np.int64)
    frame = out.reset_index(drop=True).assign(filename=[_cell(f) for f in out["filename"]])
    _, gid = np.unique(_group_ids(frame, y, group_col), return_inverse=True)
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


def split_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Class balance: one row per split (train/val/test, or `all` without a split column) and a total,
    columns real, fake, total, fake_pct."""
    import pandas as pd

    y = np.array([_parse_label(v)[0] for v in df["label"]], dtype=float)
    split = ([_cell(s) or "(none)" for s in df["split"]] if "split" in df.columns else ["all"] * len(df))
    names = [s for s in SPLITS if s in split] + sorted({s for s in split} - set(SPLITS))
    rows = {}
    for name in names + ["total"]:
        m = np.ones(len(y), bool) if name == "total" else np.array([s == name for s in split], bool)
        real, fake = int((y[m] == 0).sum()), int((y[m] == 1).sum())
        rows[name] = {"real": real, "fake": fake, "total": real + fake,
                      "fake_pct": round(100.0 * fake / (real + fake), 1) if real + fake else float("nan")}
    return pd.DataFrame.from_dict(rows, orient="index")


def warn_imbalance(summary: pd.DataFrame, source: str) -> None:
    notes = []
    for name, real, fake, total in summary.drop(index="total")[["real", "fake", "total"]].itertuples():
        if total and min(real, fake) < MINORITY_WARN * total:
            notes.append(f"{name}: {real} real / {fake} fake")
    if notes:
        _warn(f"{source}: strong class imbalance (minority class < {MINORITY_WARN:.0%}) in " + "; ".join(notes)
              + ". Accuracy is misleading there: read F1/ROC-AUC, or balance the data (more of the rare class).")


# ---------------------------------------------------------------- leakage check (validate_labels)


def find_leaks(df: pd.DataFrame, lines: list[int] | None = None) -> list[tuple[int | None, str]]:
    """Leakage in a split labels frame: one (line, text) per group (same `group`, or a fake and its
    `original`) whose rows sit in different splits; the text names every leaking row with its file line
    (`lines`, default: as write_labels writes them, header = line 1) and split. [] when nothing leaks."""
    lines = list(range(2, len(df) + 2)) if lines is None else lines
    y = np.array([_parse_label(v)[0] if _parse_label(v)[0] is not None else 0 for v in df["label"]])
    gid = _group_ids(df, y, "group")
    split = [_cell(s) for s in df["split"]]
    order = np.argsort(gid, kind="stable")
    out = []
    for rows in np.split(order, np.flatnonzero(np.diff(gid[order])) + 1):
        if len({split[i] for i in rows}) > 1:
            where = ", ".join(f"{df['filename'].iat[i]} ({split[i] or 'no split'})" for i in rows[:8])
            more = f" and {len(rows) - 8} more" if len(rows) > 8 else ""
            out.append((lines[rows[0]],
                        f"rows of one group (same `group`, or a fake and its `original`) are in different "
                        f"splits: {where}{more} [lines {', '.join(str(lines[i]) for i in rows[:8])}]"))
    return out


# Old private names, still used by code written before they became public.
_check_ratios, _warn_imbalance, _leaks = check_ratios, warn_imbalance, find_leaks
