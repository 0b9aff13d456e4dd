"""The preprocessing notebook's crop grid (issue 25.11): sample folders at any depth, face_<k> folders, and a
figure that says why when there is nothing to show."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

import dfdlib
from dfdlib.preprocess.crop_grid import crop_grid, sample_folders


def _crops(folder: Path, n: int = 4) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"frame_{i}.jpg"), np.full((16, 16, 3), 40 * i, np.uint8))


def _shown(fig) -> dict[str, int]:
    """Row title → number of crops drawn in that row."""
    rows, current = {}, None
    for ax in fig.axes:
        if ax.get_title(loc="left"):
            current = ax.get_title(loc="left")
            rows[current] = 0
        rows[current] += len(ax.get_images())
    return rows


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts) + (fig._suptitle.get_text() if fig._suptitle else "")


def test_the_grid_finds_video_folders_at_any_depth_and_face_folders(tmp_path):
    """A FaceForensics++ tree as `dfd preprocess` writes it: real/youtube/c23/<video>/ and, with max_faces > 1,
    fake/Deepfakes/c23/<video>/face_<k>/. The old grid looked for frame_<i>.jpg in real/youtube itself."""
    p = tmp_path / "processed"
    _crops(p / "real/youtube/c23/000")
    _crops(p / "real/youtube/c23/001")
    _crops(p / "fake/Deepfakes/c23/000_003/face_0")
    _crops(p / "fake/Deepfakes/c23/000_003/face_1")
    _crops(p / "fake/.x.tmp-12/frame_dir")  # an interrupted write: hidden, not shown
    assert [f.relative_to(p).as_posix() for f in sample_folders(p / "fake")] == [
        "fake/Deepfakes/c23/000_003/face_0", "fake/Deepfakes/c23/000_003/face_1"]
    fig = crop_grid(p, per_class=2, columns=3)
    assert _shown(fig) == {"real/youtube/c23/000": 3, "real/youtube/c23/001": 3,
                           "fake/Deepfakes/c23/000_003/face_0": 3, "fake/Deepfakes/c23/000_003/face_1": 3}
    assert _texts(fig).strip() == ""


def test_a_grid_with_nothing_to_show_says_why(tmp_path):
    p = tmp_path / "processed"
    (p / "real/youtube").mkdir(parents=True)  # every real video ended no_face
    fig = crop_grid(p)
    text = _texts(fig)
    assert not fig.axes or not any(ax.get_images() for ax in fig.axes)
    assert "No face crops to show" in text and "real video ended without crops" in text
    assert "no fake/ folder" in text
    assert "does not exist" in _texts(crop_grid(tmp_path / "nowhere"))
    _crops(p / "fake/v0")
    fig = crop_grid(p)  # one class has crops: shown, and the other's reason is in the title
    assert _shown(fig) == {"fake/v0": 4} and "real video ended without crops" in _texts(fig)


def test_the_preprocessing_notebook_draws_the_grid_with_the_library():
    nb = json.loads((Path(dfdlib.__file__).parents[1] / "notebooks" / "preprocessing.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "dfdlib.crop_grid(processed" in code and 'f"frame_{' not in code
