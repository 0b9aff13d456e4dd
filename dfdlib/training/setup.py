"""What `dfdlib.training.loop.train` builds before its first epoch, as plain functions that take and return values.

The process (rank, device, torchrun process group), the labels and their splits, the datasets and the
seeded sharded samplers and loaders, the model, the losses, the AMP choice, the optimizer and the LR
schedule, DistributedDataParallel (re)wrapping, and gathering objects from all ranks. The samplers make
the data order a function of (seed, epoch, rank), which exact resume relies on (dfdlib/training/loop.py).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfdlib.labels.io import validate_labels
from dfdlib.labels.splits import split_labels
from dfdlib.training.selfblend import wrap_train
from dfdlib.utils import resolve_device


# ------------------------------------------------------------------------------------------- sampling
class SeededIndices:
    """Wrap a sampler to yield (seed, index): each item's augmentation seed is a function of
    (run seed, epoch, rank, position), independent of worker count, persistence and resumption."""

    def __init__(self, inner, seed: int, rank: int):
        self.inner, self.seed, self.rank, self.epoch = inner, seed, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self):
        idx = list(self.inner)
        seeds = np.random.SeedSequence([self.seed, self.epoch, self.rank]).generate_state(len(idx), np.uint64)
        return iter([(int(s) >> 1, int(i)) for s, i in zip(seeds, idx, strict=True)])


class WeightedShards:
    """Class-balanced sampling with replacement, sharded across processes; order set by (seed, epoch)."""

    def __init__(self, labels: list[int], seed: int, rank: int, world: int):
        y = np.asarray(labels)
        counts = np.bincount(y, minlength=2).astype(float)
        self.weights = (1.0 / np.maximum(counts, 1))[y]
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0
        self.per_rank = math.ceil(len(y) / world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(self.seed + self.epoch)
        idx = torch.multinomial(torch.as_tensor(self.weights), self.per_rank * self.world, True, generator=g)
        return iter(idx[self.rank::self.world].tolist())


class SeededDataset:
    """Dataset view taking (seed, index) keys: seeds torch's CPU RNG (which transforms v2 draw from).

    Items are (clip, label, length, seed): the seed lets augmentation on the training device draw
    the same parameters a worker would have drawn (data.augment_batch).
    """

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        import torch

        seed, i = key
        torch.random.default_generator.manual_seed(seed)
        clip, label = self.ds[i]
        return clip, label, self.ds.length(i), seed


# ---------------------------------------------------------------------------------------- processes
def rank_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) in a plain process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def setup_device(name: str, world: int, local_rank: int):
    """Resolve the device and, under torchrun, start the process group. Returns (device, started_group)."""
    import torch


    device = resolve_device(name)
    if world == 1:
        return device, False
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        device = torch.device("cpu")  # DDP supports CUDA (nccl) and CPU (gloo) only
    if dist.is_initialized():
        return device, False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, True


def close_process_group(started: bool) -> None:
    if started:
        import torch.distributed as dist

        dist.destroy_process_group()


def gather(obj, world: int) -> list:
    """[obj of rank 0, obj of rank 1, ...] (a collective: every rank must call it); [obj] without DDP."""
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


# ------------------------------------------------------------------------------------------- labels
def read_labels(cfg, log):
    """Validated labels DataFrame with train and val rows (split here 70/15/15 if the CSV has no split)."""

    # the one validation `dfd labels --check` runs too (training=True: empty splits, train and val rows)
    df = validate_labels(cfg.csv_file, cfg.dataset_path, sequence_length=cfg.sequence_length, short="pad")
    if "split" not in df.columns or df["split"].eq("").all():
        df = split_labels(df, seed=cfg.seed)
        log(f"{cfg.csv_file} has no split column: split 70/15/15 here with seed={cfg.seed} "
            "(save a split with `dfd labels` to keep it fixed across runs)")
        for s in ("train", "val"):  # a tiny CSV may leave a split empty
            if not df["split"].eq(s).any():
                raise ValueError(f"{cfg.csv_file}: too few rows to split into train and val ({len(df)}); "
                                 "add videos or write the split column yourself")
    return df


def preprocess_settings(df, dataset_path) -> dict | None:
    """The face detector settings of the processed data (faces.json), so predict crops the same way."""
    for name in df["filename"][:50]:
        p = Path(dataset_path) / name / "faces.json"
        if p.is_file():
            with contextlib.suppress(ValueError, OSError):
                doc = json.loads(p.read_text())
                for key in ("preprocess", "config", "settings"):
                    if isinstance(doc.get(key), dict):
                        return json.loads(json.dumps(doc[key]))
    return None


# --------------------------------------------------------------------------------------------- data
@dataclass
class Data:
    """Datasets and loaders of one process. The train loader yields (clip, label, length, seed)."""

    train_ds: object
    val_ds: object
    test_ds: object | None
    sampler: SeededIndices
    train_loader: object
    val_loader: object
    test_loader: object | None


def train_dataset(part, cfg, transform):
    """The training dataset: the one place where it is built (training modes plug in here).

    Takes the train rows, the config and the workers' transform (`data.clip_transforms(...).worker`).
    """
    from dfdlib.data import FaceSequenceDataset

    return FaceSequenceDataset(part, cfg.dataset_path, cfg.sequence_length, transform=transform,
                               sampling=cfg.sampling, cache=cfg.cache, store_size=cfg.image_size,
                               store_dir=cfg.cache_dir)


def build_data(df, cfg, transforms, device, rank: int, world: int, log=print) -> Data:
    """Datasets, the seeded (sharded) training sampler and the loaders for one process; `transforms` is
    the run's `data.ClipTransforms` (the train loader applies `.worker`, the val/test loaders `.eval`)."""
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    from dfdlib.data import FaceSequenceDataset

    def rows(split: str):
        return df[df["split"] == split].reset_index(drop=True)

    def eval_dataset(split: str):
        part = rows(split)
        if not len(part):
            return None
        return FaceSequenceDataset(part, cfg.dataset_path, cfg.sequence_length, sampling=cfg.sampling,
                                   transform=transforms.eval, cache=cfg.cache, store_size=cfg.image_size,
                                   store_dir=cfg.cache_dir)

    val_ds, test_ds = eval_dataset("val"), eval_dataset("test")
    train_ds = wrap_train(train_dataset(rows("train"), cfg, transforms.worker), cfg.fakes, cfg.seed,
                          val_ds.labels if val_ds else None, log)
    if cfg.balance == "sampler":
        inner = WeightedShards(train_ds.labels, cfg.seed, rank, world)
    else:
        inner = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    sampler = SeededIndices(inner, cfg.seed, rank)
    pin = device.type == "cuda"
    # Persistent train workers; the val workers persist only to keep a RAM cache (cache='ram'): with the disk
    # store they would hold memory between evaluations for nothing.
    train_loader = DataLoader(SeededDataset(train_ds), batch_size=cfg.batch_size, sampler=sampler,
                              generator=torch.Generator().manual_seed(cfg.seed), num_workers=cfg.num_workers,
                              pin_memory=pin, persistent_workers=cfg.num_workers > 0)

    def eval_loader(ds, persistent: bool):
        if ds is None:
            return None
        return DataLoader(_WithLength(ds), batch_size=cfg.batch_size, sampler=range(rank, len(ds), world),
                          num_workers=cfg.num_workers, pin_memory=pin,
                          persistent_workers=persistent and cfg.num_workers > 0)

    return Data(train_ds, val_ds, test_ds, sampler, train_loader, eval_loader(val_ds, cfg.cache == "ram"),
                eval_loader(test_ds, False))


