"""Checkpoint and resume state of the trainer: last.pt (with every rank's RNG state), the best model file,
history.csv, advice on failed writes, and clearing an earlier run's files from the run folder.

`_Checkpointing` is a mixin of `dfdlib.trainer._Trainer`. Files are written by rank 0 through
`utils.atomic_write`, so a crash or a full disk keeps the previous file; `_load_last` refuses a last.pt
that is unreadable, not a dfdlib resume file, or made with settings outside `_RESUME_FREE`.
"""
from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import numpy as np

LAST_FORMAT = "dfdlib-last/1"
# Fields that may differ between a run and its resumption without changing what is being trained.
_RESUME_FREE = {"resume", "num_epochs", "show_progress", "num_workers", "device", "early_stopping", "out_dir",
                "dataset_path", "csv_file", "max_steps_per_epoch", "cache"}


class _Checkpointing:
    """Mixin of `_Trainer`: save/load last.pt and RNG state, write the best model and history.csv."""

    # ---- state
    def _rng_state(self) -> dict:
        torch = self.torch
        np_state = np.random.get_state(legacy=True)
        state = {"python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                 "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _set_rng_state(self, state: dict) -> None:
        torch = self.torch
        v, internal, g = state["python"]
        random.setstate((v, tuple(internal), g))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def _save_last(self, epoch: int, stopped: bool) -> None:
        rngs = self._gather(self._rng_state())  # collective: every rank takes part, rank 0 writes
        if not self.main:
            return
        from .utils import atomic_write

        state = {
            "format": LAST_FORMAT, "epoch": epoch, "stopped": stopped, "config": self.cfg.to_dict(),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "best": self.best, "history": self.history, "rng": rngs,
        }
        with atomic_write(self.last_path, "wb") as f:
            self.torch.save(state, f)

    def _load_last(self) -> int:
        try:
            state = self.torch.load(self.last_path, map_location=self.device, weights_only=True)
        except Exception as e:  # truncated by a full disk, copied half, or pickled code refused by weights_only
            first = (str(e).splitlines() or [""])[0][:160]
            raise ValueError(f"{self.last_path} cannot be read ({type(e).__name__}: {first}); "
                             "delete it to start a new run, or restore it from a backup") from e
        if not isinstance(state, dict) or state.get("format") != LAST_FORMAT:
            raise ValueError(f"{self.last_path} is not a dfdlib resume file; start a new run (resume=False)")
        changed = {k: (v, getattr(self.cfg, k)) for k, v in state["config"].items()
                   if k not in _RESUME_FREE and getattr(self.cfg, k, v) != v}
        if changed:
            raise ValueError(f"resume=True but these settings differ from the run in {self.run_dir}: "
                             + ", ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in changed.items())
                             + ". Use the run's settings or start a new run in another out_dir.")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.best, self.history = state["best"], list(state["history"])
        rngs = state["rng"]
        self._set_rng_state(rngs[self.rank] if len(rngs) == self.world else rngs[0])
        self.stopped = bool(state["stopped"])
        self.log(f"resuming {self.run_dir} after epoch {state['epoch']}/{self.cfg.num_epochs}")
        return int(state["epoch"])

    def _clear_old_run(self) -> None:
        """A fresh run in a folder holding an earlier run replaces that run's files (not other files)."""
        if not self.main or not self.last_path.exists():
            return
        self.log(f"{self.run_dir} holds an earlier run: starting a new one (resume=True would continue it)")
        with contextlib.suppress(Exception):
            old = self.torch.load(self.last_path, map_location="cpu", weights_only=True)
            if old.get("best", {}).get("path"):
                (self.run_dir / Path(old["best"]["path"]).name).unlink(missing_ok=True)
        for name in ("last.pt", "history.csv", "metrics.json"):
            (self.run_dir / name).unlink(missing_ok=True)

    def _save_best(self, row: dict, metrics: dict, threshold: float) -> str:
        import dfdlib

        from .model import save_model

        cfg = self.cfg
        name = f"model_{cfg.sequence_length}_acc_{100 * metrics['accuracy']:.1f}_final_data.pt"
        if self.main:
            meta = {
                "model": self.model.config(), "sequence_length": cfg.sequence_length, "image_size": cfg.image_size,
                "sampling": cfg.sampling, "preprocess": self.preprocess, "class_names": ["REAL", "FAKE"],
                "threshold": float(threshold), "metrics": metrics, "train": cfg.to_dict(),
                "dfdlib_version": dfdlib.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            save_model(self.run_dir / name, self.model, meta)
        return str(self.run_dir / name)

    def _drop_replaced_best(self, replaced: str | None) -> None:
        """Deletes the previous best model, only once last.pt names the new one.

        Order of writes per improved epoch: new best model, history, last.pt, then this. A crash at any
        point leaves last.pt naming a best model that exists (at worst an extra old file stays behind).
        """
        if self.main and replaced and Path(replaced).name != Path(self.best["path"]).name:
            (self.run_dir / Path(replaced).name).unlink(missing_ok=True)

    def _write_history(self) -> None:
        if self.main:
            import pandas as pd

            from .utils import write_csv

            write_csv(pd.DataFrame(self.history), self.run_dir / "history.csv")

    @contextlib.contextmanager
    def _saving(self, epoch: int):
        """A failed write (full disk, lost permissions) becomes advice; atomic writes kept the previous files."""
        try:
            yield
        except OSError as e:
            kept = f"{self.last_path} still holds epoch {epoch}" if epoch else "no epoch had been saved yet"
            raise OSError(e.errno, f"could not save epoch {epoch + 1} in {self.run_dir} ({e.strerror or e}). Free "
                                   "disk space or fix the folder's permissions, then rerun with resume=True "
                                   f"(--resume); {kept}") from e
