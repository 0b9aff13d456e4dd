"""MTCNN in PyTorch: the `mtcnn` package's three networks, weights and pipeline, batched over frames.

MTCNN is Zhang et al., "Joint Face Detection and Alignment using Multitask Cascaded Convolutional Networks"
(2016). The `mtcnn` package (1.0.0, MIT, TensorFlow) is the reference: its PNet/RNet/ONet weights are read
at run time from the installed wheel's assets (never imported, so TensorFlow is not loaded), and every step
of its pipeline is reproduced so that the boxes agree with it: the image pyramid (scale 12/min_face_size,
factor 0.709, TensorFlow's area resize with truncated sizes), PNet proposals (stride 2, 12 px cells),
its suppression rule (a box is dropped when ANY higher-scored box of its image overlaps it above the
threshold, kept or not: not greedy NMS, so torchvision.ops.nms would drop fewer boxes), squaring,
TensorFlow's crop_and_resize (bilinear, (H-1)/H sampling, zeros outside) for the 24/48 px RNet/ONet
patches, box regression on (w+1, h+1), thresholds 0.6/0.7/0.8 and the final clip to the frame.
All frames of one size are one batch on one device (CPU or CUDA); landmarks are not computed.
"""
from __future__ import annotations

import contextlib
import importlib.util
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

THRESHOLDS = (0.6, 0.7, 0.8)  # PNet, RNet, ONet face probability (the package's defaults)
NMS = ((0.5, "union"), (0.7, "union"), (0.7, "union"), (0.7, "min"))  # PNet per scale, PNet all, RNet, ONet


def weights_dir() -> Path:
    """The installed `mtcnn` package's weight folder, found without importing it (its __init__ loads
    TensorFlow). Raises ModuleNotFoundError when the package is missing."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the torch MTCNN reads its weights from the `mtcnn` package: pip install mtcnn")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"


def load_keras_weights(name: str) -> list[np.ndarray]:
    """The Keras weight list (set_weights order) of `name` in pnet/rnet/onet, from the mtcnn wheel (joblib+lz4)."""
    import joblib

    return joblib.load(weights_dir() / f"{name}.lz4")


class _Net(nn.Module):
    """Conv/PReLU/max-pool trunk and dense heads, loaded from a Keras weight list in layer order."""

    def load_keras(self, weights: list[np.ndarray]) -> _Net:
        it = iter(weights)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):  # Keras kernel (kh, kw, in, out)
                    m.weight.copy_(torch.from_numpy(next(it)).permute(3, 2, 0, 1))
                    m.bias.copy_(torch.from_numpy(next(it)))
                elif isinstance(m, nn.Linear):  # Keras kernel (in, out)
                    m.weight.copy_(torch.from_numpy(next(it)).T)
                    m.bias.copy_(torch.from_numpy(next(it)))
                elif isinstance(m, nn.PReLU):  # alpha (1, 1, C) shared over H, W; or (C,)
                    m.weight.copy_(torch.from_numpy(next(it)).reshape(-1))
        if next(it, None) is not None:
            raise ValueError(f"{type(self).__name__}: more Keras weights than layers")
        return self.eval()


def _block(cin: int, cout: int, k: int, pool: tuple | None) -> list[nn.Module]:
    # TensorFlow's "same" max pooling pads at the end only (pad total <= 1 here): ceil_mode is the same.
    layers = [nn.Conv2d(cin, cout, k), nn.PReLU(cout)]
    if pool:
        layers.append(nn.MaxPool2d(pool[0], pool[1], ceil_mode=pool[2] == "same"))
    return layers


def _flatten_keras(x: torch.Tensor) -> torch.Tensor:
    # Keras flattened (N, H, W, C) after Permute((2, 1, 3)), i.e. in (W, H, C) order.
    return x.permute(0, 3, 2, 1).flatten(1)


class PNet(_Net):
    """Proposal network: any size → box regression (N, 4, h, w) and face probability (N, h, w)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*_block(3, 10, 3, (2, 2, "same")), *_block(10, 16, 3, None),
                                  *_block(16, 32, 3, None))
        self.reg, self.cls = nn.Conv2d(32, 4, 1), nn.Conv2d(32, 2, 1)

    def forward(self, x):
        x = self.body(x)
        return self.reg(x), torch.softmax(self.cls(x), dim=1)[:, 1]


