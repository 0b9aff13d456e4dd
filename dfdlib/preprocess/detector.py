"""The face detector object: one MTCNN on either runtime, built once per process and reused.

MTCNN is Zhang et al., "Joint Face Detection and Alignment using Multitask Cascaded Convolutional
Networks" (2016). Two runtimes give the same boxes: "tf", the `mtcnn` package on TensorFlow (CPU), and
"torch", dfdlib.preprocess.mtcnn_torch (the package's networks and weights on PyTorch, CPU or CUDA, batched over
frames). TensorFlow is imported only when the "tf" backend is built. faces.py crops what it finds.
"""
from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from dfdlib.preprocess.config import DETECTOR_BACKENDS

# Intra-op threads of the torch MTCNN on the CPU unless told otherwise: its many small ops (pyramid levels,
# suppression, 24/48 px patches) gain little from a second thread, and when other processes share the
# cores each threaded op waits for a descheduled thread (2 threads ran 2-5x slower than 1 on a busy
# 2-core machine; benchmarks/detectors.py). Torch's own setting is restored after each call.
TORCH_CPU_THREADS = 1


def import_tensorflow():
    """`import tensorflow` (quiet), triton first: triton (torch's compiler, imported by torchvision) segfaults
    when it is loaded after TensorFlow (tensorflow-cpu 2.21 + torch 2.14), so a process that detects with the
    TF backend and then trains, or a test that imports TensorFlow, must load it before."""
    import importlib.util

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401
    import tensorflow as tf

    return tf


def hide_gpus_from_tensorflow(tf, keep: bool = False) -> list:
    """Keeps TensorFlow off the GPUs (MTCNN runs on the CPU), so it cannot reserve GPU memory beside torch.

    TensorFlow maps nearly all of a GPU's memory when it first touches it; in `predict` or a notebook that
    then trains, torch would run out. With `keep=True` (a detector asked for "GPU:0") the GPUs stay visible
    with memory growth on instead. Only effective before TensorFlow initialises its devices; returns the
    GPUs TensorFlow can still see.
    """
    try:
        gpus = tf.config.list_physical_devices("GPU")
        if gpus and not keep:
            tf.config.set_visible_devices([], "GPU")
        elif gpus:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # devices already initialised in this process: leave them as they are
        pass
    return tf.config.get_visible_devices("GPU")


def detector_backend(backend: str = "auto") -> str:
    """The runtime a detector setting stands for: "torch" (dfdlib.preprocess.mtcnn_torch: the mtcnn package's
    networks and weights on PyTorch, CPU or CUDA) or "tf" (the mtcnn package on TensorFlow, CPU).

    "auto" is torch on every device: on CUDA it uses the GPU, and on the CPU it gives the same boxes as
    TensorFlow, at least as fast, without TensorFlow's import (benchmarks/detectors.py). Raises ValueError
    for another name.
    """
    if backend not in DETECTOR_BACKENDS:
        raise ValueError(f"face detector backend must be one of {', '.join(DETECTOR_BACKENDS)}, not {backend!r}")
    return "torch" if backend == "auto" else backend


