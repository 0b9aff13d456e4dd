"""Stage 2: the labels CSV: read, write and validate it before training.

Format (docs/design.md): `filename,label[,split,group,original,source]` with a header; `filename` is a
processed video folder relative to the processed root (`real/video1`), `label` 0 = real, 1 = fake.
Line numbers in errors are lines of the file (header = line 1), so the user can jump straight to them.

The schema and helpers are in schema.py, the split in splits.py, the creators in metadata.py and
sources.py, the `dfd labels` command in cli.py; this module imports only labels_table.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dfdlib.labels.schema import (
    COLUMNS,
    SPLITS,
    VIDEO_EXTENSIONS,
    LabelsError,
    find_leaks,
    listed,
    split_summary,
    warn,
    warn_imbalance,
)
from dfdlib.utils import (
    DFDLIB_FRAME_RE,
    cell,
    check_processed_root,
    frame_files,
    frame_number,
    not_found,
    parse_label,
    relative_folder,
    split_face,
    write_csv,
)

if TYPE_CHECKING:  # pandas is imported lazily: `dfd --help` imports this module
    import pandas as pd

SHORT = ("error", "drop", "pad")  # what validate_labels does with folders of too few frames


def _frames(folder: Path) -> tuple[int, int | None]:
    """(number of frame images in `folder`, first missing index if a dfdlib folder is not numbered 0..N-1).

    A folder the preprocess stage wrote holds frame_0.jpg … frame_<N-1>.jpg; a few holes there mean a
    damaged folder. Frames of other origin (face-frame datasets: `0001.png`, every 10th frame …) may start
    anywhere and skip numbers, so only dfdlib-named folders starting at 0 with under half missing are checked.
    """
    names = frame_files(folder)
    n = len(names)
    if not n or not all(DFDLIB_FRAME_RE.fullmatch(x) for x in names):
        return n, None
    idx = {frame_number(x) for x in names}
    if min(idx) != 0 or max(idx) == n - 1 or max(idx) + 1 > 2 * n:
        return n, None
    return n, min(set(range(n)) - idx)


# ---------------------------------------------------------------- read / write


def _read_csv(path) -> tuple[pd.DataFrame, list[int]]:
    """Parse a labels CSV → (frame of text cells, file line of each row). Raises FileNotFoundError/LabelsError."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise not_found("labels CSV", path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, [c.strip() for c in cells]) for cells in reader if any(c.strip() for c in cells)]
    except UnicodeDecodeError as e:
        raise LabelsError(path, [(None, f"not UTF-8 text ({e.reason}); save it as 'CSV UTF-8' (comma separated)")]) from None
    except csv.Error as e:
        raise LabelsError(path, [(None, f"not a readable CSV ({e}); save it as comma-separated text")]) from None
    if not rows:
        raise LabelsError(path, [(1, "the file is empty; it needs the header `filename,label` and one row per "
                                     "video (`dfd labels PROCESSED` or dfdlib.from_folders writes one)")])
    (hline, header), rows = rows[0], rows[1:]
    missing = [c for c in ("filename", "label") if c not in header]
    if missing:
        if header[:2] == ["file", "label"]:
            hint = "this looks like the original project's Gobal_metadata.csv: import it with " \
                   "dfdlib.from_gobal_metadata or `dfd labels PROCESSED --gobal FILE`"
        elif len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            hint = "the file seems separated by ';' or tabs: save it comma-separated"
        elif parse_label(header[-1])[0] is not None:
            hint = "the first line looks like data: add the header line `filename,label`"
        else:
            hint = f"found columns {header}; rename them to filename,label"
        raise LabelsError(path, [(hline, f"missing column(s) {', '.join(missing)}: {hint}")])
    problems = [(hline, f"column {c!r} appears twice in the header") for c in sorted(set(header)) if header.count(c) > 1]
    for ln, cells in rows:
        if len(cells) > len(header):
            problems.append((ln, f"{len(cells)} cells but the header has {len(header)}; quote a filename "
                                 "that contains a comma, or remove the extra cells"))
    if problems:
        raise LabelsError(path, problems)
    df = pd.DataFrame([cells + [""] * (len(header) - len(cells)) for _, cells in rows], columns=header, dtype=str)
    return df, [ln for ln, _ in rows]


