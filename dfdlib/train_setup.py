"""Trainer setup for one process of a run (plain or torchrun/DDP): device, data, model and DDP helpers.

`_Setup` is a mixin of `dfdlib.trainer._Trainer`: it picks the device and starts the process group under
torchrun, checks the labels' splits, builds the datasets, the seeded sharded samplers and the loaders,
the model, loss, AMP, optimizer and LR schedule, (re)wraps the model in DistributedDataParallel, gathers
objects from all ranks and ends the process group. The samplers make the data order a function of
(seed, epoch, rank), which exact resume relies on (dfdlib/trainer.py's docstring).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import numpy as np


# ------------------------------------------------------------------------------------------- sampling
class _SeededIndices:
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


class _WeightedShards:
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


class _SeededDataset:
    """Dataset view taking (seed, index) keys: seeds torch's CPU RNG (which transforms v2 draw from)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        import torch

        seed, i = key
        torch.random.default_generator.manual_seed(seed)
        return self.ds[i]


# ---------------------------------------------------------------------------------------- processes
def _rank_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


class _Setup:
    """Mixin of `_Trainer`: everything built before the first epoch, plus the DDP helpers it uses."""

    # ---- setup
    def _setup_device(self):
        torch = self.torch
        from .utils import resolve_device

        device = resolve_device(self.cfg.device)
        self._own_pg = False
        if self.world > 1:
            import torch.distributed as dist

            if device.type == "cuda":
                device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(device)
            elif device.type != "cpu":
                device = torch.device("cpu")  # DDP supports CUDA (nccl) and CPU (gloo) only
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
                self._own_pg = True
        return device

    def _labels(self):
        from .labels import split_labels, validate_labels

        cfg = self.cfg
        df = validate_labels(cfg.csv_file, cfg.dataset_path, sequence_length=cfg.sequence_length, short="pad")
        if "split" not in df.columns or df["split"].eq("").all():
            df = split_labels(df, seed=cfg.seed)
            self.log(f"{cfg.csv_file} has no split column: split 70/15/15 here with seed={cfg.seed} "
                     "(save a split with `dfd labels` to keep it fixed across runs)")
        elif df["split"].eq("").any():
            raise ValueError(f"{cfg.csv_file}: {int(df['split'].eq('').sum())} rows have an empty split; fill "
                             "train/val/test or re-split with dfdlib.split_labels / `dfd labels`")
        for s in ("train", "val"):
            if not df["split"].eq(s).any():
                raise ValueError(f"{cfg.csv_file} has no '{s}' rows; training needs train and val splits "
                                 "(re-split with dfdlib.split_labels or `dfd labels --ratios 0.7,0.15,0.15`)")
        return df

    def _preprocess_settings(self, df) -> dict | None:
        # predict must crop faces the way the training data was cropped: keep the detector settings.
        for name in df["filename"][:50]:
            p = Path(self.cfg.dataset_path) / name / "faces.json"
            if p.is_file():
                with contextlib.suppress(ValueError, OSError):
                    doc = json.loads(p.read_text())
                    for key in ("preprocess", "config", "settings"):
                        if isinstance(doc.get(key), dict):
                            return json.loads(json.dumps(doc[key]))
        return None

    def _data(self, df):
        torch = self.torch
        from torch.utils.data import DataLoader, DistributedSampler

        from .data import FaceSequenceDataset, build_transforms

        cfg = self.cfg

        def dataset(split: str, train: bool):
            part = df[df["split"] == split].reset_index(drop=True)
            if not len(part):
                return None
            tf = build_transforms(train and cfg.augment, cfg.image_size)
            return FaceSequenceDataset(part, cfg.dataset_path, cfg.sequence_length, transform=tf,
                                       sampling=cfg.sampling, cache=cfg.cache)

        self.val_ds, self.test_ds = dataset("val", False), dataset("test", False)
        from .selfblend import wrap_train  # fakes="self-blend"/"mixed": self-blends join the train split only
        self.train_ds = wrap_train(dataset("train", True), cfg.fakes, cfg.seed,
                                   self.val_ds.labels if self.val_ds else None, self.log)
        if cfg.balance == "sampler":
            inner = _WeightedShards(self.train_ds.labels, cfg.seed, self.rank, self.world)
        else:
            inner = DistributedSampler(self.train_ds, num_replicas=self.world, rank=self.rank, shuffle=True,
                                       seed=cfg.seed)
        self.sampler = _SeededIndices(inner, cfg.seed, self.rank)
        pin = self.device.type == "cuda"
        # Persistent workers keep their in-memory clip cache across epochs (each worker caches its own).
        common = dict(num_workers=cfg.num_workers, pin_memory=pin, persistent_workers=cfg.num_workers > 0)
        self.train_loader = DataLoader(_SeededDataset(self.train_ds), batch_size=cfg.batch_size,
                                       sampler=self.sampler, generator=torch.Generator().manual_seed(cfg.seed),
                                       **common)

        def eval_loader(ds, persistent: bool):
            if ds is None:
                return None
            return DataLoader(ds, batch_size=cfg.batch_size, sampler=range(self.rank, len(ds), self.world),
                              num_workers=cfg.num_workers, pin_memory=pin,
                              persistent_workers=persistent and cfg.num_workers > 0)

        self.val_loader = eval_loader(self.val_ds, cfg.cache)
        self.test_loader = eval_loader(self.test_ds, False)

    def _model(self, resuming: bool):
        torch = self.torch
        from torch import nn

        from .model import ResNeXtLSTM

        cfg = self.cfg
        self.model = ResNeXtLSTM(num_classes=1 if cfg.loss == "bce" else 2, hidden_dim=cfg.hidden_dim,
                                 lstm_layers=cfg.lstm_layers, bidirectional=cfg.bidirectional, dropout=cfg.dropout,
                                 backbone=cfg.backbone, weights=None if resuming else cfg.weights).to(self.device)
        if cfg.channels_last and self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        counts = np.bincount(np.asarray(self.train_ds.labels), minlength=2).astype(float)
        if cfg.balance == "weighted" and counts.min() > 0:
            w = counts.sum() / (2 * counts)  # inverse class frequency, mean weight 1
        else:
            w = np.ones(2)
        if cfg.loss == "bce":
            self.criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w[1] / w[0], device=self.device))
            self.eval_criterion = nn.BCEWithLogitsLoss(reduction="sum")
        else:
            self.criterion = nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32, device=self.device))
            self.eval_criterion = nn.CrossEntropyLoss(reduction="sum")
        # AMP: bf16 needs no loss scaling; fp16 does (GradScaler).
        amp = cfg.amp
        if amp == "auto":
            amp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if self.device.type == "cuda" else "off"
        if amp == "fp16" and self.device.type != "cuda":
            raise ValueError("amp='fp16' needs a CUDA GPU; use amp='bf16' (CPUs with AVX512-BF16/AMX) or 'off'")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda" if self.device.type == "cuda" else "cpu", enabled=amp == "fp16")
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.learning_rate,
                                           weight_decay=cfg.weight_decay)
        n_batches = len(self.train_loader)
        if cfg.max_steps_per_epoch:
            n_batches = min(n_batches, cfg.max_steps_per_epoch * cfg.grad_accum)
        self.batches_per_epoch = n_batches
        self.steps_per_epoch = math.ceil(n_batches / cfg.grad_accum)
        self.scheduler = self._schedule(self.steps_per_epoch * cfg.num_epochs)
        self.ddp, self.frozen = None, None

    def _schedule(self, total: int):
        torch = self.torch
        cfg = self.cfg
        warm = min(cfg.warmup_epochs * self.steps_per_epoch, total // 2)
        if cfg.lr_schedule == "onecycle" and total >= 2:
            return torch.optim.lr_scheduler.OneCycleLR(self.optimizer, cfg.learning_rate, total_steps=total,
                                                       pct_start=min(max(warm / total, 0.05), 0.5))
        if cfg.lr_schedule == "cosine":
            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                t = min(1.0, (step - warm) / max(1, total - warm))
                return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))  # floor at 1 % of the peak
        else:
            def factor(step: int) -> float:
                return 1.0
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def _set_frozen(self, frozen: bool) -> None:
        if frozen == self.frozen:
            return
        for p in self.model.backbone.parameters():
            p.requires_grad_(not frozen)
        self.frozen = frozen
        if self.world > 1:  # DDP registers the trainable parameters when it is built: rebuild on change
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DDP(self.model, device_ids=ids)

    # ---- distributed
    def _gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self._own_pg:
            import torch.distributed as dist

            dist.destroy_process_group()