class _WithLength:
    """Dataset view yielding (clip, label, real frame count) for evaluation."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):
        clip, label = self.ds[i]
        return clip, label, self.ds.length(i)


# -------------------------------------------------------------------------------------------- model
def build_model(cfg, device, weights):
    """The ResNeXtLSTM of the config on `device` (channels_last on CUDA); `weights` initialises the backbone."""
    import torch

    from dfdlib.model import ResNeXtLSTM

    model = ResNeXtLSTM(num_classes=1 if cfg.loss == "bce" else 2, hidden_dim=cfg.hidden_dim,
                        lstm_layers=cfg.lstm_layers, bidirectional=cfg.bidirectional, dropout=cfg.dropout,
                        backbone=cfg.backbone, weights=weights).to(device)
    if cfg.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model


def build_losses(cfg, labels: list[int], device):
    """(train loss: mean, class-balanced if cfg.balance="weighted"; eval loss: plain sum), both (logits, y)."""
    import torch
    from torch import nn

    counts = np.bincount(np.asarray(labels), minlength=2).astype(float)
    w = counts.sum() / (2 * counts) if cfg.balance == "weighted" and counts.min() > 0 else np.ones(2)
    if cfg.loss == "bce":
        weighted = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w[1] / w[0], device=device))
        plain = nn.BCEWithLogitsLoss(reduction="sum")
        return (lambda logits, y: weighted(logits.float().view(-1), y.float()),
                lambda logits, y: plain(logits.float().view(-1), y.float()))
    weighted = nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32, device=device))
    plain = nn.CrossEntropyLoss(reduction="sum")
    return lambda logits, y: weighted(logits.float(), y), lambda logits, y: plain(logits.float(), y)


def epoch_length(n_batches: int, cfg) -> tuple[int, int]:
    """(micro-batches, optimizer steps) per epoch, after max_steps_per_epoch."""
    if cfg.max_steps_per_epoch:
        n_batches = min(n_batches, cfg.max_steps_per_epoch * cfg.grad_accum)
    return n_batches, math.ceil(n_batches / cfg.grad_accum)


def build_schedule(cfg, optimizer, steps_per_epoch: int):
    """Per-step LR schedule: linear warm-up + cosine to 1 % of the peak, OneCycle, or constant."""
    import torch

    total = steps_per_epoch * cfg.num_epochs
    warm = min(cfg.warmup_epochs * steps_per_epoch, total // 2)
    if cfg.lr_schedule == "onecycle" and total >= 2:
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.learning_rate, total_steps=total,
                                                   pct_start=min(max(warm / total, 0.05), 0.5))

    def factor(step: int) -> float:
        if cfg.lr_schedule != "cosine":
            return 1.0
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))  # floor at 1 % of the peak

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def score(row: dict, monitor: str) -> list:
    """The best-model key of a history row (greater is better): val AUC then lower val loss, or val loss."""
    if monitor == "val_loss":
        return [-row["val_loss"]]
    return [-math.inf if row["val_auc"] is None else row["val_auc"], -row["val_loss"]]


STALL_EPOCHS = 3  # epochs at chance-level loss before the trainer says the model is not learning


def stalled(history: list[dict], cfg) -> str | None:
    """A warning when the training loss has not moved (within 0.02) from chance level (ln 2 = 0.693 for two
    classes, or above) over the first STALL_EPOCHS epochs, said once (at that epoch); None otherwise."""
    losses = [r["train_loss"] for r in history]
    if len(losses) != STALL_EPOCHS or min(losses) < math.log(2) - 0.02 or max(losses) - min(losses) > 0.02:
        return None
    scratch = "the backbone starts from random weights (weights none), which needs " if not cfg.weights else ""
    return (f"warning: the training loss has stayed at {losses[-1]:.2f} (chance for two classes: 0.69) for "
            f"{STALL_EPOCHS} epochs at learning_rate={cfg.learning_rate:g}: the model is not learning. "
            f"{scratch.capitalize()}{'a' if scratch else 'Try a'} higher learning rate (e.g. --lr "
            f"{10 * cfg.learning_rate:g}; the default is 1e-3 from scratch, 1e-4 pretrained); check also that "
            "the labels match the videos.")


def set_frozen(model, frozen: bool, device, world: int):
    """Freeze or unfreeze the backbone; returns the model to call (a new DDP wrapper under torchrun, since
    DDP registers the trainable parameters when it is built; the model itself otherwise)."""
    for p in model.backbone.parameters():
        p.requires_grad_(not frozen)
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


@contextlib.contextmanager
def torch_settings(cfg, device, world: int):
    """Intra-op threads (one core group per local process on CPU), deterministic kernels and cudnn
    benchmark for the run; the previous settings come back afterwards."""
    import torch

    prev = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            torch.set_num_threads(max(1, cores // max(1, local)))
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = not cfg.deterministic
        yield
    finally:
        torch.set_num_threads(prev[0])
        torch.use_deterministic_algorithms(prev[1])
        torch.backends.cudnn.benchmark = prev[2]


def oom_message(cfg, epoch: int, last_path: Path) -> str:
    return (f"CUDA out of memory in epoch {epoch + 1} (batch_size={cfg.batch_size}, sequence_length="
            f"{cfg.sequence_length}, image_size={cfg.image_size}, amp={cfg.amp}, backbone={cfg.backbone}). "
            f"Lower batch_size (e.g. {max(1, cfg.batch_size // 2)}) and set grad_accum={cfg.grad_accum * 2} to keep "
            "the effective batch, or lower sequence_length or image_size; keep amp on. Finished epochs are safe "
            f"in {last_path}: rerun with resume=True (--resume) after changing batch_size/grad_accum.")