def read_labels(path) -> pd.DataFrame:
    """Read a labels CSV. Takes a path; returns its rows as text columns (`label` as int when every value
    is 0/1 or REAL/FAKE). Raises FileNotFoundError naming the path tried and the working directory,
    LabelsError for an empty file, a missing `filename`/`label` column or malformed rows.
    Use validate_labels before training: it checks the values and the folders too."""
    df = _read_csv(path)[0]
    parsed = [parse_label(v) for v in df["label"]]
    if len(df) and all(lab is not None for lab, _ in parsed):  # typical file: int labels straight away
        df["label"] = np.array([lab for lab, _ in parsed], dtype=np.int64)
        if any(text for _, text in parsed):
            warn(f"{path}: labels given as REAL/FAKE text were read as REAL=0, FAKE=1")
    return df


def write_labels(df: pd.DataFrame, path) -> Path:
    """Write `df` as a labels CSV atomically, canonical columns first; the derived `frames` column is left
    out (it is re-counted from disk on validation). Returns the path. Raises ValueError without
    `filename`/`label` columns."""
    missing = [c for c in ("filename", "label") if c not in df.columns]
    if missing:
        raise ValueError(f"cannot write labels without column(s) {missing}; got {list(df.columns)}")
    cols = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS and c != "frames"]
    out = df[cols].copy()
    parsed = [parse_label(v)[0] for v in out["label"]]
    if None not in parsed:
        out["label"] = parsed
    write_csv(out, path, lineterminator="\n")
    return Path(path)


def _as_frame(labels) -> tuple[pd.DataFrame, list[int], str]:
    """Path or DataFrame → (text frame with a fresh index, file line per row, name for messages)."""
    import pandas as pd

    if isinstance(labels, pd.DataFrame):
        df = labels.reset_index(drop=True).copy()
        # Rows of a frame are numbered as write_labels would write them (header = line 1).
        return df, list(range(2, len(df) + 2)), "labels (DataFrame)"
    df, lines = _read_csv(labels)
    return df, lines, str(labels)


# ---------------------------------------------------------------- validate


