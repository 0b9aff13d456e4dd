"""The run folder's files, as plain functions: last.pt (with every rank's RNG state), the best model file,
history.csv, metrics.json + plots, advice on failed writes, and clearing an earlier run.

Files are written through `utils.atomic_write`, so a crash or a full disk keeps the previous file.
`end_epoch` saves each epoch in the one order that resumes from every crash point: new best model file,
then last.pt naming it (and the old one as `replaced`), then history.csv and deleting the old file;
`load_last` finishes an interrupted replacement. `load_last` refuses a last.pt that is unreadable, not a dfdlib resume file,
or made with settings outside `RESUME_FREE`.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from dfdlib import __version__
from dfdlib.metrics import compute_metrics, format_metrics_table, plot_confusion, plot_history, plot_roc
from dfdlib.model import save_model
from dfdlib.training.setup import gather
from dfdlib.utils import atomic_write, write_csv

LAST_FORMAT = "dfdlib-last/1"
# Fields that may differ between a run and its resumption without changing what is being trained.
RESUME_FREE = {"resume", "num_epochs", "show_progress", "num_workers", "device", "early_stopping", "out_dir",
               "dataset_path", "csv_file", "max_steps_per_epoch", "cache_dir"}  # not `cache`: disk resizes first
BEST_GLOB = "model_*_final_data.pt"


# ---------------------------------------------------------------------------------------- RNG state
def rng_state(device) -> dict:
    """Python, numpy, torch CPU (and this CUDA device's) RNG states, as weights_only-loadable values."""
    np_state = np.random.get_state(legacy=True)
    state = {"python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device) -> None:
    v, internal, g = state["python"]
    random.setstate((v, tuple(internal), g))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


# ------------------------------------------------------------------------------------------ last.pt
def save_last(path: Path, *, epoch: int, stopped: bool, config: dict, model, optimizer, scheduler, scaler,
              best: dict | None, history: list[dict], rngs: list[dict], replaced: str | None = None) -> None:
    """Write last.pt atomically: everything `load_last` needs to continue exactly after `epoch` epochs.

    `replaced` names a previous best model file that this checkpoint no longer needs (deleted next)."""

    state = {"format": LAST_FORMAT, "epoch": epoch, "stopped": stopped, "config": config,
             "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": scaler.state_dict(), "best": best, "history": history, "rng": rngs, "replaced": replaced}
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def load_last(path: Path, cfg, device) -> dict:
    """Read and check last.pt. Returns its state dict. Raises ValueError (unreadable, not a resume file,
    settings changed), naming the file and what to do."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # truncated by a full disk, copied half, or pickled code refused by weights_only
        first = (str(e).splitlines() or [""])[0][:160]
        raise ValueError(f"{path} cannot be read ({type(e).__name__}: {first}); "
                         "delete it to start a new run, or restore it from a backup") from e
    if not isinstance(state, dict) or state.get("format") != LAST_FORMAT:
        raise ValueError(f"{path} is not a dfdlib resume file; start a new run (resume=False)")
    changed = {k: (v, getattr(cfg, k)) for k, v in state["config"].items()
               if k not in RESUME_FREE and getattr(cfg, k, v) != v}
    if changed:
        raise ValueError(f"resume=True but these settings differ from the run in {path.parent}: "
                         + ", ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in changed.items())
                         + ". Use the run's settings or start a new run in another out_dir.")
    return state


def restore(state: dict, *, model, optimizer, scheduler, scaler, rank: int, world: int, device) -> None:
    """Load last.pt's model/optimizer/schedule/scaler state and this rank's RNG state."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    rngs = state["rng"]
    set_rng_state(rngs[rank] if len(rngs) == world else rngs[0], device)


def tidy_best_models(run_dir: Path, state: dict) -> None:
    """Finish what a crash interrupted: delete the best model file last.pt replaced, and model files written
    after last.pt (a new best whose last.pt never came: the resumed epoch writes it again)."""
    keep = Path((state.get("best") or {}).get("path") or "").name
    if state.get("replaced") and Path(state["replaced"]).name != keep:
        (run_dir / Path(state["replaced"]).name).unlink(missing_ok=True)
    last = run_dir / "last.pt"
    for p in run_dir.glob(BEST_GLOB):
        if p.name != keep and last.exists() and p.stat().st_mtime_ns >= last.stat().st_mtime_ns:
            p.unlink(missing_ok=True)


def clear_old_run(run_dir: Path, log) -> Path | None:
    """A fresh run in a folder holding an earlier run moves that run's files (model, last.pt, history,
    metrics, plots) into `previous/<time>/` instead of deleting them: pressing Run all again after a Colab
    disconnect without resume=True must not lose a day of training. Returns where they went (or None)."""
    last = run_dir / "last.pt"
    if not last.exists():
        return None
    dest = run_dir / "previous" / time.strftime("%Y%m%d-%H%M%S")
    while dest.exists():
        dest = dest.with_name(dest.name + "+")
    dest.mkdir(parents=True)
    names = ["last.pt", "history.csv", "metrics.json", "plots"]
    with contextlib.suppress(Exception):
        old = torch.load(last, map_location="cpu", weights_only=True)
        names += [Path(p).name for p in ((old.get("best") or {}).get("path"), old.get("replaced")) if p]
    for name in names:
        if (run_dir / name).exists():
            os.replace(run_dir / name, dest / name)
    log(f"{run_dir} held an earlier run: its files are now in {dest} (resume=True would have continued it)")
    return dest


def remove_stale_temps(run_dir: Path) -> None:
    """Delete temp files of writes cut short by a crash (utils.atomic_write names them .<name>.*.tmp)."""
    for pattern in (".last.pt.*.tmp", ".model_*.pt.*.tmp", ".history.csv.*.tmp", ".metrics.json.*.tmp"):
        for stale in run_dir.glob(pattern):
            stale.unlink(missing_ok=True)


# ------------------------------------------------------------------------------- model, history, report
def best_model_name(sequence_length: int, accuracy: float) -> str:
    return f"model_{sequence_length}_acc_{100 * accuracy:.1f}_final_data.pt"


def save_best(run_dir: Path, model, cfg, metrics: dict, threshold: float, preprocess: dict | None) -> str:
    """Write the best model file (atomically; the previous best stays until last.pt no longer names it).
    Returns its path as str."""
    path = run_dir / best_model_name(cfg.sequence_length, metrics["accuracy"])
    meta = {"model": model.config(), "sequence_length": cfg.sequence_length, "image_size": cfg.image_size,
            "sampling": cfg.sampling, "preprocess": preprocess, "class_names": ["REAL", "FAKE"],
            "threshold": float(threshold), "metrics": metrics, "train": cfg.to_dict(),
            "dfdlib_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    save_model(path, model, meta)
    return str(path)


def remove_replaced(run_dir: Path, old: str | None, new: str) -> None:
    """Delete the previous best model file once last.pt names the new one."""
    if old and Path(old).name != Path(new).name:
        (run_dir / Path(old).name).unlink(missing_ok=True)


def write_history(history: list[dict], run_dir: Path) -> None:
    import pandas as pd


    write_csv(pd.DataFrame(history), run_dir / "history.csv")


def file_sizes(model) -> tuple[int, int]:
    """Bytes that a best model file and last.pt of `model` take (weights; last.pt adds AdamW's two moments)."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return weights, weights + 2 * params


def write_error(e: BaseException) -> OSError | None:
    """The OSError behind a failed write: itself, or the one torch.save wraps in a RuntimeError
    ("[enforce fail at inline_container.cc] unexpected pos ..."). None for an unrelated error."""
    seen = e
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    if isinstance(e, RuntimeError) and any(k in str(e) for k in ("inline_container", "file write failed")):
        return OSError(None, "the file could not be written (disk full?)")
    return None


@contextlib.contextmanager
def saving(epoch: int, run_dir: Path, model=None, written: str | None = None, saved: int | None = None):
    """A failed write (full disk, lost permissions) becomes an OSError with advice: what happened, how much
    space the run's files need, that --resume continues. Atomic writes kept the previous files; `written`
    (a best model file this epoch wrote and last.pt does not name yet) is deleted so nothing stray stays.
    `saved`: the epoch last.pt holds (default: `epoch`, the one before this)."""
    try:
        yield
    except (OSError, RuntimeError) as e:
        cause = write_error(e)
        if cause is None:
            raise
        if written:
            Path(written).unlink(missing_ok=True)
        saved = epoch if saved is None else saved
        kept = f"{run_dir / 'last.pt'} holds epoch {saved}" if saved else "no epoch had been saved yet"
        need = ""
        if model is not None:
            mb, last_mb = (b / 1e6 for b in file_sizes(model))
            free = shutil.disk_usage(run_dir).free / 1e6 if run_dir.exists() else float("nan")
            need = (f" This run needs about {mb:.0f} MB per model file and {last_mb:.0f} MB for last.pt (plus a "
                    f"temp copy of each while it is written); {free:.0f} MB are free there.")
        raise OSError(cause.errno, f"could not save epoch {epoch + 1} in {run_dir}: {cause.strerror or cause}."
                                   f"{need} Free disk space or fix the folder's permissions, then rerun with "
                                   f"resume=True (--resume) to continue; {kept}") from e


def end_epoch(run_dir: Path, epoch: int, new_best: dict | None, *, best: dict | None, history: list[dict],
              stopped: bool, cfg, model, optimizer, scheduler, scaler, preprocess: dict | None, device,
              rank: int = 0, world: int = 1) -> dict | None:
    """Save epoch `epoch` (0-based) in the run folder; every rank calls it (the RNG states are gathered from
    all ranks), rank 0 writes. `new_best` is {"score", "epoch", "threshold", "metrics"} when this epoch
    improved, else None; `best` is the best record so far (None before the first). Returns the best record
    after this epoch (with its model file's "path"). A failed write raises OSError with advice (`saving`).

    The order keeps a resumable folder at every crash point: 1. the new best model file, beside the old
    one; 2. last.pt naming it, with the old one as `replaced` (if this write fails, the new file goes);
    3. history.csv, then the old best model file is deleted."""

    replaced = None
    if new_best is not None:
        metrics = new_best["metrics"]
        with saving(epoch, run_dir, model):
            path = save_best(run_dir, model, cfg, metrics, new_best["threshold"], preprocess) if rank == 0 else \
                str(run_dir / best_model_name(cfg.sequence_length, metrics["accuracy"]))
        replaced, best = (best or {}).get("path"), dict(new_best, path=path)
    rngs = gather(rng_state(device), world)  # a collective: every rank takes part
    if rank == 0:
        written = best["path"] if new_best is not None and Path(best["path"]).name != Path(replaced or "").name \
            else None
        with saving(epoch, run_dir, model, written=written):
            save_last(run_dir / "last.pt", epoch=epoch + 1, stopped=stopped, config=cfg.to_dict(), model=model,
                      optimizer=optimizer, scheduler=scheduler, scaler=scaler, best=best, history=history,
                      rngs=rngs, replaced=replaced)
        with saving(epoch, run_dir, model, saved=epoch + 1):
            write_history(history, run_dir)
            remove_replaced(run_dir, replaced, best["path"])
    return best


def write_report(run_dir: Path, history, best: dict, test: dict | None, y, p, monitor: str, log) -> None:
    """metrics.json (test at the chosen threshold, best validation metrics) and plots/ (curves, confusion, ROC),
    and the guide's final test summary in the log."""

    thr = float(best["threshold"])
    doc = {"test": test, "val": best["metrics"], "threshold": thr, "best_epoch": best["epoch"],
           "monitor": monitor, "model": Path(best["path"]).name}
    with atomic_write(run_dir / "metrics.json") as f:
        json.dump(doc, f, indent=2)
    plots = run_dir / "plots"
    split = "test" if test else "validation"
    cm = (test or compute_metrics(y, p, threshold=thr))["confusion_matrix"]
    plot_history(history, plots / "curves.png")
    plot_confusion(cm, plots / "confusion.png", title=f"Confusion matrix ({split})")
    plot_roc(y, p, plots / "roc.png", title=f"ROC ({split})")
    if test:
        def fmt(v, spec):
            return "n/a" if v is None else format(v, spec)

        log(f"\nFinal Test Accuracy: {100 * test['accuracy']:.1f}%\nPrecision: {fmt(test['precision'], '.2f')} | "
            f"Recall: {fmt(test['recall'], '.2f')} | F1: {fmt(test['f1'], '.3f')}\n\n{format_metrics_table(test)}")
    log(f"best model: {best['path']}")
