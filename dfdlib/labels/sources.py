"""Stage 2, labels of a processed tree in any layout, and of face-frame datasets shipped already cropped.

`from_processed(root)` reads what `dfd preprocess` wrote: `samples.csv` (every sample's label, group,
method, original and official split, whatever the source layout) and `layout.json`; the frame folders
may be nested (`fake/Deepfakes/c23/000_003`). Without samples.csv, groups come from the names themselves
(FF++ `A_B`, Celeb-DF `idX_idY_NNNN` …, layout_scan.name_links). `from_frames_dataset(root)` does the
same for a tree of face images (`real|fake/**/<video>/0001.png`) after checking every folder is usable.
The split is group-aware and keeps the dataset's official split (FF++ lists, Celeb-DF test list).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dfdlib.datasets.layouts import assign_groups
from dfdlib.datasets.scan import CLASSES, Sample, class_dirs, name_links
from dfdlib.labels.metadata import from_folders
from dfdlib.labels.originals import relabel_fake_faces
from dfdlib.labels.schema import DEFAULT_GLOBS, LabelsError, listed, warn
from dfdlib.labels.splits import finish_labels
from dfdlib.utils import DFDLIB_FRAME_RE, check_processed_root, frame_files, split_face

if TYPE_CHECKING:  # pandas is imported lazily: `dfd --help` imports the labels stage
    import pandas as pd

_SHOWN = 10  # names listed in one warning


def frame_folders(root) -> dict[str, list[str]]:
    """Every video folder under `root/real` and `root/fake` (any depth, case-insensitive class folders):
    relative path → its frame files in frame order. A folder with frames is a video (not searched further);
    dot-named folders (temp folders of interrupted runs) are skipped."""
    root = Path(root)
    out: dict[str, list[str]] = {}
    for top in class_dirs(root).values():
        for d, dirs, _ in os.walk(top, followlinks=False):
            dirs[:] = sorted(x for x in dirs if not x.startswith("."))
            names = frame_files(d) if Path(d) != top else []
            if names:
                out[Path(d).relative_to(root).as_posix()] = names
                dirs[:] = []
    return out


def _label_of(filename: str) -> int:
    return CLASSES.index(filename.split("/", 1)[0].lower())


def tree_rows(filenames: list[str]) -> pd.DataFrame:
    """Rows `filename,label,group,method` for frame folders without a samples.csv: label from the class
    folder, method = a fake's first subfolder (`fake/Deepfakes/…` → Deepfakes) else real/fake, groups
    joined over what the names imply (layout_scan.name_links, layouts.assign_groups). The face folders of
    one video (`fake/v/face_0`, `fake/v/face_1`, utils.split_face) share the video's group and method."""
    import pandas as pd


    videos = list(dict.fromkeys(split_face(f)[0] for f in filenames))
    samples = []
    for f in videos:
        label = CLASSES[_label_of(f)]
        parts = f.split("/")
        strong, weak = name_links(parts[-1], label)
        method = parts[1] if label == "fake" and len(parts) > 2 else label
        samples.append(Sample(f, f, label, "/".join(parts[1:]), method=method, strong=strong, weak=weak))
    problems: list[str] = []
    assign_groups(samples, problems)
    for p in problems:
        warn(p)
    of = {s.path: s for s in samples}
    rows = [of[split_face(f)[0]] for f in filenames]
    return pd.DataFrame({"filename": filenames, "label": [_label_of(f) for f in filenames],
                         "group": [s.group for s in rows], "method": [s.method for s in rows]})


def face_rows(samples: pd.DataFrame, found) -> tuple[pd.DataFrame, list[str]]:
    """samples.csv rows (one per video) → one row per sample folder found: a video written with several
    faces (`<video>/face_<k>/`) gets one row per face, each a copy of the video's row (label, group,
    method, original, official split), so its faces never land in different splits. Returns (rows,
    found folders that belong to no row)."""
    names = set(samples["filename"])
    folders: dict[str, list[str]] = {}
    extra = []
    for f in found:
        video = f if f in names else split_face(f)[0]
        if video in names:
            folders.setdefault(video, []).append(f)
        else:
            extra.append(f)
    keep = samples[samples["filename"].isin(list(folders))]
    rows = keep.loc[keep.index.repeat([len(folders[v]) for v in keep["filename"]])].copy()
    rows["filename"] = [f for v in keep["filename"] for f in folders[v]]
    return rows.reset_index(drop=True), sorted(extra)