class FaceDetector:
    """One MTCNN, built once and reused for many frames and videos, on either runtime (same boxes).

    Takes the device ("auto": CUDA when torch sees a GPU, else the CPU; "cpu", "cuda", "cuda:1", or
    TensorFlow's "CPU:0"/"GPU:0"), frames per MTCNN call, optionally a thread count (TensorFlow: pinned
    before it runs anything in this process; torch on the CPU: intra-op threads while detecting, default
    TORCH_CPU_THREADS) and the backend ("auto", "torch", "tf"; detector_backend). TensorFlow is imported
    only by the "tf" backend.
    """

    def __init__(self, device: str = "auto", batch_size: int = 16, threads: int | None = None,
                 backend: str = "auto"):
        self.backend = detector_backend(backend)
        self.batch_size, self.threads = batch_size, threads
        dev = str(device).lower()
        if self.backend == "torch":
            from dfdlib.preprocess.mtcnn_torch import TorchMTCNN, torch_device

            self.mtcnn = TorchMTCNN(device=torch_device(dev))
            self.device = str(self.mtcnn.device)
            return
        self.device = "GPU:0" if dev.startswith(("gpu", "cuda")) else "CPU:0"
        tf = import_tensorflow()
        from mtcnn import MTCNN

        hide_gpus_from_tensorflow(tf, keep=self.device.startswith("GPU"))
        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:  # TensorFlow already initialised in this process: keep its pools
                pass
        self.mtcnn = MTCNN(device=self.device)

    def detect(self, frames_rgb: list[np.ndarray], max_side: int = 480) -> list[np.ndarray]:
        """Detect faces in RGB frames, `batch_size` frames per MTCNN call.

        Takes RGB uint8 frames and the longer side of the copy detection runs on (0: as given).
        Returns per frame a float array (k, 5): x1, y1, x2, y2 in the given frame's pixels, confidence.
        """
        import cv2

        small, scales = [], []
        for f in frames_rgb:
            h, w = f.shape[:2]
            s = min(1.0, max_side / max(h, w)) if max_side else 1.0
            if s < 1.0:
                f = cv2.resize(f, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            small.append(f)
            scales.append((w / f.shape[1], h / f.shape[0]))
        out: list[np.ndarray] = []
        if not small:
            return out
        # Even chunks (20 frames → 10 + 10, not 16 + 4) of at most ~5 Mpx: bigger batches run slower.
        px = max(f.shape[0] * f.shape[1] for f in small)
        per = max(1, min(self.batch_size, int(5e6 // px)))
        per = math.ceil(len(small) / math.ceil(len(small) / per))
        for start in range(0, len(small), per):
            for j, r in enumerate(self._detect_chunk(small[start:start + per])):
                sx, sy = scales[start + j]
                out.append(r[:, :5] * np.array([sx, sy, sx, sy, 1.0]) if len(r) else np.empty((0, 5)))
        return out

    def _detect_chunk(self, chunk: list[np.ndarray]) -> list[np.ndarray]:
        """Per frame (k, 5) boxes x1, y1, x2, y2, confidence in the chunk's pixels."""
        if self.backend == "torch":
            return self._torch_detect(chunk)
        # float32 halves the memory of mtcnn's normalisation (float64 from uint8). Only a Python list
        # counts as a batch for mtcnn; a 4-D array would be read as one image.
        rows = np.asarray(self.mtcnn.detect_faces([f.astype(np.float32) for f in chunk], box_format="xyxy",
                                                  output_type="numpy"))
        return [rows[rows[:, 0] == j][:, 1:6] if rows.size else np.empty((0, 5)) for j in range(len(chunk))]

    def _torch_detect(self, chunk: list[np.ndarray]) -> list[np.ndarray]:
        if self.mtcnn.device.type != "cpu":
            return self.mtcnn.detect(chunk)
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads or TORCH_CPU_THREADS)
        try:
            return self.mtcnn.detect(chunk)
        finally:
            torch.set_num_threads(before)


_DETECTORS: dict = {}


def default_detector(backend: str = "auto", threads: int | None = None) -> FaceDetector:
    """The process-wide FaceDetector of a backend ("auto", "torch", "tf"; detector_backend), created on first
    use (building MTCNN costs seconds on TensorFlow) and shared by every later call with the same backend."""
    key = (detector_backend(backend), threads)
    if key not in _DETECTORS:
        _DETECTORS[key] = FaceDetector(threads=threads, backend=key[0])
    return _DETECTORS[key]


@contextlib.contextmanager
def detector_in_use(detector, backend: str = "auto", threads: int | None = None):
    """While inside, default_detector(backend, threads) returns `detector` (e.g. a batching.BatchingDetector
    that several threads share); the process-wide one is back afterwards."""
    key = (detector_backend(backend), threads)
    before = _DETECTORS.get(key)
    _DETECTORS[key] = detector
    try:
        yield detector
    finally:
        if before is None:
            _DETECTORS.pop(key, None)
        else:
            _DETECTORS[key] = before
