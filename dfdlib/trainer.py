"""Trainer for the ResNeXt-LSTM detector: the guide's Step 4 (`Model_and_train_csv.ipynb`) as a function.

`train(TrainConfig(...))` reads the labels CSV and the processed face folders, trains with AdamW, class
balancing, gradient accumulation, AMP (CUDA), an LR schedule, clipping and early stopping, and writes a
run folder (docs/design.md): the best model by a validation metric (never the test split), `last.pt` for
`resume=True`, `history.csv`, `metrics.json` and `plots/`. The same code runs under
`torchrun --nproc_per_node=N -m dfdlib train ...` with DistributedDataParallel (rank 0 writes files).

Exact resume: the sampler order is a function of (seed, epoch) (DistributedSampler), each training
item's augmentation is seeded by (seed, epoch, rank, position), and last.pt stores the remaining RNG
state (dropout), so stopping between epochs and resuming reproduces the uninterrupted weights.

Setup (device, DDP, data, model) lives in `train_setup.py` and the checkpoint/resume state in
`checkpoint.py`; `_Trainer` here combines them with the epoch loop.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import _RESUME_FREE, LAST_FORMAT, _Checkpointing  # noqa: F401
from .config import add_dataclass_flags, opt
from .train_setup import _rank_info, _SeededDataset, _SeededIndices, _Setup, _WeightedShards  # noqa: F401

_CHOICES = {
    "loss": ("ce", "bce"), "balance": ("weighted", "sampler", "none"), "amp": ("auto", "bf16", "fp16", "off"),
    "lr_schedule": ("cosine", "onecycle", "none"), "monitor": ("val_auc", "val_loss"), "sampling": ("even", "first"),
    "fakes": ("none", "self-blend", "mixed"),
}


@dataclass
class TrainConfig:
    dataset_path: str = opt("data/processed", "processed root: <root>/<real|fake>/<video>/frame_<i>.jpg")
    csv_file: str = opt("labels/labels.csv", "labels CSV: filename,label[,split,...] (split made if absent)")
    out_dir: str = opt("runs/train", "run folder: model file, last.pt, history.csv, metrics.json, plots/")
    sequence_length: int = opt(20, "frames per clip (the guide: 10, 20 or 100)")
    batch_size: int = opt(4, "clips per step per process (the guide's default)")
    learning_rate: float = opt(1e-4, "peak AdamW learning rate")
    num_epochs: int = opt(50, "upper bound; early stopping may end sooner")
    device: str = opt("auto", '"auto" = cuda > mps > cpu; or "cuda", "cuda:1", "cpu"')
    weight_decay: float = opt(1e-4, "AdamW decoupled weight decay")
    num_workers: int = opt(2, "DataLoader worker processes (0 = load in the main process)")
    seed: int = opt(42, "seeds init, split (if made here), sampler, augmentation, dropout")
    loss: str = opt("ce", '"ce": 2 logits + cross-entropy; "bce": 1 logit + BCE-with-logits')
    balance: str = opt("weighted", 'class imbalance: "weighted" loss, balanced "sampler", or "none"')
    grad_accum: int = opt(1, "micro-batches per optimizer step (effective batch = batch*accum)")
    amp: str = opt("auto", '"auto" = bf16 if the GPU has it else fp16, off on CPU; "bf16"|"fp16"|"off"')
    channels_last: bool = opt(True, "NHWC convolutions on CUDA (faster with AMP); ignored on CPU")
    lr_schedule: str = opt("cosine", 'per-step schedule: "cosine" (after warm-up), "onecycle", "none"')
    warmup_epochs: int = opt(1, 'linear warm-up length for "cosine" / ramp length for "onecycle"')
    grad_clip: float = opt(1.0, "max gradient norm (0 = no clipping); LSTMs can spike")
    early_stopping: int = opt(10, "stop after this many epochs without improvement (0 = off)")
    monitor: str = opt("val_auc", 'best-model metric: "val_auc" (ties → lower val loss) or "val_loss"')
    backbone: str = opt("resnext50_32x4d", 'frame CNN: "resnext50_32x4d", "resnet18" or "tiny" (tests, CPU demo)')
    weights: str | None = opt("imagenet", 'backbone init: None, "imagenet" (torch cache) or a .pth path')
    hidden_dim: int = opt(2048, "LSTM hidden size")
    lstm_layers: int = opt(1, "stacked LSTM layers")
    bidirectional: bool = opt(False, "bidirectional LSTM")
    dropout: float = opt(0.4, "dropout before the classifier")
    image_size: int = opt(224, "crops are resized to image_size x image_size")
    sampling: str = opt("even", 'which frames form a clip: "even" spread or the "first" N')
    augment: bool = opt(True, "train-time augmentation (flip, crop, jitter, rotation, JPEG/blur)")
    cache: bool = opt(True, "keep decoded uint8 clips in memory: no JPEG decoding after epoch 1")
    resume: bool = opt(False, "continue from <out_dir>/last.pt (exactly, see module docstring)")
    deterministic: bool = opt(False, "deterministic kernels (slower); exact-resume tests use it")
    max_steps_per_epoch: int | None = opt(None, "cap optimizer steps per epoch (smoke runs); None = full epoch")
    show_progress: bool = opt(True, "tqdm bar per epoch")
    freeze_backbone_epochs: int = opt(0, "train only LSTM + head for the first N epochs (small datasets)")
    fakes: str = opt("none", 'train-split fakes: "none", "self-blend" (real clips + their self-blends, '
                             'dfdlib.selfblend), "mixed" (the split\'s fakes too)')

    def __post_init__(self):
        for k, v in dataclasses.asdict(self).items():
            if isinstance(v, os.PathLike):
                setattr(self, k, os.fspath(v))
        if isinstance(self.weights, str) and self.weights.lower() in ("", "none", "null"):
            self.weights = None
        for k, allowed in _CHOICES.items():
            if getattr(self, k) not in allowed:
                raise ValueError(f"TrainConfig.{k}={getattr(self, k)!r}: choose one of {', '.join(allowed)}")
        for k in ("sequence_length", "batch_size", "num_epochs", "grad_accum", "image_size", "hidden_dim",
                  "lstm_layers"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"TrainConfig.{k} must be >= 1, got {getattr(self, k)}")
        for k in ("num_workers", "warmup_epochs", "early_stopping", "freeze_backbone_epochs", "weight_decay",
                  "grad_clip"):
            if getattr(self, k) < 0:
                raise ValueError(f"TrainConfig.{k} must be >= 0, got {getattr(self, k)}")
        if not self.learning_rate > 0:
            raise ValueError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError("TrainConfig.max_steps_per_epoch must be None or >= 1")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from a dict (e.g. a model file's meta["train"]); unknown keys raise ValueError (typos)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
        return cls(**d)

    def to_dict(self) -> dict:
        """Plain dict (paths as str) for JSON, model metadata and last.pt."""
        return {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class TrainResult:
    history: object            # pd.DataFrame: epoch, train_loss, train_acc, val_loss, val_acc, val_auc, lr, seconds
    best_model_path: Path      # model_<seq>_acc_<val_acc>_final_data.pt (best validation epoch)
    last_path: Path            # last.pt: full state for resume=True
    test_metrics: dict | None  # compute_metrics on the test split at `threshold`; None without a test split
    val_metrics: dict          # validation metrics of the best epoch (threshold 0.5)
    run_dir: Path              # the run folder (= config.out_dir)
    threshold: float           # decision threshold chosen on validation (Youden's J), stored in the model file


# ---------------------------------------------------------------------------------------- the trainer
class _Trainer(_Checkpointing, _Setup):
    """One process of a training run; setup and checkpoint methods come from the two mixins."""

    def __init__(self, cfg: TrainConfig):
        import torch

        self.cfg, self.torch = cfg, torch
        self.rank, self.world, self.local_rank = _rank_info()
        self.main = self.rank == 0
        self.run_dir = Path(cfg.out_dir)
        self.last_path = self.run_dir / "last.pt"
        self.device = self._setup_device()

    def log(self, msg: str) -> None:
        if self.main:
            from tqdm.auto import tqdm

            tqdm.write(msg)

    # ---- epochs
    def _loss(self, logits, y):
        if self.cfg.loss == "bce":
            return self.criterion(logits.float().view(-1), y.float())
        return self.criterion(logits.float(), y)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return self.torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _train_epoch(self, epoch: int) -> tuple[float, float, float]:
        torch, cfg = self.torch, self.cfg
        from tqdm.auto import tqdm

        self._set_frozen(epoch < cfg.freeze_backbone_epochs)
        net = self.ddp or self.model
        net.train()
        if self.frozen:
            self.model.backbone.eval()  # frozen BatchNorm statistics too
        self.sampler.set_epoch(epoch)
        total, accum = self.batches_per_epoch, cfg.grad_accum
        # running sums stay on the device: no host sync per step (the GPU keeps its queue full)
        sums = torch.zeros(2, device=self.device, dtype=torch.float64)
        seen = 0
        params = [p for p in self.model.parameters() if p.requires_grad]
        bar = tqdm(total=total, desc=f"Epoch {epoch + 1}/{cfg.num_epochs}", unit="batch", leave=False,
                   disable=not (cfg.show_progress and self.main))
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(self.train_loader):
            if i >= total:
                break
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            start = (i // accum) * accum
            group = min(accum, total - start)
            step_now = i + 1 == start + group
            sync = contextlib.nullcontext() if (self.ddp is None or step_now) else self.ddp.no_sync()
            with sync:
                with self._autocast():
                    logits = net(x)
                loss = self._loss(logits, y)
                self.scaler.scale(loss / group).backward()
            if step_now:
                if cfg.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                if not (isinstance(self.scheduler, torch.optim.lr_scheduler.OneCycleLR)
                        and self.scheduler.last_epoch + 1 >= self.scheduler.total_steps):
                    self.scheduler.step()
            with torch.no_grad():
                pred = (self.model.prob_fake(logits.detach()) >= 0.5).long()
                sums += torch.stack([loss.detach().double() * len(y), (pred == y).sum().double()])
                seen += len(y)
            bar.update()
            if not bar.disable and (i % 10 == 0 or i + 1 == total):
                bar.set_postfix(loss=f"{sums[0].item() / seen:.4f}")
        bar.close()
        loss_sum, correct = sums.tolist()
        secs = time.perf_counter() - t0
        tot = np.sum(self._gather((loss_sum, correct, seen, secs)), axis=0)
        # plain floats: history rows go into last.pt, which is read back with weights_only=True
        return float(tot[0] / max(tot[2], 1)), float(tot[1] / max(tot[2], 1)), float(tot[2] / (tot[3] / self.world))

    def _predict(self, loader, ds):
        """P(fake) for every item of `ds` (gathered from all ranks, in dataset order) and mean plain loss."""
        torch = self.torch
        self.model.eval()
        ys, ps, loss_sum = [], [], 0.0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device)
                with self._autocast():
                    logits = self.model(x)
                logits = logits.float()
                target = y.float() if self.cfg.loss == "bce" else y
                loss_sum += float(self.eval_criterion(logits.view(-1) if self.cfg.loss == "bce" else logits, target))
                ys += y.tolist()
                ps += self.model.prob_fake(logits).tolist()
        parts = self._gather((list(range(self.rank, len(ds), self.world)), ys, ps, loss_sum))
        order = np.concatenate([p[0] for p in parts]).astype(int)
        y_all = np.empty(len(ds), dtype=np.int64)
        p_all = np.empty(len(ds))
        y_all[order] = np.concatenate([p[1] for p in parts])
        p_all[order] = np.concatenate([p[2] for p in parts])
        return y_all, p_all, float(sum(p[3] for p in parts) / max(len(ds), 1))

    def _score(self, row: dict) -> list:
        if self.cfg.monitor == "val_loss":
            return [-row["val_loss"]]
        auc = row["val_auc"]
        return [-math.inf if auc is None else auc, -row["val_loss"]]

    def _oom_message(self, epoch: int) -> str:
        cfg = self.cfg
        return (f"CUDA out of memory in epoch {epoch + 1} (batch_size={cfg.batch_size}, sequence_length="
                f"{cfg.sequence_length}, image_size={cfg.image_size}, amp={cfg.amp}, backbone={cfg.backbone}). "
                f"Lower batch_size (e.g. {max(1, cfg.batch_size // 2)}) and set grad_accum="
                f"{cfg.grad_accum * 2} to keep the effective batch, or lower sequence_length or image_size; "
                f"keep amp on. Finished epochs are safe in {self.last_path}: rerun with resume=True "
                "(--resume) after changing batch_size/grad_accum.")

    # ---- main loop
    def fit(self) -> TrainResult:
        torch, cfg = self.torch, self.cfg
        from .utils import ensure_writable, seed_everything

        df = self._labels()
        self.preprocess = self._preprocess_settings(df)
        seed_everything(cfg.seed)
        self._data(df)
        resuming = cfg.resume and self.last_path.exists()
        if cfg.resume and not resuming:
            self.log(f"resume=True but {self.last_path} does not exist: starting a new run")
        self._model(resuming)
        torch.manual_seed(cfg.seed + self.rank)  # dropout differs across ranks; init was identical
        self.best, self.history, self.stopped, start = None, [], False, 0
        if resuming:
            start = self._load_last()
        else:
            self._clear_old_run()
        if self.main:
            ensure_writable(self.run_dir, "run folder (out_dir)")  # before the first epoch, not after it
            for pattern in (".last.pt.*.tmp", ".model_*.pt.*.tmp", ".history.csv.*.tmp", ".metrics.json.*.tmp"):
                for stale in self.run_dir.glob(pattern):  # a write cut short by a crash (utils.atomic_write)
                    stale.unlink(missing_ok=True)
            self.log(f"training on {self.device} ({self.world} process{'es' if self.world > 1 else ''}): "
                     f"{len(self.train_ds)} train / {len(self.val_ds)} val / "
                     f"{len(self.test_ds) if self.test_ds else 0} test clips, "
                     f"amp={ {None: 'off', torch.bfloat16: 'bf16', torch.float16: 'fp16'}[self.amp_dtype]}")
        from .metrics import best_threshold, compute_metrics

        since_best = 0 if not self.history else self.history[-1]["epoch"] - (self.best or {}).get("epoch", 0)
        epoch = start
        for epoch in range(start, cfg.num_epochs):
            if self.stopped:
                break
            t0 = time.perf_counter()
            try:
                train_loss, train_acc, clips_s = self._train_epoch(epoch)
                y, p, val_loss = self._predict(self.val_loader, self.val_ds)
            except torch.OutOfMemoryError as e:
                self.optimizer.zero_grad(set_to_none=True)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                raise RuntimeError(self._oom_message(epoch)) from e
            m = compute_metrics(y, p)
            row = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                   "val_acc": m["accuracy"], "val_auc": m["roc_auc"], "lr": self.optimizer.param_groups[0]["lr"],
                   "seconds": round(time.perf_counter() - t0, 3), "clips_per_s": round(clips_s, 2)}
            self.history.append(row)
            improved = self.best is None or self._score(row) > self.best["score"]
            replaced = (self.best or {}).get("path") if improved else None
            if improved:
                m = dict(m, epoch=row["epoch"])
                thr = best_threshold(y, p)
                with self._saving(epoch):
                    path = self._save_best(row, m, thr)
                self.best = {"score": self._score(row), "epoch": row["epoch"], "path": path, "threshold": thr,
                             "metrics": m}
                since_best = 0
            else:
                since_best += 1
            auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
            self.log(f"Epoch {epoch + 1}/{cfg.num_epochs}  Loss: {train_loss:.4f} | Val_Loss: {val_loss:.4f} | "
                     f"Accuracy: {100 * m['accuracy']:.1f}% | Val_AUC: {auc}" + ("  (best, saved)" if improved else ""))
            self.stopped = bool(cfg.early_stopping) and since_best >= cfg.early_stopping
            with self._saving(epoch):
                self._write_history()
                self._save_last(epoch + 1, self.stopped)
                self._drop_replaced_best(replaced)
            if self.main and getattr(self, "on_epoch", None) is not None:
                self.on_epoch(list(self.history))
            if self.stopped:
                self.log(f"early stopping: no {cfg.monitor} improvement for {cfg.early_stopping} epochs")
        return self._finish()

    def _finish(self) -> TrainResult:
        import pandas as pd

        from .metrics import compute_metrics, format_metrics_table, plot_confusion, plot_history, plot_roc

        if self.best is None:
            raise RuntimeError(f"no finished epoch in {self.run_dir}; nothing to evaluate")
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()  # rank 0 has written the best model file
        state = self.torch.load(self.best["path"], map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["state_dict"])
        thr = float(self.best["threshold"])
        test = None
        if self.test_ds is not None:
            y, p, _ = self._predict(self.test_loader, self.test_ds)
            test = compute_metrics(y, p, threshold=thr)
        else:
            y, p, _ = self._predict(self.val_loader, self.val_ds)
        history = pd.DataFrame(self.history)
        if self.main:
            from .utils import atomic_write

            doc = {"test": test, "val": self.best["metrics"], "threshold": thr, "best_epoch": self.best["epoch"],
                   "monitor": self.cfg.monitor, "model": Path(self.best["path"]).name}
            with atomic_write(self.run_dir / "metrics.json") as f:
                json.dump(doc, f, indent=2)
            plots = self.run_dir / "plots"
            split = "test" if test else "validation"
            cm = (test or compute_metrics(y, p, threshold=thr))["confusion_matrix"]
            plot_history(history, plots / "curves.png")
            plot_confusion(cm, plots / "confusion.png", title=f"Confusion matrix ({split})")
            plot_roc(y, p, plots / "roc.png", title=f"ROC ({split})")
            if test:
                f1 = "n/a" if test["f1"] is None else f"{test['f1']:.3f}"
                prec = "n/a" if test["precision"] is None else f"{test['precision']:.2f}"
                rec = "n/a" if test["recall"] is None else f"{test['recall']:.2f}"
                self.log(f"\nFinal Test Accuracy: {100 * test['accuracy']:.1f}%\n"
                         f"Precision: {prec} | Recall: {rec} | F1: {f1}\n\n{format_metrics_table(test)}")
            self.log(f"best model: {self.best['path']}")
        return TrainResult(history=history, best_model_path=Path(self.best["path"]), last_path=self.last_path,
                           test_metrics=test, val_metrics=self.best["metrics"], run_dir=self.run_dir, threshold=thr)


def train(config: TrainConfig | dict | None = None, on_epoch=None, **overrides) -> TrainResult:
    """Train a ResNeXt-LSTM on a labels CSV + processed folders and write the run folder.

    Takes a TrainConfig (or dict of its fields), fields overridable by keyword, and optionally
    `on_epoch(history)`: called on the main process after each epoch is saved, with the list of
    history rows so far (a notebook redraws its curves there). Returns a TrainResult.
    Raises FileNotFoundError (CSV / processed root), LabelsError (bad rows), ValueError (bad settings,
    missing val split, resume mismatch) and RuntimeError for CUDA out of memory (with what to lower).
    Under torchrun (WORLD_SIZE > 1) it runs DistributedDataParallel; rank 0 writes files and prints.
    """
    import torch

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config or {}))
    if overrides:
        cfg = TrainConfig.from_dict(cfg.to_dict() | overrides)
    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    trainer = _Trainer(cfg)
    trainer.on_epoch = on_epoch
    try:
        if trainer.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
            # One process per core group: intra-op threads share the cores with the other DDP ranks.
            local = int(os.environ.get("LOCAL_WORLD_SIZE", trainer.world))
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            torch.set_num_threads(max(1, cores // max(1, local)))
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = not cfg.deterministic
        return trainer.fit()
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)
        torch.backends.cudnn.benchmark = prev_bench
        trainer.close()


# ------------------------------------------------------------------------------------------------ CLI
_FLAG_ALIASES = {"csv_file": ["--csv"], "dataset_path": ["--data"], "out_dir": ["--out"], "num_epochs": ["--epochs"],
                 "learning_rate": ["--lr"]}


def add_cli(subparsers) -> None:
    """Register `dfd train`: one flag per TrainConfig field (plus the guide-style short names)."""
    import argparse

    p = subparsers.add_parser(
        "train", help="train the ResNeXt-LSTM detector on a labels CSV + processed faces",
        description="Example: dfd train --csv labels/labels.csv --data data/processed --out runs/x "
                    "--sequence-length 20 --epochs 50. Under torchrun it trains with DDP.",
        argument_default=argparse.SUPPRESS)
    p.add_argument("--config", metavar="JSON", help="TrainConfig fields as a JSON file; flags override it")
    add_dataclass_flags(p, TrainConfig, choices=_CHOICES, aliases=_FLAG_ALIASES, int_fields=("max_steps_per_epoch",))
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    base = {}
    if getattr(args, "config", None):
        base = json.loads(Path(args.config).read_text())
    result = train(TrainConfig.from_dict(base | given))
    if result.run_dir and int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {result.run_dir}")
    return 0
