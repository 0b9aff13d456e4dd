"""Stage 2, create / import: the labels frame from processed folders (`from_folders`), DFDC
`metadata.json` (`from_dfdc_metadata`) or the original project's `Gobal_metadata.csv` (`from_gobal_metadata`),
mapping video names to processed folders, then split (splits.py) and written (io.py).

Builds on schema.py and splits.py (finish_labels: split and write); nothing there imports this module.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dfdlib.labels.schema import DEFAULT_GLOBS, LabelsError, has_frames, listed, stem, warn
from dfdlib.labels.splits import finish_labels
from dfdlib.utils import cell, check_processed_root, not_found, parse_label

if TYPE_CHECKING:  # pandas is imported lazily: `dfd --help` imports the labels stage
    import pandas as pd


# ---------------------------------------------------------------- create / import


def from_folders(processed_root, out_csv=None, real_glob: str = DEFAULT_GLOBS[0],
                 fake_glob: str = DEFAULT_GLOBS[1], split=(0.7, 0.15, 0.15), seed: int = 0) -> pd.DataFrame:
    """Labels for every processed folder matched by `real_glob` (0) / `fake_glob` (1), relative to
    `processed_root`. A folder counts when it holds frame_*.jpg; dot-named leftovers of interrupted runs
    are skipped; folders without frames are left out with a warning. Rows are sorted by filename,
    split by `split` ratios (None: no split column) and written atomically to `out_csv` if given.
    Raises FileNotFoundError (no root), ValueError (nothing found, or a folder matched by both globs)."""
    import pandas as pd

    root = check_processed_root(processed_root)
    found: dict[str, int] = {}
    empty: list[str] = []
    for label, pattern in ((0, real_glob), (1, fake_glob)):
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ValueError(f"glob {pattern!r} must be relative to the processed root {root} (e.g. 'real/*')")
        for p in sorted(root.glob(pattern)):
            rel = p.relative_to(root)
            if not p.is_dir() or any(part.startswith(".") for part in rel.parts):
                continue
            name = rel.as_posix()
            if found.get(name, label) != label:
                raise ValueError(f"{name} matches both real_glob {real_glob!r} and fake_glob {fake_glob!r}; "
                                 "make the patterns disjoint")
            if has_frames(p):
                found[name] = label
            elif name not in empty:
                empty.append(name)
    if empty:
        warn(f"{len(empty)} folder(s) under {root} hold no frame_*.jpg (no face found?) and were left out: "
              f"{listed(empty)}")
    if not found:
        raise ValueError(f"no folder under {root} matching {real_glob!r} or {fake_glob!r} holds frame_*.jpg "
                         "files: run `dfd preprocess` first, or pass globs that match your layout")
    for label, pattern in ((0, real_glob), (1, fake_glob)):
        if label not in found.values():
            warn(f"no {('real', 'fake')[label]} videos: nothing under {root} matching {pattern!r} holds frames")
    df = pd.DataFrame({"filename": list(found), "label": list(found.values())})
    return finish_labels(df, out_csv, split, seed)


def _index_folders(root: Path, max_depth: int = 3) -> dict[str, list[str]]:
    """Folder name → relative paths of the folders holding frames, up to `max_depth` levels below root."""
    index: dict[str, list[str]] = {}

    def walk(d: Path, depth: int) -> None:
        with os.scandir(d) as it:
            subdirs = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
        for name in subdirs:
            p = d / name
            if has_frames(p):
                index.setdefault(name, []).append(p.relative_to(root).as_posix())
            elif depth < max_depth:
                walk(p, depth + 1)

    walk(root, 1)
    return index


def _map_records(records: list[tuple[str, str, int, str]], root: Path, source: str, tag: str) -> pd.DataFrame:
    """(where, video name, label, original) → labels rows for the names that have a processed folder."""
    import pandas as pd

    index = _index_folders(root)
    rows: dict[str, tuple[int, str, str]] = {}
    missing, ambiguous, mismatch, conflicts = [], [], [], []
    for where, name, label, orig in records:
        cands = index.get(stem(name), [])
        if len(cands) > 1:  # same stem in several folders: prefer the one under real/ or fake/ matching the label
            pref = [c for c in cands if ("real", "fake")[label] in c.split("/")[:-1]]
            cands = pref if len(pref) == 1 else cands
        if not cands:
            missing.append(name)
            continue
        if len(cands) > 1:
            ambiguous.append(f"{name} ({' / '.join(cands)})")
            continue
        folder = cands[0]
        if folder in rows:
            if rows[folder][0] != label:
                conflicts.append((None, f"{where}: {name} is labelled both REAL and FAKE (also {rows[folder][1]})"))
            continue
        rows[folder] = (label, where, orig)
        if ("fake", "real")[label] in folder.split("/")[:-1]:
            mismatch.append(f"{folder}={('REAL', 'FAKE')[label]}")
    if conflicts:
        raise LabelsError(source, conflicts, "Fix the labels so each video has one.")
    if missing:
        warn(f"{source}: {len(missing)} of {len(records)} video(s) have no processed folder under {root} "
              f"(not preprocessed, or no face found) and were left out: {listed(missing)}")
    if ambiguous:
        warn(f"{source}: {len(ambiguous)} video(s) match several processed folders and were left out: "
              f"{listed(ambiguous)}")
    if mismatch:
        warn(f"{source}: {len(mismatch)} folder(s) sit under the other class's folder; the metadata label "
              f"was kept: {listed(mismatch)}")
    if not rows:
        raise ValueError(f"none of the {len(records)} videos in {source} has a processed folder under {root} "
                         "(expected <root>/real/<video name>/frame_0.jpg): check the processed root")
    df = pd.DataFrame({"filename": list(rows), "label": [v[0] for v in rows.values()]})
    if any(v[2] for v in rows.values()):
        df["original"] = [v[2] for v in rows.values()]
    df["source"] = tag
    return df


def from_dfdc_metadata(metadata_json, processed_root, out_csv=None, split=(0.7, 0.15, 0.15),
                       seed: int = 0) -> pd.DataFrame:
    """Import DFDC labels: `metadata.json` ({"x.mp4": {"label": "FAKE", "original": "y.mp4", ...}}), one
    path or a list (one per DFDC part). Names map to processed folders by stem; `original` is kept so a
    fake and its real video land in the same split (DFDC's own `split` field is not used). Returns the
    labels frame (written to `out_csv` if given). Raises FileNotFoundError, LabelsError (bad JSON/labels)."""
    paths = [metadata_json] if isinstance(metadata_json, (str, os.PathLike)) else list(metadata_json)
    records, problems = [], []
    for path in map(Path, paths):
        if not path.is_file():
            raise not_found("DFDC metadata", path)
        try:
            meta = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as e:
            raise LabelsError(path, [(e.lineno, f"not valid JSON ({e.msg}): use the metadata.json shipped "
                                                "with the DFDC part")]) from None
        if not isinstance(meta, dict):
            raise LabelsError(path, [(1, "expected an object {\"video.mp4\": {\"label\": \"FAKE\", ...}}")])
        for name, entry in meta.items():
            entry = entry if isinstance(entry, dict) else {"label": entry}
            label, _ = parse_label(entry.get("label"))
            if label is None:
                problems.append((None, f"{path}: entry {name!r} has label {entry.get('label')!r}; expected REAL or FAKE"))
            else:
                records.append((str(path), name, label, cell(entry.get("original")) if label == 1 else ""))
    if problems:
        raise LabelsError(str(paths[0]) if len(paths) == 1 else "DFDC metadata", problems)
    source = str(paths[0]) if len(paths) == 1 else f"{len(paths)} DFDC metadata files"
    return finish_labels(_map_records(records, check_processed_root(processed_root), source, "dfdc"), out_csv, split,
                         seed)


def from_gobal_metadata(csv_path, processed_root, out_csv=None, split=(0.7, 0.15, 0.15),
                        seed: int = 0) -> pd.DataFrame:
    """Import the original project's `Gobal_metadata.csv` (no header; `file,label` with REAL/FAKE).
    A header row (e.g. `URI,label,original,split` from label_json_to_csv.py) is tolerated and an
    `original` column used. Returns the labels frame (written to `out_csv` if given). Raises
    FileNotFoundError, LabelsError naming the line of a bad label or a malformed row."""
    path = Path(csv_path)
    if not path.is_file():
        raise not_found("Gobal_metadata CSV", path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        rows = [(reader.line_num, [c.strip() for c in cells]) for cells in reader if any(c.strip() for c in cells)]
    if not rows:
        raise LabelsError(path, [(1, "the file is empty; expected lines like `video.mp4,FAKE`")])
    orig_col = None
    if len(rows[0][1]) >= 2 and parse_label(rows[0][1][1])[0] is None:  # a header line
        header = [c.lower() for c in rows[0][1]]
        orig_col = header.index("original") if "original" in header else None
        rows = rows[1:]
    records, problems = [], []
    for ln, cells in rows:
        label = parse_label(cells[1])[0] if len(cells) >= 2 else None
        if len(cells) < 2 or not cells[0]:
            problems.append((ln, "expected `video.mp4,REAL` or `video.mp4,FAKE`"))
        elif label is None:
            problems.append((ln, f"label {cells[1]!r} is not REAL/FAKE (or 0/1)"))
        else:
            orig = cells[orig_col] if orig_col is not None and orig_col < len(cells) and label == 1 else ""
            records.append((f"line {ln}", cells[0], label, orig))
    if problems:
        raise LabelsError(path, problems)
    records = _map_records(records, check_processed_root(processed_root), str(path), "gobal_metadata")
    return finish_labels(records, out_csv, split, seed)
