"""Face detection batched over videos: the detect() calls of several threads, each working on its own video,
merged into one MTCNN batch.

On a GPU, MTCNN on a batch of many frames costs little more than on one video's few keyframes, so a dataset
is preprocessed with one detector shared by `workers` threads (decoding, tracking and cropping in the threads;
OpenCV releases the GIL while it decodes) instead of one process and one CUDA context per worker. A request
waits at most `wait` seconds for others to join it; frames of one size run as one batch (the torch MTCNN groups
them by shape), and each caller gets exactly the detections of its own frames.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from concurrent.futures import Future

from dfdlib.preprocess.detector import default_detector, detector_in_use

MAX_FRAMES = 256   # frames merged into one call at most
WAIT_S = 0.005     # how long a request waits for others to join it


class BatchingDetector:
    """A FaceDetector for many threads: `detect(frames, side)` blocks until a shared worker thread has run
    the merged requests on `inner` (a FaceDetector). Other attributes are the inner detector's."""

    def __init__(self, inner, max_frames: int = MAX_FRAMES, wait: float = WAIT_S):
        self.inner, self.max_frames, self.wait = inner, int(max_frames), float(wait)
        self.calls = self.requests = 0  # inner detect() calls, requests served (calls < requests: merged)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="dfdlib-batching-detector", daemon=True)
        self._thread.start()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def detect(self, frames_rgb: list, max_side: int = 480) -> list:
        """As FaceDetector.detect: per frame a (k, 5) array of boxes and confidences, in its pixels."""
        frames = list(frames_rgb)
        if not frames:
            return []
        if not self._thread.is_alive():
            raise RuntimeError("this BatchingDetector is closed")
        done: Future = Future()
        self._queue.put((frames, max_side, done))
        return done.result()

    def close(self) -> None:
        """Serve what is queued, then stop the worker thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> BatchingDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve(self) -> None:
        held = None  # a request that did not fit the last batch: it starts the next one
        while True:
            first, held = (held, None) if held is not None else (self._queue.get(), None)
            if first is None:
                return
            batch, n, closing = [first], len(first[0]), False
            deadline = time.monotonic() + self.wait
            while n < self.max_frames:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                if n + len(item[0]) > self.max_frames:
                    held = item
                    break
                batch.append(item)
                n += len(item[0])
            self._run(batch)
            if closing:
                return

    def _run(self, batch: list) -> None:
        by_side: dict = {}
        for item in batch:
            by_side.setdefault(item[1], []).append(item)
        for side, items in by_side.items():
            frames = [f for its, _, _ in items for f in its]
            try:
                found = self.inner.detect(frames, side)
            except BaseException as e:  # noqa: BLE001  every waiting caller gets the error, the server goes on
                for _, _, done in items:
                    done.set_exception(e)
                continue
            self.calls += 1
            self.requests += len(items)
            k = 0
            for its, _, done in items:
                done.set_result(found[k:k + len(its)])
                k += len(its)


@contextlib.contextmanager
def shared_batching(backend: str = "auto", threads: int | None = None, **kw):
    """While inside, default_detector(backend, threads) is one BatchingDetector over the process-wide detector,
    so every thread's extract_faces shares it; the plain detector is back afterwards."""
    with BatchingDetector(default_detector(backend, threads), **kw) as batching, \
            detector_in_use(batching, backend, threads):
        yield batching
