"""Models as the predict and evaluate stages take them: a model file, a loaded model, or an Ensemble.

Shared by verdict.py and evaluate.py (both build on it): turning what a user passes into a loaded model,
an Ensemble's members, and the threshold and sequence length a model file records.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


class Ensemble:
    """Several model files used as one: prob_fake is the mean of the members' probabilities.

    Takes models from load_model and/or paths. Members keep their own preprocessing and image size;
    the sequence length is the first member's (a warning says so when they differ). `.meta` is the
    first member's meta with `members` = their paths and `threshold` = the mean of the members' thresholds,
    marked uncalibrated in `threshold_source` until `calibrate_threshold` chooses one on validation data.
    """

    def __init__(self, models_or_paths, device: str = "auto"):
        items = list(models_or_paths)
        if not items:
            raise ValueError("an Ensemble needs at least one model (file paths or loaded models)")
        self.members = [as_model(m, device) for m in items]
        seqs = [m.meta.get("sequence_length") for m in self.members]
        if len(set(seqs)) > 1:
            warnings.warn(f"ensemble members were trained with sequence lengths {seqs}; all use {seqs[0]} "
                          "(the first); pass sequence_length= to choose", stacklevel=2)
        self.meta = dict(self.members[0].meta)
        # Averaging probabilities moves their distribution: the members' thresholds do not carry over.
        # Until calibrate_threshold() runs on validation data, the mean of theirs is used and said to be so.
        self.meta["threshold"] = float(np.mean([threshold_of(m.meta) for m in self.members]))
        self.meta["threshold_source"] = ("uncalibrated: mean of the members' thresholds (run "
                                         "dfdlib.calibrate_threshold(ensemble, labels_csv, processed_root) "
                                         "to choose one on the averaged validation scores)")
        self.meta["members"] = [str(m.meta.get("path", f"member {i}")) for i, m in enumerate(self.members)]

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"Ensemble({self.meta['members']})"


def as_model(model, device: str = "auto"):
    """A loaded model (or Ensemble) from a model, a path, or a list of paths/models."""
    if isinstance(model, (str, Path)):
        from dfdlib.model import load_model

        loaded = load_model(model, device=device)
        loaded.meta.setdefault("path", str(model))
        return loaded
    if isinstance(model, (list, tuple)):
        return as_model(model[0], device) if len(model) == 1 else Ensemble(model, device)
    if not hasattr(model, "meta"):
        raise TypeError(f"expected a model from dfdlib.load_model, a model file path or an Ensemble, "
                        f"got {type(model).__name__}")
    return model


def members_of(model) -> list:
    return model.members if isinstance(model, Ensemble) else [model]


def threshold_of(meta: dict) -> float:
    value = meta.get("threshold")
    return 0.5 if value is None else float(value)


def sequence_length_of(meta: dict, sequence_length: int | None) -> int:
    if sequence_length is not None and int(sequence_length) < 1:
        raise ValueError(f"sequence_length must be >= 1 (frames per clip), got {sequence_length}; leave it unset "
                         "to use the model's")
    seq = sequence_length or meta.get("sequence_length")
    if not seq:
        raise ValueError(f"the model file {meta.get('path', '')} does not record its sequence length; pass "
                         "sequence_length= (or --sequence-length) with the value it was trained with")
    return int(seq)