def read_samples(root) -> pd.DataFrame | None:
    """`root/samples.csv` (written by `dfd preprocess`) as text columns, or None when there is none.
    Raises LabelsError naming the file when it lacks the filename/label columns."""
    import pandas as pd

    path = Path(root) / "samples.csv"
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise LabelsError(path, [(None, f"not readable ({e}); delete it and rerun `dfd preprocess` (finished "
                                        "videos are kept) to write it again")]) from None
    if not {"filename", "label"} <= set(df.columns):
        raise LabelsError(path, [(1, "needs the columns filename,label (written by `dfd preprocess`); rerun "
                                     "it, or delete the file to label the folders by their names")])
    return df


def dataset_groups(root) -> dict[str, str]:
    """filename → group of a processed root's samples.csv ({} without one), for checking a user's CSV."""
    df = read_samples(root)
    if df is None or "group" not in df.columns:
        return {}
    return dict(zip(df["filename"], df["group"], strict=True))


def from_processed(processed_root, out_csv=None, split=(0.7, 0.15, 0.15), seed: int = 0,
                   unchanged: str = "drop") -> pd.DataFrame:
    """Labels for the processed output of any layout (`dfd preprocess` of FF++, Celeb-DF, DFDC, a manifest or
    real/fake folders), or any real/ + fake/ tree of frame folders.

    Takes the processed root, an optional CSV to write (atomically), the split ratios (None: no split
    column) and the seed. Reads `samples.csv` when there is one (groups, methods, originals, official
    split of the source layout) and `layout.json` (the `source` column); otherwise labels by folder and
    groups by name (tree_rows). A video written with several faces (`<video>/face_<k>/`) gives one row
    per face, all with the video's group, method and original (face_rows); the faces of a fake whose
    original is in the tree are compared with it (originals.relabel_fake_faces): only the changed ones stay
    fake, the others are dropped (`unchanged="drop"`), labelled real ("real") or kept as fake ("keep"). Returns
    `filename,label,split,group,original,source,method` rows sorted by filename; samples without frames (no face found) are left out with a warning. Raises FileNotFoundError,
    ValueError when no folder holds frames, LabelsError for an unreadable samples.csv."""
    import pandas as pd

    root = check_processed_root(processed_root)
    found = frame_folders(root)
    if not found:
        raise ValueError(f"no folder under {root}/real or {root}/fake holds frames (frame_<i>.jpg, or numbered "
                         ".jpg/.png): run `dfd preprocess SRC {root}` first, or check the folder")
    samples = read_samples(root)
    if samples is None:
        df = tree_rows(list(found))
    else:
        df, extra = face_rows(samples, found)
        have = set(df["filename"]) | {split_face(f)[0] for f in df["filename"]}
        missing = [f for f in samples["filename"] if f not in have]
        if missing:
            warn(f"{root / 'samples.csv'}: {len(missing)} sample(s) have no frames under {root} (no face found, "
                  f"not processed yet, or another shard's) and are left out: {listed(missing, _SHOWN)}")
        df["label"] = [_label_of(f) for f in df["filename"]]
        df = df.rename(columns={"split": "official"}).drop(columns=["video"], errors="ignore")
        if extra:
            warn(f"{len(extra)} frame folder(s) under {root} are not in its samples.csv (from another run?); "
                  f"labelled by their folder, each its own group: {listed(extra, _SHOWN)}")
            df = pd.concat([df, tree_rows(extra)], ignore_index=True).fillna("")
        df = _fake_faces(df, root, unchanged)
    df["source"] = _layout_name(root)
    return finish_labels(df, out_csv, split, seed)


def _fake_faces(df: pd.DataFrame, root: Path, unchanged: str) -> pd.DataFrame:

    out = relabel_fake_faces(df, root, unchanged)
    same = [c for c in out.attrs.get("face_changes", []) if not c["changed"]]
    if same:
        what = "left out" if unchanged == "drop" else "labelled real"
        warn(f"{len(same)} face(s) of fake videos equal their original (not swapped) and are {what}: "
              + listed([f"{c['filename']} (diff {c['diff']})" for c in same], _SHOWN))
    return out


def _layout_name(root: Path) -> str:
    try:
        return str(json.loads((root / "layout.json").read_text()).get("layout") or "folders")
    except (OSError, ValueError, AttributeError):
        return "folders"


