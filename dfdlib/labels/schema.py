"""Stage 2, the labels table's base: its schema (columns, splits, default folder globs), the error type that
names file lines, the groups that must not cross splits (utils.UnionFind over `group` and fake → `original`),
the class balance per split and the leakage check. A cell and a 0/1 label are read by utils.cell and
utils.parse_label, which the dataset scanners share.

Nothing here imports the rest of the labels stage: schema ← io (read, write, validate) ← splits (split, and
finish_labels: sort, split, write); metadata and sources (create the table) build on those; cli
(`dfd labels`) on all of them.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dfdlib.utils import UnionFind, cell, frame_number, parse_label
from dfdlib.video import VIDEO_EXTENSIONS

if TYPE_CHECKING:  # pandas is imported lazily: `dfd --help` imports the labels stage
    import pandas as pd

log = logging.getLogger("dfdlib.labels.io")  # one logger name for the whole labels stage

COLUMNS = ["filename", "label", "split", "group", "original", "source"]  # canonical order when writing
SPLITS = ("train", "val", "test")
DEFAULT_GLOBS = ("real/*", "fake/*")  # folders of real / fake videos under a processed root (from_folders)
MAX_SHOWN = 20  # problems listed in one error / names in one warning
MINORITY_WARN = 0.25  # warn when a split's minority class is below this share


class LabelsError(ValueError):
    """Problems in a labels CSV. The message names the file, each line (header = line 1) and what to do.

    `problems` holds (line or None, text) for every problem found, not only the first.
    """

    def __init__(self, source: str, problems: list[tuple[int | None, str]], hint: str = ""):
        # in file order; whole-file problems (no line) last
        self.problems = sorted(problems, key=lambda p: (p[0] is None, p[0] or 0))
        self.source, self.hint = str(source), hint
        where = [f"line {ln}: {msg}" if ln else msg for ln, msg in self.problems]
        if len(where) == 1:
            text = f"{self.source}, {where[0]}"
        else:
            shown = [f"  {w}" for w in where[:MAX_SHOWN]]
            if len(where) > MAX_SHOWN:
                shown.append(f"  ... and {len(where) - MAX_SHOWN} more")
            text = "\n".join([f"{self.source}: {len(where)} problems:", *shown])
        super().__init__(text + (f"\n{hint}" if hint else ""))

    def __reduce__(self):  # keep it picklable (worker processes) despite the custom __init__
        return (type(self), (self.source, self.problems, self.hint))


def warn(msg: str) -> None:
    warnings.warn(msg, UserWarning, stacklevel=3)


def listed(names: list[str], limit: int = MAX_SHOWN, sep: str = ", ") -> str:
    """The first `limit` names joined by `sep`, and how many more there are."""
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return sep.join(names[:limit]) + more


def stem(name: str) -> str:
    """Video name or folder path → the processed folder name (`a/b/x.mp4` → `x`)."""
    base = cell(name).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    root, ext = os.path.splitext(base)
    return root if ext.lower() in VIDEO_EXTENSIONS else base


def has_frames(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(frame_number(e.name) is not None and not e.name.startswith(".") for e in it)


# ---------------------------------------------------------------- groups, balance, leakage


def group_ids(df: pd.DataFrame, y: np.ndarray, group_col: str | None = "group") -> np.ndarray:
    """Row → group id. Rows sharing a `group_col` value, and a fake with the real video named in its
    `original` (matched by stem), are joined (union-find); any other row is its own group."""
    sets = UnionFind(range(len(df)))
    first: dict[tuple[str, str], int] = {}

    def link(key: tuple[str, str], i: int) -> None:
        sets.union(first.setdefault(key, i), i)

    if group_col and group_col in df.columns:
        for i, g in enumerate(df[group_col]):
            if cell(g):
                link(("group", cell(g)), i)
    if "original" in df.columns:
        for i, (name, orig) in enumerate(zip(df["filename"], df["original"], strict=True)):
            if cell(orig):
                link(("video", stem(orig)), i)
            elif y[i] == 0:  # a real video is the original of the fakes that name it
                link(("video", stem(name)), i)
    return np.array([sets.find(i) for i in range(len(df))], dtype=np.int64)


def split_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Class balance: one row per split (train/val/test, or `all` without a split column) and a total,
    columns real, fake, total, fake_pct."""
    import pandas as pd

    y = np.array([parse_label(v)[0] for v in df["label"]], dtype=float)
    split = ([cell(s) or "(none)" for s in df["split"]] if "split" in df.columns else ["all"] * len(df))
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
        warn(f"{source}: strong class imbalance (minority class < {MINORITY_WARN:.0%}) in " + "; ".join(notes)
              + ". Accuracy is misleading there: read F1/ROC-AUC, or balance the data (more of the rare class).")


# ---------------------------------------------------------------- leakage check (validate_labels)


def find_leaks(df: pd.DataFrame, lines: list[int] | None = None) -> list[tuple[int | None, str]]:
    """Leakage in a split labels frame: one (line, text) per group (same `group`, or a fake and its
    `original`) whose rows sit in different splits; the text names every leaking row with its file line
    (`lines`, default: as write_labels writes them, header = line 1) and split. [] when nothing leaks."""
    lines = list(range(2, len(df) + 2)) if lines is None else lines
    y = np.array([parse_label(v)[0] if parse_label(v)[0] is not None else 0 for v in df["label"]])
    gid = group_ids(df, y, "group")
    split = [cell(s) for s in df["split"]]
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
