"""Trainer for the ResNeXt-LSTM detector: the guide's Step 4 (`Model_and_train_csv.ipynb`) as a function.

`train(TrainConfig(...))` reads the labels CSV and the processed face folders, trains with AdamW, class
balancing, gradient accumulation, AMP by capability, an LR schedule, clipping and early stopping, and writes a
run folder (docs/design.md): the best model by a validation metric (never the test split), `last.pt` for
`resume=True`, `history.csv`, `metrics.json` and `plots/`. The same code runs under
`torchrun --nproc_per_node=N -m dfdlib train ...` with DistributedDataParallel (rank 0 writes files).

Exact resume: the sampler order is a function of (seed, epoch) (DistributedSampler), each training
item's augmentation is seeded by (seed, epoch, rank, position), and last.pt stores the remaining RNG
state (dropout), so stopping between epochs and resuming reproduces the uninterrupted weights.

`train` reads top to bottom: setup (`dfdlib.training.setup`), then per epoch `train_epoch`, `evaluate` and
one `checkpoint.end_epoch` (the run-folder writes, in their crash-safe order). Nothing is shared through
attributes: each function takes and returns values.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfdlib.clipstore import CACHE_MODES
from dfdlib.config import check_choices, config_from_dict, option
from dfdlib.training import setup as ts
from dfdlib.training.amp import MODES as AMP_MODES
from dfdlib.training.amp import choose_amp
from dfdlib.training.selfblend import FAKES
from dfdlib.training.setup import gather
from dfdlib.utils import ensure_writable, seed_everything
from dfdlib.video import SAMPLING

LR_PRETRAINED, LR_SCRATCH = 1e-4, 1e-3  # the default peak learning rate: fine-tuning vs a backbone from scratch


@dataclass
class TrainConfig:
    """Settings of one training run; each field's help is in its metadata (`dfdlib.config.config_help`)."""

    dataset_path: str = option("data/processed", "processed root: <root>/<real|fake>/<video>/frame_<i>.jpg")
    csv_file: str = option("labels/labels.csv", "labels CSV: filename,label[,split,...] (split made if absent)")
    out_dir: str = option("runs/train", "run folder: model file, last.pt, history.csv, metrics.json, plots/")
    sequence_length: int = option(20, "frames per clip (the guide: 10, 20 or 100)")
    batch_size: int = option(4, "clips per step per process (the guide's default)")
    learning_rate: float | None = option(None, "peak AdamW learning rate; none = 1e-4 with a pretrained backbone, "
                                         "1e-3 from scratch (weights none: at 1e-4 a random backbone learns nothing)")
    num_epochs: int = option(50, "upper bound; early stopping may end sooner")
    device: str = option("auto", "'auto' = cuda > mps > cpu; or 'cuda', 'cuda:1', 'cpu'")
    weight_decay: float = option(1e-4, "AdamW decoupled weight decay")
    num_workers: int = option(2, "DataLoader worker processes (0 = load in the main process)")
    seed: int = option(42, "seeds init, split (if made here), sampler, augmentation, dropout")
    loss: str = option("ce", "'ce': 2 logits + cross-entropy; 'bce': 1 logit + BCE-with-logits", ("ce", "bce"))
    balance: str = option("weighted", "class imbalance: 'weighted' loss, balanced 'sampler', or 'none'",
                          ("weighted", "sampler", "none"))
    grad_accum: int = option(1, "micro-batches per optimizer step (effective batch = batch*accum)")
    amp: str = option("auto", "'auto' = bf16 on GPUs with compute capability >= 8.0 and CPUs with AVX512-BF16/AMX, "
                      "fp16 + GradScaler on older GPUs, else off; or 'bf16', 'fp16', 'off'", AMP_MODES)
    channels_last: bool = option(True, "NHWC convolutions on CUDA (faster with AMP); ignored on CPU")
    lr_schedule: str = option("cosine", "per-step schedule: 'cosine' (after warm-up), 'onecycle', 'none'",
                              ("cosine", "onecycle", "none"))
    warmup_epochs: int = option(1, "linear warm-up length for 'cosine' / ramp length for 'onecycle'")
    grad_clip: float = option(1.0, "max gradient norm (0 = no clipping); LSTMs can spike")
    early_stopping: int = option(10, "stop after this many epochs without improvement (0 = off)")
    monitor: str = option("val_auc", "best-model metric: 'val_auc' (ties: lower val loss) or 'val_loss'",
                          ("val_auc", "val_loss"))
    backbone: str = option("resnext50_32x4d", "frame CNN: 'resnext50_32x4d', 'resnet18' or 'tiny' (tests, CPU demo)")
    weights: str | None = option("imagenet", "backbone init: none, 'imagenet' (torch cache) or a .pth path")
    hidden_dim: int = option(2048, "LSTM hidden size")
    lstm_layers: int = option(1, "stacked LSTM layers")
    bidirectional: bool = option(False, "bidirectional LSTM")
    dropout: float = option(0.4, "dropout before the classifier")
    image_size: int = option(224, "crops are resized to image_size x image_size")
    sampling: str = option("even", "which frames form a clip: 'even' spread or the 'first' N", SAMPLING)
    augment: bool = option(True, "train-time augmentation (flip, crop, jitter, rotation, JPEG/blur), same for all "
                           "frames of a clip")
    augment_on: str = option("auto", "where augmentation runs: 'device' (the training device, batched; workers "
                             "only decode), 'workers' (DataLoader workers, CPU), 'auto' = device on CUDA else "
                             "workers", ("auto", "device", "workers"))
    cache: str = option("disk", "decoded clips: 'disk' (one uint8 store at image_size, shared by all workers; "
                        "memory does not grow with the data), 'ram' (a copy per worker), 'off'", CACHE_MODES)
    cache_dir: str | None = option(None, "clip store folder (none = $DFD_CLIP_STORE or ~/.cache/dfdlib/clips)")
    resume: bool = option(False, "continue from <out_dir>/last.pt (exactly, see dfdlib.training.loop)")
    deterministic: bool = option(False, "deterministic kernels (slower); exact-resume tests use it")
    max_steps_per_epoch: int | None = option(None, "cap optimizer steps per epoch (smoke runs); none = full epoch")
    show_progress: bool = option(True, "tqdm bar per epoch")
    freeze_backbone_epochs: int = option(0, "train only LSTM + head for the first N epochs (small datasets)")
    fakes: str = option("none", "train-split fakes: 'none', 'self-blend' (real clips + their self-blends, "
                        "dfdlib.training.selfblend), 'mixed' (the split's fakes too)", FAKES)

    def __post_init__(self):
        self.cache = {True: "disk", False: "off"}.get(self.cache, self.cache)  # configs saved before 'disk'
        for k, v in dataclasses.asdict(self).items():
            if isinstance(v, os.PathLike):
                setattr(self, k, os.fspath(v))
        if isinstance(self.weights, str) and self.weights.lower() in ("", "none", "null"):
            self.weights = None
        if self.learning_rate is None:
            self.learning_rate = LR_PRETRAINED if self.weights else LR_SCRATCH
        check_choices(self)
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
        return config_from_dict(cls, d)

    def to_dict(self) -> dict:
        """Plain dict (paths as str) for JSON, model metadata and last.pt."""
        return {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class TrainResult:
    history: object            # pd.DataFrame: one row per epoch (the keys of HISTORY_KEYS)
    best_model_path: Path      # model_<seq>_acc_<val_acc>_final_data.pt (best validation epoch)
    last_path: Path            # last.pt: full state for resume=True
    test_metrics: dict | None  # compute_metrics on the test split at `threshold`; None without a test split
    val_metrics: dict          # validation metrics of the best epoch (threshold 0.5)
    run_dir: Path              # the run folder (= config.out_dir)
    threshold: float           # decision threshold chosen on validation (Youden's J), stored in the model file


# history.csv columns = the keys of the dict given to train(on_epoch=...) after each epoch
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "lr", "seconds", "clips_per_s",
                "data_wait")