class RNet(_Net):
    """Refinement network: 24x24 patches → box regression (N, 4), face probability (N,)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*_block(3, 28, 3, (3, 2, "same")), *_block(28, 48, 3, (3, 2, "valid")),
                                  *_block(48, 64, 2, None))
        self.fc = nn.Sequential(nn.Linear(576, 128), nn.PReLU(128))
        self.reg, self.cls = nn.Linear(128, 4), nn.Linear(128, 2)

    def forward(self, x):
        x = self.fc(_flatten_keras(self.body(x)))
        return self.reg(x), torch.softmax(self.cls(x), dim=1)[:, 1]


class ONet(_Net):
    """Output network: 48x48 patches → box regression (N, 4), face probability (N,) (landmarks skipped)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*_block(3, 32, 3, (3, 2, "same")), *_block(32, 64, 3, (3, 2, "valid")),
                                  *_block(64, 64, 3, (2, 2, "same")), *_block(64, 128, 2, None))
        self.fc = nn.Sequential(nn.Linear(1152, 256), nn.PReLU(256))
        self.reg, self.landmarks, self.cls = nn.Linear(256, 4), nn.Linear(256, 10), nn.Linear(256, 2)

    def forward(self, x):
        x = self.fc(_flatten_keras(self.body(x)))
        return self.reg(x), torch.softmax(self.cls(x), dim=1)[:, 1]


# ------------------------------------------------------------------ TensorFlow's image ops, in torch
@lru_cache(maxsize=256)
def _area_matrix(n_in: int, n_out: int, device: str) -> torch.Tensor:
    """TensorFlow's ResizeArea along one axis (align_corners=False) as a sparse (n_out, n_in) CSR matrix:
    the overlap weights computed in float32 as its kernel does, source indices clamped as its Bound() does
    (not yet divided by the scale, as TensorFlow multiplies once at the end)."""
    s = np.float32(n_in) / np.float32(n_out)
    lo = np.arange(n_out, dtype=np.float32) * s
    hi = np.arange(1, n_out + 1, dtype=np.float32) * s
    start, end = np.floor(lo).astype(np.int64), np.ceil(hi).astype(np.int64)
    idx = start[:, None] + np.arange(int((end - start).max()))[None]
    i = idx.astype(np.float32)
    w = np.where(i < lo[:, None], np.where(i + 1 > hi[:, None], s, i + 1 - lo[:, None]),
                 np.where(i + 1 > hi[:, None], hi[:, None] - i, np.float32(1))).astype(np.float32)
    w[idx >= end[:, None]] = 0
    dense = np.zeros((n_out, n_in), np.float32)
    np.add.at(dense, (np.repeat(np.arange(n_out), idx.shape[1]), np.clip(idx, 0, n_in - 1).ravel()), w.ravel())
    with warnings.catch_warnings():  # "sparse CSR support is in beta": torch.sparse.mm of CSR x dense is stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(dense).to(device).to_sparse_csr()


