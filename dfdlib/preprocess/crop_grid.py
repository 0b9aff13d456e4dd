"""Stage 1's look at the result: a grid of face crops, one row per sample folder, for the preprocessing
notebook. Sample folders are found at any depth (`real/youtube/c23/000/`, FaceForensics++ and Celeb-DF trees
keep their folders) and a video with several people is one row per `face_<k>/` folder. A grid with nothing to
show says why in the figure, instead of empty rows.
"""
from __future__ import annotations

import os
from pathlib import Path

from dfdlib.datasets.scan import CLASSES
from dfdlib.utils import DFDLIB_FRAME_RE, frame_files


def sample_folders(root: str | os.PathLike, limit: int | None = None) -> list[Path]:
    """The first `limit` folders under `root` (any depth, sorted, hidden temp folders skipped) that hold
    frame_<i>.jpg crops: a video's folder, or each of its face_<k>/ folders."""
    found: list[Path] = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if any(DFDLIB_FRAME_RE.fullmatch(f) for f in files):
            found.append(Path(here))
            if limit is not None and len(found) >= limit:
                break
    return found


def _why_empty(processed: Path, label: str) -> str:
    folder = processed / label
    if not processed.is_dir():
        return f"{processed} does not exist: run the preprocessing cell above first"
    if not folder.is_dir():
        return f"no {label}/ folder in {processed}: no {label} video gave face crops"
    return (f"no folder under {folder} holds frame_<i>.jpg: every {label} video ended without crops "
            "(no_face, too_short, unreadable): see the report above")


def crop_grid(processed: str | os.PathLike, per_class: int = 4, columns: int = 8):
    """A matplotlib Figure: `per_class` sample folders of each class, one row each, `columns` crops spread over
    the clip. Takes the processed root; returns the Figure (its text says why when a class has nothing)."""
    from matplotlib.figure import Figure

    processed = Path(processed)
    rows, missing = [], []
    for label in CLASSES:
        found = sample_folders(processed / label, per_class) if (processed / label).is_dir() else []
        rows += found
        if not found:
            missing.append(_why_empty(processed, label))
    if not rows:
        fig = Figure(figsize=(8, 1.2), layout="constrained")
        fig.text(0.01, 0.5, "No face crops to show:\n" + "\n".join(missing), va="center", fontsize=9, wrap=True)
        return fig
    fig = Figure(figsize=(1.4 * columns, 1.5 * len(rows) + 0.3 * len(missing)), layout="constrained")
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for row, folder in zip(axes, rows, strict=True):
        names = frame_files(folder)
        picks = [names[i * len(names) // columns] for i in range(min(columns, len(names)))]
        for ax, name in zip(row, picks, strict=False):
            from matplotlib.image import imread

            ax.imshow(imread(folder / name))
        for ax in row:
            ax.axis("off")
        row[0].set_title(folder.relative_to(processed).as_posix(), loc="left", fontsize=8)
    if missing:
        fig.suptitle("\n".join(missing), fontsize=8, x=0.01, ha="left")
    return fig
