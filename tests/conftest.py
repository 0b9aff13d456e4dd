"""Shared fixtures: one tiny sample video set, processed once per test session.

Each fixture uses only the public API, so a failure here points at the stage that broke.
"""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up noise out of test logs
os.environ.setdefault("DFD_STRICT", "1")  # a bug in a stage raises here instead of becoming an "error" status
# The training clip store of this test session (and its notebook kernels / torchrun children), not ~/.cache.
os.environ.setdefault("DFD_CLIP_STORE", tempfile.mkdtemp(prefix="dfd-clips-"))

import pytest


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    """4 real + 4 fake videos, 320x240, 2 s at 25 fps (seeded)."""
    from dfdlib import SampleConfig, make_sample_dataset

    out = tmp_path_factory.mktemp("sample") / "videos"
    return make_sample_dataset(out, SampleConfig(n_real=4, n_fake=4, seconds=2.0, width=320, height=240, seed=0))


@pytest.fixture(scope="session")
def processed_dir(sample_dir, tmp_path_factory):
    """Face crops of `sample_dir`: 8 frames per video, 64x64."""
    from dfdlib import PreprocessConfig, preprocess_dataset

    out = tmp_path_factory.mktemp("processed") / "processed"
    report = preprocess_dataset(sample_dir, out, PreprocessConfig(frames=8, size=64))
    assert (report["status"] == "ok").all(), report
    return out


@pytest.fixture(scope="session")
def labels_csv(processed_dir):
    """labels.csv (filename,label,split,...) for `processed_dir`, seeded split."""
    from dfdlib import from_folders

    out = processed_dir.parent / "labels.csv"
    from_folders(processed_dir, out_csv=out, seed=0)
    return out