def area_resize(a: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """tf.image.resize(..., method="area") (align_corners=False) of images laid out (W, H, B), B = batch x
    channels: returns (out_h, out_w, B) float32. One sparse matrix product per axis (x first, then y, as
    TensorFlow sums): a few non-zeros per row, so it costs about two passes over the image."""
    w, h, b = a.shape
    scale = np.float32(1.0 / float(np.float32(h) / np.float32(out_h) * (np.float32(w) / np.float32(out_w))))
    a = torch.sparse.mm(_area_matrix(w, out_w, str(a.device)), a.reshape(w, h * b))
    a = a.view(out_w, h, b).transpose(0, 1).reshape(h, out_w * b)
    return (torch.sparse.mm(_area_matrix(h, out_h, str(a.device)), a) * scale).view(out_h, out_w, b)


def crop_and_resize(images_nhwc: torch.Tensor, boxes: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """tf.image.crop_and_resize (bilinear, extrapolation 0) of pixel boxes x1, y1, x2, y2 (float64), which
    mtcnn normalises by the image's H and W (so TF samples at (H-1)/H of each coordinate).
    Returns (N, C, size, size) float32."""
    n, (h, w) = len(boxes), images_nhwc.shape[1:3]
    if n == 0:
        return images_nhwc.new_zeros((0, images_nhwc.shape[3], size, size))
    x1, y1 = (boxes[:, 0] / w).float(), (boxes[:, 1] / h).float()
    x2, y2 = (boxes[:, 2] / w).float(), (boxes[:, 3] / h).float()
    t = torch.arange(size, device=boxes.device, dtype=torch.float32)
    in_y = y1[:, None] * (h - 1) + t * ((y2 - y1) * (h - 1) / (size - 1))[:, None]  # (N, S)
    in_x = x1[:, None] * (w - 1) + t * ((x2 - x1) * (w - 1) / (size - 1))[:, None]
    inside = ((in_y >= 0) & (in_y <= h - 1))[:, :, None] & ((in_x >= 0) & (in_x <= w - 1))[:, None, :]
    top, left = in_y.floor(), in_x.floor()
    ly, lx = (in_y - top)[:, :, None, None], (in_x - left)[:, None, :, None]
    t0, t1 = top.long().clamp(0, h - 1), in_y.ceil().long().clamp(0, h - 1)
    l0, l1 = left.long().clamp(0, w - 1), in_x.ceil().long().clamp(0, w - 1)
    # One gather of the four corners from the flat (B*H*W, C) pixels: rows of C contiguous values.
    base = (index * (h * w))[:, None, None]
    corners = torch.stack([base + ys[:, :, None] * w + xs[:, None, :] for ys in (t0, t1) for xs in (l0, l1)])
    tl, tr, bl, br = images_nhwc.reshape(-1, images_nhwc.shape[3]).index_select(0, corners.view(-1)).view(
        4, n, size, size, -1)
    top_row = tl + (tr - tl) * lx
    bottom_row = bl + (br - bl) * lx
    out = (top_row + (bottom_row - top_row) * ly) * inside[..., None]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------ the package's box arithmetic
def sort_desc(scores: torch.Tensor) -> torch.Tensor:
    """Indices by descending score, ties in reverse order, as mtcnn's np.argsort(...)[::-1]."""
    return torch.argsort(scores, stable=True).flip(0)


def suppress(boxes: torch.Tensor, image: torch.Tensor, threshold: float, method: str = "union",
             chunk: int = 2048) -> torch.Tensor:
    """mtcnn's NMS: keep box j unless a box i < j (rows in score order) of the same image has
    overlap > threshold, suppressed or not. Overlap: intersection over union, or over the smaller area
    ("min"); areas (x2-x1)(y2-y1), no +1. Returns the boolean keep mask."""
    keep = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    order = torch.argsort(image, stable=True)  # each image's rows together, still in score order
    counts = torch.bincount(image[order]).tolist()
    start = 0
    for count in counts:
        rows = order[start:start + count]
        start += count
        b = boxes[rows, :4]
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        for s in range(0, count, chunk):  # columns s:e against the rows before them
            e = min(count, s + chunk)
            p, q = b[:e, None], b[None, s:e]
            iw = (torch.minimum(p[..., 2], q[..., 2]) - torch.maximum(p[..., 0], q[..., 0])).clamp(min=0)
            ih = (torch.minimum(p[..., 3], q[..., 3]) - torch.maximum(p[..., 1], q[..., 1])).clamp(min=0)
            inter = iw * ih
            denom = (area[:e, None] + area[None, s:e] - inter if method == "union"
                     else torch.minimum(area[:e, None], area[None, s:e]))
            hit = (inter / denom > threshold).triu_(diagonal=1 - s)  # row i, column s + c: only i < s + c
            keep[rows[s:e]] = ~hit.any(0)
    return keep


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes grown to squares of their longer side around the same centre (mtcnn's resize_to_square)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1, y1 = boxes[:, 0] + w * 0.5 - side * 0.5, boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], 1)


def regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """mtcnn's adjust_bboxes: offsets times (w + 1, h + 1, w + 1, h + 1) added to the corners."""
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets.double() * torch.stack([w, h, w, h], 1)


def pyramid(height: int, width: int, min_face_size: int = 20, factor: float = 0.709) -> list[tuple]:
    """(scale, height, width) of each PNet level, as mtcnn's build_scale_pyramid + tf.image.resize (sizes
    truncated)."""
    count = round(-((np.log(min(width, height) / 12) / np.log(factor)) + 1))
    scales = (12 / min_face_size) * factor ** np.arange(count)
    return [(float(s), int(height * s), int(width * s)) for s in scales]


class TorchMTCNN:
    """MTCNN (PNet, RNet, ONet) with the `mtcnn` package's weights on a torch device.

    Takes the device ("cpu", "cuda", "cuda:1"), the smallest face (px) the pyramid starts at and the three
    stage thresholds (the package's defaults). `detect` returns the package's boxes on the same frames.
    """

    def __init__(self, device: str | torch.device = "cpu", min_face_size: int = 20,
                 thresholds: tuple = THRESHOLDS, max_patches: int = 4096):
        self.device = torch.device(device)
        self.min_face_size, self.thresholds, self.max_patches = min_face_size, thresholds, max_patches
        # channels_last: oneDNN's convolutions and pooling run several times faster on the CPU in it.
        self.pnet, self.rnet, self.onet = (
            net.load_keras(load_keras_weights(name)).to(self.device, memory_format=torch.channels_last)
            for net, name in ((PNet(), "pnet"), (RNet(), "rnet"), (ONet(), "onet")))

    @contextlib.contextmanager
    def _full_fp32(self):
        """Plain float32 on CUDA (no TF32 in cuDNN convolutions or matmuls), so GPU boxes equal CPU boxes;
        the process's settings are restored afterwards."""
        if self.device.type != "cuda":
            yield
            return
        conv, precision = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = conv
            torch.set_float32_matmul_precision(precision)

    @torch.inference_mode()
    def detect(self, frames) -> list[np.ndarray]:
        """Faces in RGB frames (a list of (H, W, 3) arrays, any dtype with values 0-255; or an (N, H, W, 3)
        array or tensor). Frames of one size run as one batch. Returns per frame a float array (k, 5): x1,
        y1, x2, y2 (pixels of that frame, clipped to it), confidence; highest confidence first."""
        if isinstance(frames, (np.ndarray, torch.Tensor)) and frames.ndim == 4:
            frames = list(frames)
        out: list = [None] * len(frames)
        groups: dict = {}
        for i, f in enumerate(frames):
            groups.setdefault(tuple(f.shape), []).append(i)
        for idx in groups.values():
            batch = torch.stack([torch.as_tensor(np.asarray(frames[i]) if not isinstance(frames[i], torch.Tensor)
                                                 else frames[i]) for i in idx])
            with self._full_fp32():
                found = self._detect_batch(batch)
            for i, r in zip(idx, found, strict=True):
                out[i] = r
        return out

    def _detect_batch(self, batch: torch.Tensor) -> list[np.ndarray]:
        n, h, w = batch.shape[:3]
        x = (batch.to(self.device, torch.float32) - 127.5) / 128  # NHWC, as mtcnn's normalize_images
        boxes, image = self._proposals(x.permute(2, 1, 0, 3).reshape(w, h, -1).contiguous())
        for net, size, thr, (nms, method) in ((self.rnet, 24, self.thresholds[1], NMS[2]),
                                              (self.onet, 48, self.thresholds[2], NMS[3])):
            if len(boxes) == 0:
                break
            boxes, image = self._refine(net, x, boxes, image, size, thr, nms, method, last=size == 48)
        result = [np.empty((0, 5)) for _ in range(n)]
        if len(boxes):
            lim = boxes.new_tensor([w - 1, h - 1, w - 1, h - 1])
            boxes = torch.cat([torch.minimum(boxes[:, :4].clamp(min=0), lim), boxes[:, 4:]], 1).cpu().numpy()
            image = image.cpu().numpy()
            for i in range(n):
                result[i] = boxes[image == i]
        return result

    def _proposals(self, whb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """PNet over the pyramid of (W, H, batch x 3) images: square boxes (M, 5: x1, y1, x2, y2, score;
        float64) and their image."""
        per_scale = []
        w, h = whb.shape[:2]
        for scale, sh, sw in pyramid(h, w, self.min_face_size):
            level = area_resize(whb, sh, sw).view(sh, sw, -1, 3).permute(2, 3, 0, 1)
            reg, prob = self.pnet(level.contiguous(memory_format=torch.channels_last))
            b, yy, xx = torch.nonzero(prob > self.thresholds[0], as_tuple=True)
            if len(b) == 0:
                continue
            # mtcnn's cell at (x, y): corners (2x+1, 2y+1) and (2x+12, 2y+12); regression scaled by 12 - 1
            r = reg[b, :, yy, xx].double() * 11
            x0, y0 = (xx * 2 + 1).double(), (yy * 2 + 1).double()
            x9, y9 = (xx * 2 + 12).double(), (yy * 2 + 12).double()
            score = prob[b, yy, xx].double()
            boxes = torch.stack([x0 + r[:, 0], y0 + r[:, 1], x9 + r[:, 2], y9 + r[:, 3], score], 1)
            order = sort_desc(score)
            boxes, b = boxes[order], b[order]
            boxes[:, :4] /= scale
            keep = suppress(boxes, b, *NMS[0])
            per_scale.append((boxes[keep], b[keep]))
        if not per_scale:
            return whb.new_zeros((0, 5), dtype=torch.float64), whb.new_zeros((0,), dtype=torch.long)
        boxes, image = torch.cat([p[0] for p in per_scale]), torch.cat([p[1] for p in per_scale])
        order = sort_desc(boxes[:, 4])
        boxes, image = boxes[order], image[order]
        keep = suppress(boxes, image, *NMS[1])
        boxes, image = boxes[keep], image[keep]
        return torch.cat([square(boxes), boxes[:, 4:]], 1), image

    def _refine(self, net, x_nhwc, boxes, image, size, thr, nms, method, last):
        """One RNet/ONet stage: rescore and regress the boxes, keep score > thr, suppress; square unless last."""
        regs, probs = [], []
        for s in range(0, len(boxes), self.max_patches):
            sl = slice(s, s + self.max_patches)
            reg, prob = net(crop_and_resize(x_nhwc, boxes[sl, :4], image[sl], size))
            regs.append(reg)
            probs.append(prob)
        reg, prob = torch.cat(regs), torch.cat(probs).double()
        boxes = torch.cat([regress(boxes[:, :4], reg), prob[:, None]], 1)
        sel = prob > thr
        boxes, image = boxes[sel], image[sel]
        order = sort_desc(boxes[:, 4])
        boxes, image = boxes[order], image[order]
        keep = suppress(boxes, image, nms, method)
        boxes, image = boxes[keep], image[keep]
        if not last:
            boxes = torch.cat([square(boxes), boxes[:, 4:]], 1)
        return boxes, image


def torch_device(name: str = "auto") -> str:
    """A torch device name: "auto" → "cuda" when torch sees a GPU, else "cpu"; TensorFlow's "CPU:0" →
    "cpu" and "GPU:k" → "cuda:k"; others ("cpu", "cuda:1") as given."""
    name = str(name).lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu" if name.startswith("cpu") else name.replace("gpu", "cuda")
