"""CUDA checks, skipped without a GPU (tests/conftest.py skips every `gpu` test when CUDA is not available).

A training step in fp16 (GradScaler) and bf16 with channels_last, an interrupted CUDA run resumed from last.pt
matching the uninterrupted one, and a prediction on CUDA matching the CPU's. `benchmarks/gpu.sh` runs them
with the GPU benchmarks. They use the tiny processed set of tests/test_trainer.py (no video decoding, no
face detection), except the prediction check, which runs the whole predict_video path on a sample video.
"""
from __future__ import annotations

import os
import warnings

# Deterministic cuBLAS needs this before the first cuBLAS call in the process (train() sets it too, too late
# if an earlier test already used CUDA).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import math  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from test_trainer import make_tiny_processed, state_of, tiny_config  # noqa: E402

from dfdlib.training.loop import train  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def tiny64(tmp_path_factory):
    """8 real + 8 fake clips of 8 frames, 64 px: enough for batches of 4 with channels_last convolutions."""
    return make_tiny_processed(tmp_path_factory.mktemp("gpu") / "processed", n_frames=8, size=64)


def cuda_config(data, out, **kw):
    return tiny_config(data, out, **({"device": "cuda", "image_size": 64, "sequence_length": 8,
                                      "channels_last": True} | kw))


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_cuda_training_step_with_amp_and_channels_last(tiny64, tmp_path, capsys, amp):
    from dfdlib.training import setup as ts

    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip(f"{torch.cuda.get_device_name(0)} has no bf16")
    cfg = cuda_config(tiny64, tmp_path / amp, amp=amp, num_epochs=2)
    model = ts.build_model(cfg, torch.device("cuda"), weights=None)
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_cuda and w.is_contiguous(memory_format=torch.channels_last) for w in convs)

    res = train(cfg)
    log = capsys.readouterr().out
    assert "training on cuda" in log and f"amp={amp}" in log
    h = res.history
    assert len(h) == 2 and all(math.isfinite(v) for v in h["train_loss"]) and (h["clips_per_s"] > 0).all()
    assert ((h["data_wait"] >= 0) & (h["data_wait"] <= 1)).all()  # fraction of step time spent waiting for data
    last = state_of(res.last_path)
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    if amp == "fp16":  # the GradScaler ran and its scale is in last.pt for resume
        assert last["scaler"] and last["scaler"]["scale"] > 0
    assert res.best_model_path.is_file()


@pytest.mark.parametrize("amp", ["off", "auto", "fp16"])
def test_resume_on_cuda_gives_the_weights_of_the_uninterrupted_run(tiny64, tmp_path, amp):
    kw = dict(num_epochs=2, deterministic=True, augment=True, cache=True, lr_schedule="none", batch_size=4,
              dropout=0.4, amp=amp)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        full = train(cuda_config(tiny64, tmp_path / "full", **kw))
        train(cuda_config(tiny64, tmp_path / "split", **(kw | {"num_epochs": 1})))  # the "disconnect" after epoch 1
        assert state_of(tmp_path / "split" / "last.pt")["epoch"] == 1
        resumed = train(cuda_config(tiny64, tmp_path / "split", **(kw | {"resume": True})))
    a, b = state_of(full.last_path), state_of(resumed.last_path)
    assert a["epoch"] == b["epoch"] == 2 and a["model"].keys() == b["model"].keys()
    # torch warns (warn_only) when a kernel has no deterministic CUDA version; then allow its rounding noise
    loose = [str(w.message)[:120] for w in caught if "deterministic" in str(w.message)]
    for k in a["model"]:
        if loose:
            torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-3, atol=1e-5, msg=f"{k}; {loose[:2]}")
        else:
            assert torch.equal(a["model"][k], b["model"][k]), k
    assert full.history["epoch"].tolist() == resumed.history["epoch"].tolist() == [1, 2]


def test_prediction_on_cuda_matches_cpu(tiny64, tmp_path, sample_dir):
    from dfdlib import load_model, predict_video
    from dfdlib.preprocess.faces import default_detector

    res = train(cuda_config(tiny64, tmp_path / "run", num_epochs=1))
    cpu, gpu = load_model(res.best_model_path, "cpu"), load_model(res.best_model_path, "cuda")
    assert next(gpu.parameters()).is_cuda and not next(cpu.parameters()).is_cuda

    clip = torch.randn(2, 8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        on_cpu, on_gpu = cpu(clip), gpu(clip.cuda()).float().cpu()
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-2, atol=1e-2)  # TF32 convolutions on Ampere+

    detector = default_detector()
    for video in sorted(sample_dir.glob("*/*.mp4"))[:2]:
        p_cpu = predict_video(cpu, video, detector=detector, device="cpu")
        p_gpu = predict_video(gpu, video, detector=detector, device="cuda")
        assert p_cpu.status == p_gpu.status == "ok", (p_cpu.reason, p_gpu.reason)
        assert abs(p_cpu.prob_fake - p_gpu.prob_fake) < 5e-3, (video.name, p_cpu.prob_fake, p_gpu.prob_fake)
        assert p_cpu.frames_used == p_gpu.frames_used


def test_the_clip_store_feeds_cuda_training_with_augmentation_on_the_device(tiny64, tmp_path):
    """cache='disk' (the default): workers read uint8 clips from one store file, augmentation runs batched on
    the GPU; a second run over the same data decodes nothing."""
    from dfdlib import data

    store = tmp_path / "store"
    kw = dict(cache="disk", cache_dir=str(store), augment=True, augment_on="device", num_workers=2,
              deterministic=True, num_epochs=2)
    first = train(cuda_config(tiny64, tmp_path / "a", **kw))
    stored = sorted((p / "done.u8").read_bytes().count(1) for p in store.iterdir())
    assert first.best_model_path.is_file() and len(stored) >= 2 and stored[-1] >= 8  # train + val/test stores
    decoded = []
    real = data._decode_frames
    data._decode_frames = lambda paths: decoded.append(len(paths)) or real(paths)
    try:
        second = train(cuda_config(tiny64, tmp_path / "b", **(kw | {"num_workers": 0})))
    finally:
        data._decode_frames = real
    assert decoded == []  # every clip came from the stores (counted in this process: num_workers=0)
    assert len(second.history) == 2 and second.history["train_loss"].map(math.isfinite).all()
