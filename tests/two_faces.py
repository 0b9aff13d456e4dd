"""A generated two-person video and its fake with one face swapped (shared by test_predict, test_originals).

The original shows the matplotlib photo's person on the left and the carphone man on the right; the fake
is the same video with the man's face replaced by the photo's face (blended in an ellipse), as a face-swap
dataset (DFDC) makes a fake of a two-person video: the other person keeps the original's pixels.
"""
from __future__ import annotations

import cv2
import numpy as np
from test_tracks import carphone, paste
from test_video import PHOTO_FACE_BOX, _photo

W, H = 480, 240
MAN_AT = (260, 40)                      # top-left of the 211x173 carphone frame in the video
MAN_FACE_BOX = (76.0, 41.0, 132.0, 113.0)  # the man's face in that frame (MTCNN)


def right_box() -> tuple[float, float, float, float]:
    x, y = MAN_AT
    b = MAN_FACE_BOX
    return (x + b[0], y + b[1], x + b[2], y + b[3])


def frame(swap: bool, t: int = 0) -> np.ndarray:
    """One BGR frame; `swap`: the man's face replaced by the photo's. `t` shifts the background a little."""
    f = np.full((H, W, 3), 90 + (t % 4), np.uint8)
    paste(f[:, :320], 0, 20, 200)
    man = cv2.resize(carphone(1)[0], (211, 173))
    x, y = MAN_AT
    f[y:y + 173, x:x + 211] = man
    if swap:
        x1, y1, x2, y2 = (int(round(v)) for v in right_box())
        px1, py1, px2, py2 = (int(v) for v in PHOTO_FACE_BOX)
        face = cv2.resize(_photo()[py1:py2, px1:px2], (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)
        mask = np.zeros((y2 - y1, x2 - x1), np.float32)
        cv2.ellipse(mask, ((x2 - x1) // 2, (y2 - y1) // 2), ((x2 - x1) // 2 - 2, (y2 - y1) // 2 - 2), 0, 0, 360, 1, -1)
        mask = cv2.GaussianBlur(mask, (7, 7), 0)[..., None]
        region = f[y1:y2, x1:x2].astype(np.float32)
        f[y1:y2, x1:x2] = (mask * face + (1 - mask) * region).astype(np.uint8)
    return f


def write_video(path, swap: bool, n: int = 16):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (W, H))
    for t in range(n):
        writer.write(frame(swap, t))
    writer.release()
    return path


def write_pair(folder, n: int = 16):
    """(original, fake) video paths in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_video(folder / "two_original.mp4", False, n), write_video(folder / "two_fake.mp4", True, n)