def check_frame_folder(folder: Path, names: list[str], min_frames: int) -> str:
    """Why a face-frame folder is unusable ('' if it is fine): too few frames, unreadable images, or
    images of different sizes (a clip needs one size). Reads the image headers (PIL), not the pixels."""
    from PIL import Image, UnidentifiedImageError

    if len(names) < min_frames:
        return f"{len(names)} frame(s), fewer than --min-frames {min_frames}"
    bad, sizes = [], set()
    for n in names:
        try:
            with Image.open(folder / n) as im:
                sizes.add(im.size)
                im.verify()
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
            bad.append(n)
    if bad:
        return f"{len(bad)} unreadable image(s): {listed(bad, _SHOWN)}; replace or delete them"
    if len(sizes) > 1:
        return f"images of {len(sizes)} different sizes ({listed([f'{w}x{h}' for w, h in sorted(sizes)], _SHOWN)}); " \
               "resize them to one size"
    return ""


def from_frames_dataset(root, out_csv=None, split=(0.7, 0.15, 0.15), seed: int = 0, min_frames: int = 1
                        ) -> pd.DataFrame:
    """Labels for a face-frame dataset: faces already cropped, one folder of images per video
    (`real/<video>/0001.png`, `fake/<method>/<video>/frame_12.jpg` …; jpg/png, any naming with a frame
    number). No detection is run: training reads these folders as they are (`dataset_path` = root).

    Every folder is checked first (check_frame_folder); unusable ones are left out and named in one
    warning (also in `df.attrs["unusable"]`). Groups come from the names (tree_rows), the split is group-aware.
    Returns the labels frame (written to `out_csv` if given). Raises FileNotFoundError, ValueError when no
    folder is usable (naming the expected tree)."""
    root = check_processed_root(root)
    if int(min_frames) < 1:
        raise ValueError(f"min_frames must be >= 1, got {min_frames}")
    found = frame_folders(root)
    unusable = {f: why for f, names in found.items() if (why := check_frame_folder(root / f, names, int(min_frames)))}
    usable = [f for f in found if f not in unusable]
    if unusable:
        warn(f"{len(unusable)} of {len(found)} face-frame folder(s) under {root} are unusable and left out: "
              + listed([f"{f}: {why}" for f, why in unusable.items()], _SHOWN, "; "))
    if not usable:
        raise ValueError(f"no usable face-frame folder under {root}: expected ROOT/real/<video>/0001.png … and "
                         "ROOT/fake/[<method>/]<video>/0001.png … (jpg or png, a frame number in each name)"
                         + (f"; {len(unusable)} folder(s) were unusable, see the warning" if unusable else ""))
    df = tree_rows(usable)
    df["source"] = "frames"
    df = finish_labels(df, out_csv, split, seed)
    df.attrs["unusable"] = unusable
    return df


def is_frames_dataset(root) -> bool:
    """True for a real/fake tree of frame images that `dfd preprocess` did not write (no samples.csv, and
    the first video folder's images are not named frame_<i>.jpg)."""
    root = Path(root)
    if (root / "samples.csv").is_file():
        return False
    found = frame_folders(root) if root.is_dir() else {}
    first = next(iter(found.values()), [])
    return bool(first) and not all(DFDLIB_FRAME_RE.fullmatch(n) for n in first)


def make_labels(processed_root, out_csv=None, split=(0.7, 0.15, 0.15), seed: int = 0,
                real_glob: str = DEFAULT_GLOBS[0], fake_glob: str = DEFAULT_GLOBS[1],
                frames_dataset: bool | None = None, min_frames: int = 1, unchanged: str = "drop") -> pd.DataFrame:
    """The labels CSV for any processed tree, as `dfd labels PROCESSED` writes it: custom globs →
    `from_folders`; a face-frame dataset (`frames_dataset=True`, or detected when None) →
    `from_frames_dataset`; otherwise `from_processed` (any layout, groups and methods, official splits,
    `unchanged`: what becomes of the faces of a fake that equal its original)."""
    if (real_glob, fake_glob) != DEFAULT_GLOBS:
        return from_folders(processed_root, out_csv, real_glob, fake_glob, split, seed)
    if frames_dataset or (frames_dataset is None and is_frames_dataset(processed_root)):
        return from_frames_dataset(processed_root, out_csv, split, seed, min_frames)
    return from_processed(processed_root, out_csv, split, seed, unchanged)