def validate_labels(labels, processed_root, sequence_length: int | None = None, short: str = "error",
                    require_split: bool = False, groups: dict[str, str] | None = None,
                    training: bool = True) -> pd.DataFrame:
    """Check a labels CSV (path or DataFrame) against the processed folders before training.

    Returns a normalised frame: int `label` 0/1, `filename` with forward slashes, optional columns as text,
    and `frames` (number of frame_*.jpg). Folders with fewer than `sequence_length` frames are an error
    (`short="error"`), left out with a warning (`"drop"`) or kept for the dataset to pad by repeating the
    last frame (`"pad"`). `groups` (filename → group, e.g. label_sources.dataset_groups) fills a missing
    `group` column so that a split made without groups is checked for leakage too. `training` (the default:
    `dfd train` and `dfd labels --check` share this one validation) adds what training needs of a split
    column that is used: no empty split cell, train and val rows (no split column at all: training makes
    one). Raises LabelsError listing every bad row at once; FileNotFoundError for a missing CSV or root.
    """
    if short not in SHORT:
        raise ValueError(f"short must be one of {', '.join(SHORT)}, got {short!r}")
    root = check_processed_root(processed_root)
    df, lines, source = _as_frame(labels)
    missing = [c for c in ("filename", "label") if c not in df.columns]
    if missing:
        raise LabelsError(source, [(1, f"missing column(s) {', '.join(missing)}; the header must be filename,label")])
    if not len(df):
        raise LabelsError(source, [(None, "no rows: add one row per processed video (filename,label)")])
    for c in df.columns:
        if c != "label":
            df[c] = [cell(v) for v in df[c]]
    problems: list[tuple[int | None, str]] = []
    hint = ""
    y, text_rows = [], 0
    for ln, v in zip(lines, df["label"], strict=True):
        lab, was_text = parse_label(v)
        text_rows += was_text
        if lab is None:
            problems.append((ln, f"label {cell(v)!r} is not 0/1 (or REAL/FAKE): use 0 for real, 1 for fake"))
        y.append(lab)
    if text_rows:
        warn(f"{source}: {text_rows} label(s) given as REAL/FAKE text were read as REAL=0, FAKE=1")
    names, seen = [], {}
    for ln, raw in zip(lines, df["filename"], strict=True):
        name, bad = relative_folder(raw)
        names.append(name)
        if bad:
            problems.append((ln, bad))
        elif name in seen:
            problems.append((ln, f"duplicate filename {name!r} (first on line {seen[name]}): keep one row per video"))
        else:
            seen[name] = ln
    df["filename"] = names
    if groups and "group" not in df.columns:
        df["group"] = [groups.get(n) or groups.get(split_face(n)[0], "") for n in names]  # face_<k>: the video's
    if "split" in df.columns:
        df["split"] = [s.lower() for s in df["split"]]
        used = df["split"].ne("").any()  # a split column left empty everywhere: training splits 70/15/15 itself
        for ln, s in zip(lines, df["split"], strict=True):
            if s and s not in SPLITS:
                problems.append((ln, f"split {s!r} is not train/val/test: fix it or re-split with split_labels"))
            elif not s and (require_split or (training and used)):
                problems.append((ln, "empty split: fill train/val/test, or re-split with split_labels / `dfd labels`"))
        for s in ("train", "val") if training and used else ():
            if not df["split"].eq(s).any():
                problems.append((None, f"no '{s}' rows: training needs train and val splits (re-split with "
                                       "dfdlib.split_labels or `dfd labels --ratios 0.7,0.15,0.15`)"))
    elif require_split:
        problems.append((1, "no split column: add one with split_labels(...) or create the CSV with `dfd labels` "
                            "(it splits 70/15/15 by default)"))
    frames, short_rows = [], []
    for i, (ln, name) in enumerate(zip(lines, names, strict=True)):
        n = 0
        folder = root / name
        if name and name in seen and seen[name] == ln:  # only well-formed, first occurrences
            if not folder.is_dir():
                stem_dir = folder.with_suffix("") if folder.suffix.lower() in VIDEO_EXTENSIONS else None
                tip = (f"give the processed folder {Path(name).with_suffix('').as_posix()!r}, not the video"
                       if stem_dir is not None and stem_dir.is_dir() else
                       "check the name and the processed root, or remove the row")
                problems.append((ln, f"folder {name!r} does not exist under {root}: {tip}"))
            else:
                n, gap = _frames(folder)
                if gap is not None:
                    problems.append((ln, f"{name!r} has {n} frames but frame_{gap}.jpg is missing (expected "
                                         f"frame_0..frame_{n - 1}): re-run preprocessing for this video"))
                elif n == 0 and short != "drop":
                    problems.append((ln, f"{name!r} holds no frame_*.jpg (no face found?): remove the row or "
                                         "re-run preprocessing"))
                elif n < (sequence_length or 1):
                    short_rows.append(i)
                    if short == "error":
                        problems.append((ln, f"{name!r} has {n} frames, fewer than sequence_length={sequence_length}"))
                        hint = ("Short folders: pass short='drop' to leave them out or short='pad' to repeat "
                                "their last frame (CLI: --short drop|pad), or preprocess with more frames.")
        frames.append(n)
    if None not in y and len(set(y)) == 1:
        problems.append((None, _one_class(y)))
    if problems:
        raise LabelsError(source, problems, hint)
    df["label"] = y
    df["frames"] = frames
    if short_rows:
        shown = listed([f"{names[i]} ({frames[i]})" for i in short_rows])
        if short == "drop":
            warn(f"{source}: left out {len(short_rows)} folder(s) with fewer than {sequence_length or 1} "
                  f"frames: {shown}")
            df = df.drop(index=short_rows).reset_index(drop=True)
            lines = [ln for i, ln in enumerate(lines) if i not in set(short_rows)]
        else:
            warn(f"{source}: {len(short_rows)} folder(s) have fewer than {sequence_length} frames; their last "
                  f"frame will be repeated: {shown}")
    if len(set(df["label"])) < 2:  # dropping short folders removed a whole class
        raise LabelsError(source, [(None, _one_class(list(df["label"])) + " (after leaving out short folders)")])
    if "split" in df.columns and df["split"].ne("").any():
        leaks = find_leaks(df, lines)
        if leaks:
            raise LabelsError(source, leaks, "Re-split with split_labels(...) / `dfd labels` to keep groups together.")
        warn_imbalance(split_summary(df), source)
    cols = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
    return df[cols]


def _one_class(y: list[int]) -> str:
    if not y:
        return "no rows left: every folder is shorter than sequence_length"
    return (f"only one class present: all {len(y)} rows are {('real (0)', 'fake (1)')[y[0]]}; "
            "training needs both real (0) and fake (1) videos")


# The `dfd labels` command is in cli.py; the labels of a processed tree in any layout in sources.py.
