"""Box geometry shared by the stages: overlap and the square crop around a face."""
from __future__ import annotations


def iou(a, b) -> float:
    """Intersection over union of two xyxy boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def square_box(box_xyxy, margin: float) -> tuple[int, int, int, int]:
    """The square crop region (xyxy, integer px, may extend past the frame) around a face box."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy[:4])
    side = max(1.0, max(x2 - x1, y2 - y1) * (1 + 2 * margin))
    left = round((x1 + x2) / 2 - side / 2)
    top = round((y1 + y2) / 2 - side / 2)
    s = max(1, round(side))
    return left, top, left + s, top + s