# ------------------------------------------------------------------------------------------ one epoch
def train_epoch(model, net, loader, optimizer, scheduler, scaler, loss_fn, *, device, amp_dtype, batches: int,
                grad_accum: int, grad_clip: float, prepare=None, bar=None, world: int = 1) -> dict:
    """One pass over the training loader (`batches` micro-batches); returns {"loss", "acc", "clips_per_s",
    "data_wait"} over all ranks. `net` is the model to call (DDP wrapper or the model), `prepare(x, seeds)`
    turns a loader batch into the model input on the device (augmentation on the device), `bar` a tqdm bar.
    data_wait is the fraction of the epoch's wall time spent waiting for the loader."""
    import torch


    sums = torch.zeros(2, device=device, dtype=torch.float64)  # on the device: no host sync per step
    seen, wait = 0, 0.0
    params = [p for p in model.parameters() if p.requires_grad]
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    optimizer.zero_grad(set_to_none=True)
    batch_iter = iter(loader)
    t0 = time.perf_counter()
    for i in range(batches):
        t_wait = time.perf_counter()
        x, y, n, seeds = next(batch_iter)
        wait += time.perf_counter() - t_wait
        x, y, n = x.to(device, non_blocking=True), y.to(device, non_blocking=True), n.to(device, non_blocking=True)
        if prepare is not None:
            x = prepare(x, seeds)
        start = (i // grad_accum) * grad_accum
        group = min(grad_accum, batches - start)
        step_now = i + 1 == start + group
        no_sync = getattr(net, "no_sync", None)  # DDP: all-reduce gradients only on the optimizer step
        with contextlib.nullcontext() if (no_sync is None or step_now) else no_sync():
            with autocast:
                logits = net(x, lengths=n)
            loss = loss_fn(logits, y)
            scaler.scale(loss / group).backward()
        if step_now:
            if grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if not (isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
                    and scheduler.last_epoch + 1 >= scheduler.total_steps):
                scheduler.step()
        with torch.no_grad():
            pred = (model.prob_fake(logits.detach()) >= 0.5).long()
            sums += torch.stack([loss.detach().double() * len(y), (pred == y).sum().double()])
            seen += len(y)
        if bar is not None:
            bar.update()
            if not bar.disable and (i % 10 == 0 or i + 1 == batches):
                frac = wait / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{sums[0].item() / seen:.4f}", data_wait=f"{100 * frac:.0f}%")
    secs = time.perf_counter() - t0
    loss_sum, correct = sums.tolist()
    tot = np.sum(gather((loss_sum, correct, seen, secs, wait), world), axis=0)
    # plain floats: history rows go into last.pt, which is read back with weights_only=True
    return {"loss": float(tot[0] / max(tot[2], 1)), "acc": float(tot[1] / max(tot[2], 1)),
            "clips_per_s": float(tot[2] / (tot[3] / world)), "data_wait": float(tot[4] / max(tot[3], 1e-9))}


def evaluate(model, loader, n_items: int, loss_sum_fn, *, device, amp_dtype, rank: int = 0, world: int = 1):
    """P(fake) for every item (gathered from all ranks, in dataset order) and the mean plain loss:
    returns (labels, prob_fake, mean loss)."""
    import torch


    model.eval()
    ys, ps, loss_sum = [], [], 0.0
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with torch.no_grad():
        for x, y, n in loader:
            x, y = x.to(device, non_blocking=True), y.to(device)
            with autocast:
                logits = model(x, lengths=n.to(device))
            logits = logits.float()
            loss_sum += float(loss_sum_fn(logits, y))
            ys += y.tolist()
            ps += model.prob_fake(logits).tolist()
    parts = gather((list(range(rank, n_items, world)), ys, ps, loss_sum), world)
    order = np.concatenate([p[0] for p in parts]).astype(int)
    y_all, p_all = np.empty(n_items, dtype=np.int64), np.empty(n_items)
    y_all[order] = np.concatenate([p[1] for p in parts])
    p_all[order] = np.concatenate([p[2] for p in parts])
    return y_all, p_all, float(sum(p[3] for p in parts) / max(n_items, 1))


# ------------------------------------------------------------------------------------------ the run
def train(config: TrainConfig | dict | None = None, *, on_epoch=None, **overrides) -> TrainResult:
    """Train a ResNeXt-LSTM on a labels CSV + processed folders and write the run folder.

    Takes a TrainConfig (or dict of its fields), fields overridable by keyword, and `on_epoch(history)`,
    called on rank 0 after each epoch (once its files are saved) with the history rows so far (dicts with
    the keys of HISTORY_KEYS; a notebook redraws its curves there). Returns a TrainResult.
    Raises FileNotFoundError (CSV / processed root), LabelsError (bad rows), ValueError (bad settings,
    missing val split, resume mismatch) and RuntimeError for CUDA out of memory (with what to lower).
    Under torchrun (WORLD_SIZE > 1) it runs DistributedDataParallel; rank 0 writes files and prints.
    """
    import torch
    from tqdm.auto import tqdm

    from dfdlib.data import augment_batch, clip_transforms
    from dfdlib.metrics import best_threshold, compute_metrics
    from dfdlib.training import checkpoint as ck

    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config or {}))
    if overrides:
        cfg = TrainConfig.from_dict(cfg.to_dict() | overrides)
    rank, world, local_rank = ts.rank_info()
    main = rank == 0

    def log(msg: str) -> None:
        if main:
            tqdm.write(msg)

    run_dir, last_path = Path(cfg.out_dir), Path(cfg.out_dir) / "last.pt"
    device, own_group = ts.setup_device(cfg.device, world, local_rank)
    try:
        with ts.torch_settings(cfg, device, world):
            # ---- data
            df = ts.read_labels(cfg, log)
            preprocess = ts.preprocess_settings(df, cfg.dataset_path)
            seed_everything(cfg.seed)
            tfs = clip_transforms(cfg.image_size, cfg.augment, cfg.augment_on, device)
            data = ts.build_data(df, cfg, tfs, device, rank, world, log=log)

            def prepare(x, seeds):  # uint8 clips → augmented, normalised clips, on the training device
                return augment_batch(x, seeds, tfs.device)

            # ---- model, losses, precision, optimizer, schedule
            resuming = cfg.resume and last_path.exists()
            if cfg.resume and not resuming:
                log(f"resume=True but {last_path} does not exist: starting a new run")
            model = ts.build_model(cfg, device, weights=None if resuming else cfg.weights)
            loss_fn, eval_loss_sum = ts.build_losses(cfg, data.train_ds.labels, device)
            amp, amp_reason = choose_amp(cfg.amp, device.type)
            amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
            scaler = torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu", enabled=amp == "fp16")
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            batches, steps = ts.epoch_length(len(data.train_loader), cfg)
            scheduler = ts.build_schedule(cfg, optimizer, steps)
            torch.manual_seed(cfg.seed + rank)  # dropout differs across ranks; init was identical

            # ---- a new run, or the state after the last finished epoch
            best, history, stopped, start = None, [], False, 0
            if resuming:
                state = ck.load_last(last_path, cfg, device)
                ck.restore(state, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, rank=rank,
                           world=world, device=device)
                best, history, stopped, start = state["best"], list(state["history"]), bool(state["stopped"]), \
                    int(state["epoch"])
                if main:
                    ck.tidy_best_models(run_dir, state)
                    ck.write_history(history, run_dir)  # a history.csv that missed last.pt's last row
                log(f"resuming {run_dir} after epoch {start}/{cfg.num_epochs}")
            elif main:
                ck.clear_old_run(run_dir, log)
            if main:
                ensure_writable(run_dir, "run folder (out_dir)")  # before the first epoch, not after it
                ck.remove_stale_temps(run_dir)
                log(f"training on {device} ({world} process{'es' if world > 1 else ''}): {len(data.train_ds)} train"
                    f" / {len(data.val_ds)} val / {len(data.test_ds) if data.test_ds else 0} test clips, amp={amp} "
                    f"({amp_reason}), augmentation {'on the device' if tfs.device else 'in the workers'}")

            # ---- epochs
            since_best = history[-1]["epoch"] - best["epoch"] if history and best else 0
            frozen, net = None, model
            for epoch in range(start, cfg.num_epochs):
                if stopped:
                    break
                t0 = time.perf_counter()
                if (epoch < cfg.freeze_backbone_epochs) != frozen:
                    frozen = epoch < cfg.freeze_backbone_epochs
                    net = ts.set_frozen(model, frozen, device, world)
                net.train()
                if frozen:
                    model.backbone.eval()  # frozen BatchNorm statistics too
                data.sampler.set_epoch(epoch)
                bar = tqdm(total=batches, desc=f"Epoch {epoch + 1}/{cfg.num_epochs}", unit="batch", leave=False,
                           disable=not (cfg.show_progress and main))
                try:
                    stats = train_epoch(model, net, data.train_loader, optimizer, scheduler, scaler, loss_fn,
                                        device=device, amp_dtype=amp_dtype, batches=batches,
                                        grad_accum=cfg.grad_accum, grad_clip=cfg.grad_clip,
                                        prepare=prepare if tfs.device else None, bar=bar, world=world)
                    y, p, val_loss = evaluate(model, data.val_loader, len(data.val_ds), eval_loss_sum, device=device,
                                              amp_dtype=amp_dtype, rank=rank, world=world)
                except torch.OutOfMemoryError as e:
                    optimizer.zero_grad(set_to_none=True)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    raise RuntimeError(ts.oom_message(cfg, epoch, last_path)) from e
                finally:
                    bar.close()
                m = compute_metrics(y, p)
                row = {"epoch": epoch + 1, "train_loss": stats["loss"], "train_acc": stats["acc"], "val_loss": val_loss,
                       "val_acc": m["accuracy"], "val_auc": m["roc_auc"], "lr": optimizer.param_groups[0]["lr"],
                       "seconds": round(time.perf_counter() - t0, 3), "clips_per_s": round(stats["clips_per_s"], 2),
                       "data_wait": round(stats["data_wait"], 4)}
                history.append(row)
                score = ts.score(row, cfg.monitor)
                improved = best is None or score > best["score"]
                since_best = 0 if improved else since_best + 1
                stopped = bool(cfg.early_stopping) and since_best >= cfg.early_stopping
                new_best = {"score": score, "epoch": row["epoch"], "threshold": best_threshold(y, p),
                            "metrics": dict(m, epoch=row["epoch"])} if improved else None
                best = ck.end_epoch(run_dir, epoch, new_best, best=best, history=history, stopped=stopped, cfg=cfg,
                                    model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                    preprocess=preprocess, device=device, rank=rank, world=world)
                auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
                log(f"Epoch {epoch + 1}/{cfg.num_epochs}  Loss: {stats['loss']:.4f} | Val_Loss: {val_loss:.4f} | "
                    f"Accuracy: {100 * m['accuracy']:.1f}% | Val_AUC: {auc}" + ("  (best, saved)" if improved else ""))
                if main and on_epoch is not None:
                    on_epoch(list(history))
                if stopped:
                    log(f"early stopping: no {cfg.monitor} improvement for {cfg.early_stopping} epochs")
                if (stall := ts.stalled(history, cfg)) is not None:
                    log(stall)

            # ---- the best model on the test split (or validation), metrics.json and plots
            if best is None:
                raise RuntimeError(f"no finished epoch in {run_dir}; nothing to evaluate")
            if world > 1:
                torch.distributed.barrier()  # rank 0 has written the best model file
            model.load_state_dict(torch.load(best["path"], map_location=device, weights_only=True)["state_dict"])
            thr = float(best["threshold"])
            split_ds, split_loader = (data.test_ds, data.test_loader) if data.test_ds else (data.val_ds, data.val_loader)
            y, p, _ = evaluate(model, split_loader, len(split_ds), eval_loss_sum, device=device, amp_dtype=amp_dtype,
                               rank=rank, world=world)
            test = compute_metrics(y, p, threshold=thr) if data.test_ds else None
            import pandas as pd

            frame = pd.DataFrame(history)
            if main:
                ck.write_report(run_dir, frame, best, test, y, p, cfg.monitor, log)
            return TrainResult(history=frame, best_model_path=Path(best["path"]), last_path=last_path,
                               test_metrics=test, val_metrics=best["metrics"], run_dir=run_dir, threshold=thr)
    finally:
        ts.close_process_group(own_group)
