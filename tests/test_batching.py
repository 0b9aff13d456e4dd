"""Face detection batched over videos (issue 22): threads' detect() calls merged into one batch, each caller
getting exactly its own frames' detections; the GPU path of preprocess_dataset (threads sharing one detector),
run here on the CPU with the real torch MTCNN and compared with a plain run."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdlib.preprocess import run as run_mod
from dfdlib.preprocess.batching import BatchingDetector, shared_batching
from dfdlib.preprocess.config import PreprocessConfig
from dfdlib.preprocess.detector import default_detector
from dfdlib.preprocess.faces import extract_faces
from dfdlib.preprocess.run import preprocess_dataset


class Scripted:
    """A detector whose answer depends only on each frame and the side: (frame id, side, count) rows."""

    backend, device = "scripted", "cpu"

    def __init__(self, delay: float = 0.0):
        self.calls, self.delay = [], delay

    def detect(self, frames, side):
        self.calls.append(len(frames))
        time.sleep(self.delay)
        return [np.full((int(f[0, 0, 1]) % 3, 5), [float(f[0, 0, 0]), side, 0, 0, 1.0]) for f in frames]


def frame(i: int) -> np.ndarray:
    f = np.zeros((4, 6, 3), np.uint8)
    f[0, 0] = (i % 256, i % 7, 0)
    return f


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0, 240, 480])), min_size=1, max_size=10))
def test_every_caller_gets_its_own_frames_detections(requests):
    inner = Scripted(delay=0.002)
    det = BatchingDetector(inner, max_frames=12, wait=0.01)
    got, alone = {}, {}
    start = threading.Barrier(len(requests))

    def call(k, n, side):
        frames = [frame(10 * k + j) for j in range(n)]
        alone[k] = Scripted().detect(frames, side)
        start.wait()
        got[k] = det.detect(frames, side)

    threads = [threading.Thread(target=call, args=(k, n, side)) for k, (n, side) in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    det.close()
    for k in range(len(requests)):
        assert len(got[k]) == len(alone[k]) and all(np.array_equal(a, b) for a, b in zip(got[k], alone[k], strict=True))
    served = sum(1 for n, _ in requests if n)
    assert det.requests == served and det.calls <= served and sum(inner.calls) == sum(n for n, _ in requests)
    assert max(inner.calls, default=0) <= max(12, max(n for n, _ in requests))


def test_requests_are_merged_and_errors_reach_their_callers():
    class Failing(Scripted):
        def detect(self, frames, side):
            if side == 1:
                raise ValueError("boom")
            return super().detect(frames, side)

    inner = Failing(delay=0.05)
    with BatchingDetector(inner, wait=0.05) as det:
        errors, results = [], []

        def call(side):
            try:
                results.append(det.detect([frame(side)], side))
            except ValueError as e:
                errors.append(str(e))

        threads = [threading.Thread(target=call, args=(s,)) for s in (480, 480, 480, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == ["boom"] and len(results) == 3
        assert det.calls < 3  # the three 480 px requests shared a call
        assert len(det.detect([frame(1)], 480)) == 1  # the server survived the error
    with pytest.raises(RuntimeError, match="closed"):
        det.detect([frame(1)], 480)


def test_threads_sharing_the_torch_mtcnn_find_the_same_faces(sample_dir):
    cfg = PreprocessConfig(frames=8, size=64)
    videos = sorted(sample_dir.glob("*/*.mp4"))[:4]
    alone = [extract_faces(v, cfg) for v in videos]
    with shared_batching(cfg.detector) as det:
        assert default_detector(cfg.detector) is det
        got: dict = {}
        threads = [threading.Thread(target=lambda i, v: got.__setitem__(i, extract_faces(v, cfg)), args=(i, v))
                   for i, v in enumerate(videos)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert default_detector(cfg.detector) is det.inner
    for a, b in zip(alone, (got[i] for i in range(len(videos))), strict=True):
        assert a.status == b.status == "ok" and a.indices == b.indices
        np.testing.assert_allclose(np.array(a.boxes, float), np.array(b.boxes, float), atol=1e-3)


def test_the_gpu_path_of_preprocess_dataset_matches_a_plain_run(sample_dir, tmp_path, monkeypatch):
    cfg = PreprocessConfig(frames=8, size=64)
    plain = preprocess_dataset(sample_dir, tmp_path / "plain", cfg, progress=False)
    used = []
    monkeypatch.setattr(run_mod, "detects_on_gpu", lambda c: True)  # the CUDA path, run on the CPU
    real = run_mod.run_threads
    monkeypatch.setattr(run_mod, "run_threads", lambda *a, **k: used.append(a[2]) or real(*a, **k))
    threaded = preprocess_dataset(sample_dir, tmp_path / "threads", cfg, workers=3, progress=False)
    assert used == [3]
    cols = ["video", "status", "frames", "faces"]
    assert plain[cols].equals(threaded[cols]) and (plain["status"] == "ok").all()
    for f in (tmp_path / "plain").rglob("faces.json"):
        a = json.loads(f.read_text())
        b = json.loads((tmp_path / "threads" / f.relative_to(tmp_path / "plain")).read_text())
        assert a["indices"] == b["indices"]
        np.testing.assert_allclose(np.array(a["boxes"], float), np.array(b["boxes"], float), atol=0.05)
