"""Multi-process training: `torchrun --nproc_per_node=2 -m dfdlib train ...` on CPU with the gloo backend.

Checks that only rank 0 prints and writes, that validation/test predictions are gathered from both
ranks (an odd-sized split, so the shards differ in size), and that a DDP run resumes exactly.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from test_trainer import make_tiny_processed  # tests/ is on sys.path (pytest rootdir conftest)

pytestmark = pytest.mark.slow


def train_args(root, csv, out, *extra: str) -> list[str]:
    """`-m dfdlib train ...` of a tiny CPU run (what torchrun or python runs)."""
    return ["-m", "dfdlib", "train", "--csv", str(csv), "--data", str(root), "--out", str(out),
            "--sequence-length", "4", "--batch-size", "2", "--lr", "3e-3", "--backbone", "tiny", "--weights", "none",
            "--hidden-dim", "16", "--image-size", "32", "--num-workers", "0", "--device", "cpu",
            "--no-show-progress", "--lr-schedule", "none", "--deterministic", *extra]


ENV = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3", DFD_DEBUG="1")


def torchrun(root, csv, out, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *train_args(root, csv, out, *extra)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_ddp_gloo_two_processes(tmp_path):
    root, csv = make_tiny_processed(tmp_path / "processed", splits=["train"] * 4 + ["val"] * 3 + ["test"] * 2)
    df = pd.read_csv(csv)
    df[df["filename"] != "fake/v6"].to_csv(csv, index=False)  # 5 val clips: shards of 3 and 2

    full = tmp_path / "full"
    proc = torchrun(root, csv, full, "--epochs", "2")
    assert proc.stdout.count("Epoch 1/2  Loss:") == 1 and proc.stdout.count("Epoch 2/2  Loss:") == 1
    assert "(2 processes)" in proc.stdout
    metrics = json.loads((full / "metrics.json").read_text())
    assert metrics["val"]["n"] == 5 and metrics["test"]["n"] == 4  # gathered from both ranks
    assert len(list(full.glob("model_4_acc_*_final_data.pt"))) == 1
    assert pd.read_csv(full / "history.csv")["epoch"].tolist() == [1, 2]
    last = torch.load(full / "last.pt", weights_only=True)
    assert len(last["rng"]) == 2  # one RNG state per rank
    assert not [p for p in full.iterdir() if p.name.startswith(".")]  # no temp files left by other ranks

    # 1 epoch, then resume for the 2nd under torchrun: same weights as the uninterrupted DDP run
    split = tmp_path / "split"
    torchrun(root, csv, split, "--epochs", "1")
    torchrun(root, csv, split, "--epochs", "2", "--resume")
    resumed = torch.load(split / "last.pt", weights_only=True)
    assert resumed["epoch"] == 2
    for k, v in last["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
