"""Training across nodes: two torchrun node ranks on this machine (`--nnodes 2 --node-rank 0/1`, one process
each, rendezvous on 127.0.0.1, gloo) give the model that one process gives with the same global batch.

Equal up to float rounding only where the data order and the loss do not depend on how the batch is split:
no augmentation or dropout (seeded per rank), a frozen backbone (its BatchNorm statistics would be per
process without SyncBatchNorm) and a plain mean loss (balance 'none'); the samplers give node rank r the
items r, r+2, … of the one-process order, so each global batch holds the same clips.

The losses agree to 1e-6. The weights agree to ~2e-4 of their norm, not to float rounding: AdamW divides each
step by the gradient's own scale, so where a gradient is zero up to rounding (summed in another order by
all-reduce) its step is ±lr of noise (after one step: 3 of 8192 LSTM input weights, the rest within 1e-8),
and later steps carry that on. Half the global batch (what a rank ignoring the other's gradients would train
on) moves them 2-5 %, so the 1e-3 bound still tells a broken all-reduce or data split apart.
"""
from __future__ import annotations

import socket
import subprocess
import sys

import pandas as pd
import pytest
import torch
from test_ddp import ENV, train_args
from test_trainer import make_tiny_processed

pytestmark = pytest.mark.slow
SAME_MATH = ("--epochs", "2", "--no-augment", "--dropout", "0", "--freeze-backbone-epochs", "2", "--balance",
             "none", "--cache", "off")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_equal_one_process_with_the_same_global_batch(tmp_path):
    root, csv = make_tiny_processed(tmp_path / "processed", splits=["train"] * 4 + ["val"] * 2 + ["test"] * 2)
    one = tmp_path / "one"
    proc = subprocess.run([sys.executable, *train_args(root, csv, one, *SAME_MATH, "--batch-size", "2")],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    two = tmp_path / "two"
    port = _free_port()
    env = dict(ENV, GLOO_SOCKET_IFNAME="lo")  # both "nodes" talk over loopback
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
                               str(rank), "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port",
                               str(port), *train_args(root, csv, two, *SAME_MATH, "--batch-size", "1")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for rank in (0, 1)]
    outs = []
    for p in nodes:
        try:
            outs.append(p.communicate(timeout=300)[0])
        finally:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(o[-3000:] for o in outs)
    assert "(2 processes)" in outs[0] and "Epoch 2/2  Loss:" in outs[0]
    assert "Epoch" not in outs[1]  # only global rank 0 prints

    a, b = (torch.load(d / "last.pt", weights_only=True) for d in (one, two))
    assert a["epoch"] == b["epoch"] == 2 and len(b["rng"]) == 2
    for k, v in a["model"].items():
        if v.is_floating_point() and v.norm() > 0:
            assert (b["model"][k] - v).norm() / v.norm() < 1e-3, k
        else:
            assert torch.equal(b["model"][k], v), k
    ha, hb = (pd.read_csv(d / "history.csv") for d in (one, two))
    for col in ("train_loss", "train_acc", "val_loss", "val_auc"):
        assert ha[col].tolist() == pytest.approx(hb[col].tolist(), rel=1e-6, abs=1e-9), col
