"""ResNeXt50 + LSTM video deepfake detector and model files (backbones: `dfdlib.backbones`).

The architecture follows the original project (Güera & Delp, "Deepfake video detection using recurrent
neural networks", AVSS 2018: a CNN per frame, an LSTM over the frame features, a linear classifier):
backbone → global average pool → (B, T, C) → LSTM (batch_first) → mean over time → dropout → Linear.

`LegacyResNeXtLSTM` reproduces the original project's class bit for bit so its published checkpoints
(`model_84_acc_10_frames_final_data.pt`, ...) can be evaluated beside models trained here; see its docstring
for the quirks it keeps. `load_model` tells the two file layouts apart by their keys.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
from torch import nn

from dfdlib.backbones import create_backbone, describe_key_diff, key_diff
from dfdlib.data import IMAGENET_MEAN, IMAGENET_STD
from dfdlib.utils import atomic_write, resolve_device

MODEL_FORMAT = "dfdlib-model/1"


# -------------------------------------------------------------------------------------------------- models
def _prob_fake(logits: torch.Tensor, class_names: list[str]) -> torch.Tensor:
    if logits.ndim == 1 or logits.shape[-1] == 1:  # one logit trained with BCE: sigmoid = P(fake)
        return torch.sigmoid(logits.float().reshape(-1))
    upper = [str(c).upper() for c in class_names]
    if "FAKE" not in upper or len(upper) != logits.shape[-1]:
        raise ValueError(f"class_names {class_names} must have {logits.shape[-1]} entries, one of them 'FAKE'")
    return logits.float().softmax(-1)[:, upper.index("FAKE")]


def frame_mask(x: torch.Tensor) -> torch.Tensor:
    """(B, T) True for real frames of clips (B, T, 3, H, W): a padding frame is all zeros (data.pad_frames).

    No real frame is: a zero model input needs every pixel exactly at the ImageNet mean, which no 8-bit
    value is (0.485 * 255 = 123.7).
    """
    return x.flatten(2).abs().amax(2) > 0


def lengths_mask(lengths, t: int, device) -> torch.Tensor:
    """(B, T) True for the first lengths[i] frames of each clip."""
    n = torch.as_tensor(lengths, device=device).clamp(1, t)
    return torch.arange(t, device=device)[None, :] < n[:, None]


def masked_mean(out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T, F) over the real frames of each clip only (mask (B, T))."""
    w = mask.unsqueeze(-1).to(out.dtype)
    return (out * w).sum(1) / w.sum(1).clamp_min(1)


class _ClipClassifier(nn.Module):
    """Shared behaviour: input checks, channels_last, class names and P(fake)."""

    default_class_names: list[str] = ["REAL", "FAKE"]

    def __init__(self):
        super().__init__()
        self.meta: dict = {}  # set by load_model: the model file's metadata

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names") or self.default_class_names)

    def prob_fake(self, logits: torch.Tensor) -> torch.Tensor:
        """Takes logits (B, num_classes); returns P(fake) (B,) respecting `class_names` (sigmoid for 1 logit)."""
        return _prob_fake(logits, self.class_names)

    def _frames(self, x: torch.Tensor, feature_net: nn.Module) -> tuple[torch.Tensor, int, int]:
        if x.ndim != 5:
            raise ValueError(f"expected a batch of clips (B, T, 3, H, W), got shape {tuple(x.shape)}; "
                             "for one clip use clip.unsqueeze(0)")
        b, t = x.shape[:2]
        frames = x.reshape(b * t, *x.shape[2:])
        first_conv = next(p for p in feature_net.parameters() if p.ndim == 4)
        if first_conv.is_contiguous(memory_format=torch.channels_last) and not first_conv.is_contiguous():
            # model.to(memory_format=torch.channels_last) was called: feed matching input for fast convs
            frames = frames.contiguous(memory_format=torch.channels_last)
        return frames, b, t

    def config(self) -> dict:
        """The constructor kwargs (plain types), stored as meta["model"] so load_model can rebuild it."""
        return dict(self._config)


class ResNeXtLSTM(_ClipClassifier):
    """Frame CNN → LSTM over time → linear classifier.

    Takes clips (B, T, 3, H, W), RGB normalised with ImageNet mean/std; `forward` returns logits
    (B, num_classes) — or (logits, feature map (B*T, C, h, w)) with return_features=True, for Grad-CAM.
    `num_classes=1` gives one logit for BCE. Class index 0 = REAL, 1 = FAKE (labels CSV convention).
    `latent_dim` different from the backbone's feature size adds a Linear projection before the LSTM.
    `weights` (None | "imagenet" | path) only initialises the backbone and is not part of `config()`.
    """

    def __init__(self, num_classes: int = 2, latent_dim: int | None = None, hidden_dim: int = 2048,
                 lstm_layers: int = 1, bidirectional: bool = False, dropout: float = 0.4,
                 backbone: str = "resnext50_32x4d", weights: str | Path | None = None):
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone, feat_dim = create_backbone(backbone, weights)
        latent_dim = feat_dim if latent_dim is None else int(latent_dim)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Identity() if latent_dim == feat_dim else nn.Linear(feat_dim, latent_dim)
        self.lstm = nn.LSTM(latent_dim, hidden_dim, lstm_layers, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim * (2 if bidirectional else 1), num_classes)
        self._config = dict(num_classes=int(num_classes), latent_dim=latent_dim, hidden_dim=int(hidden_dim),
                            lstm_layers=int(lstm_layers), bidirectional=bool(bidirectional),
                            dropout=float(dropout), backbone=str(backbone))

    def forward(self, x: torch.Tensor, return_features: bool = False, lengths=None):
        """`lengths` (B,): real frames per clip, when the caller knows them (the trainer); else padding
        frames are found as all-zero frames (frame_mask). Padding stays out of the LSTM and its mean."""
        frames, b, t = self._frames(x, self.backbone)
        fmap = self.backbone(frames)
        feats = self.proj(self.avgpool(fmap).flatten(1).view(b, t, -1))
        mask = frame_mask(x) if lengths is None else lengths_mask(lengths, t, x.device)
        if bool(mask.all()):
            out, _ = self.lstm(feats)
            pooled = out.mean(dim=1)
        else:  # a short clip's padding frames: the LSTM stops at its last real frame, the mean skips them
            from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

            lengths = mask.sum(1).clamp_min(1).cpu()
            packed = pack_padded_sequence(feats, lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=t)
            pooled = masked_mean(out, mask)
        logits = self.fc(self.dropout(pooled))
        return (logits, fmap) if return_features else logits


# The original fed OpenCV's BGR frames through RGB ImageNet statistics; legacy models expect exactly that.


def _rgb_to_legacy_input(x: torch.Tensor) -> torch.Tensor:
    """RGB-normalised clips → what the original model saw: BGR pixels normalised with the RGB mean/std."""
    shape = (1,) * (x.ndim - 3) + (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(shape)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(shape)
    return ((x * std + mean).flip(-3) - mean) / std


class LegacyResNeXtLSTM(_ClipClassifier):
    """The original project's model, kept faithful so its published checkpoints give their published results.

    Quirks kept on purpose (documented, not fixed):
    - `nn.LSTM(latent_dim, hidden_dim, lstm_layers, bidirectional)` passes `bidirectional` as the 4th
      positional argument, which is `bias`: the LSTM has no bias (`lstm_bias=False`).
    - the LSTM is not batch_first, so it reads (B, T, F) as (time=B, batch=T). With one clip (B=1, as the
      original app ran) every frame is a one-step sequence from a zero state: a per-frame classifier whose
      outputs are averaged. `per_clip=True` (default) computes exactly that for each clip of a batch, so a
      clip's result does not depend on its batch mates; `per_clip=False` reproduces the batch-coupled
      computation of the original training notebook.
    - dropout is applied after the final Linear (identity in eval mode).
    - classes: index 0 = FAKE, 1 = REAL (`class_names = ["FAKE", "REAL"]`); `prob_fake` handles it.
    - the original fed BGR frames normalised with RGB ImageNet statistics. With `bgr_input=True` (default)
      `forward` takes the same RGB-normalised input as ResNeXtLSTM and converts it, so callers need not care.
    Input 112x112 face crops in the original. `forward` returns logits only (the original also returned
    the feature map; use return_features=True to get it).
    """

    default_class_names = ["FAKE", "REAL"]

    def __init__(self, num_classes: int = 2, latent_dim: int = 2048, hidden_dim: int = 2048, lstm_layers: int = 1,
                 lstm_bias: bool = False, per_clip: bool = True, bgr_input: bool = True):
        super().__init__()
        import torchvision.models as tvm

        self.model = nn.Sequential(*list(tvm.resnext50_32x4d(weights=None).children())[:-2])
        self.lstm = nn.LSTM(latent_dim, hidden_dim, lstm_layers, lstm_bias)
        self.relu = nn.LeakyReLU()  # defined but unused in the original forward
        self.dp = nn.Dropout(0.4)
        self.linear1 = nn.Linear(hidden_dim, num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.per_clip, self.bgr_input = bool(per_clip), bool(bgr_input)
        self._config = dict(num_classes=int(num_classes), latent_dim=int(latent_dim), hidden_dim=int(hidden_dim),
                            lstm_layers=int(lstm_layers), lstm_bias=bool(lstm_bias), per_clip=self.per_clip,
                            bgr_input=self.bgr_input)

    @property
    def backbone(self) -> nn.Module:  # same name as ResNeXtLSTM's, for Grad-CAM and freezing
        return self.model

    def forward(self, x: torch.Tensor, return_features: bool = False, lengths=None):
        if lengths is not None:
            mask = lengths_mask(lengths, x.shape[1], x.device)
        else:
            mask = frame_mask(x) if x.ndim == 5 else None  # before the BGR conversion moves the zeros
        if self.bgr_input:
            x = _rgb_to_legacy_input(x)
        frames, b, t = self._frames(x, self.model)
        fmap = self.model(frames)
        feats = self.avgpool(fmap).view(b, t, -1)
        if self.per_clip:  # = running each clip alone (B=1): sequence length 1, T frames as the LSTM batch
            out = self.lstm(feats.reshape(1, b * t, -1), None)[0].view(b, t, -1)
        else:
            out = self.lstm(feats, None)[0]
        logits = self.dp(self.linear1(masked_mean(out, mask)))
        return (logits, fmap) if return_features else logits


# ----------------------------------------------------------------------------------------------- files
def _check_plain(obj, where: str = "meta"):
    """Return a copy of `obj` made of plain Python types (tuples → lists); raise ValueError naming the bad entry."""
    if obj is None or type(obj) in (str, int, float, bool):
        return obj
    if type(obj) in (list, tuple):
        return [_check_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if type(obj) is dict:
        out = {}
        for k, v in obj.items():
            if type(k) is not str:
                raise ValueError(f"{where} has a non-string key {k!r}; model metadata keys must be str")
            out[k] = _check_plain(v, f"{where}[{k!r}]")
        return out
    raise ValueError(
        f"{where} is {type(obj).__module__}.{type(obj).__qualname__} ({obj!r:.60}); model metadata must hold only "
        "str/int/float/bool/None/list/dict so the file loads with torch.load(weights_only=True). "
        "Convert it first, e.g. float(x), x.item(), str(path), dataclasses.asdict(cfg)."
    )


def _unwrap(model: nn.Module) -> nn.Module:
    while True:  # DistributedDataParallel / DataParallel (.module) and torch.compile (._orig_mod)
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def save_model(path: str | Path, model: nn.Module, meta: dict) -> Path:
    """Write `{"format": "dfdlib-model/1", "state_dict", "meta"}` atomically to `path`.

    Takes a ResNeXtLSTM or LegacyResNeXtLSTM (possibly wrapped by DDP / torch.compile) and metadata of
    plain Python types; meta["model"] (the constructor kwargs) and meta["architecture"] are filled in
    from the model when absent. Returns the path. Raises ValueError if meta holds other types.
    """
    model = _unwrap(model)
    if not isinstance(model, _ClipClassifier):
        raise ValueError(f"save_model takes a ResNeXtLSTM or LegacyResNeXtLSTM, got {type(model).__name__}")
    meta = _check_plain(dict(meta))
    meta.setdefault("model", model.config())
    meta.setdefault("architecture", type(model).__name__)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save({"format": MODEL_FORMAT, "state_dict": state, "meta": meta}, f)
    return path


def _is_legacy(state: dict) -> bool:
    return "linear1.weight" in state and "lstm.weight_ih_l0" in state and any(k.startswith("model.") for k in state)


def _legacy_meta(path: Path, state: dict) -> tuple[dict, dict]:
    """Constructor kwargs from the tensor shapes, and metadata from the original file-name pattern."""
    layers = sum(1 for k in state if re.fullmatch(r"lstm\.weight_ih_l\d+", k))
    kwargs = dict(num_classes=int(state["linear1.weight"].shape[0]), latent_dim=int(state["lstm.weight_ih_l0"].shape[1]),
                  hidden_dim=int(state["lstm.weight_hh_l0"].shape[1]), lstm_layers=layers,
                  lstm_bias="lstm.bias_ih_l0" in state)
    seq = re.search(r"_(\d+)_frames", path.name)
    acc = re.search(r"model_(\d+(?:\.\d+)?)_acc", path.name)
    meta = {"legacy": True, "architecture": "LegacyResNeXtLSTM", "model": kwargs,
            "sequence_length": int(seq.group(1)) if seq else None, "image_size": 112, "sampling": "first",
            "class_names": ["FAKE", "REAL"], "threshold": 0.5, "preprocess": None,
            "reported_accuracy": float(acc.group(1)) if acc else None,
            "note": "original project's bare state_dict, run by LegacyResNeXtLSTM (see its docstring)"}
    return kwargs, meta


def load_model(path: str | Path, device="cpu") -> nn.Module:
    """Load a model file into an eval-mode model with `.meta` (dict) attached.

    Takes a dfdlib model file (ResNeXtLSTM) or an original project's bare state_dict (legacy layout,
    → LegacyResNeXtLSTM) and a device ("cpu", "cuda", "auto", torch.device). Always weights_only.
    Raises ValueError naming the file: missing, not a torch file / truncated, refused for safety
    (pickled code), or weights from another architecture (with a few missing/unexpected keys).
    """

    path = Path(path)
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if not path.is_file():
        raise ValueError(f"model file {path} not found (or not a file); check the path, e.g. with dfdlib.list_models()")
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        # "Unsupported operand" = not a pickle at all (an HTML error page, random bytes), not pickled code
        if "weights only load failed" in str(e).lower() and "unsupported operand" not in str(e).lower():
            raise ValueError(
                f"{path} is not a plain weights file: it contains pickled Python objects that could run code, "
                "so it was refused for safety. Re-save it as a state_dict (torch.save(model.state_dict(), ...)) "
                "or with dfdlib.save_model, where you trust its source."
            ) from e
        detail = (str(e).split("WeightsUnpickler error:")[-1].strip().splitlines() or [""])[0][:120]  # not torch's essay
        raise ValueError(f"{path} is not a PyTorch model file or is truncated/corrupt ({detail}); copy or download "
                         "it again") from e
    except Exception as e:  # zip errors, EOFError, KeyError from random bytes
        raise ValueError(f"{path} is not a PyTorch model file or is truncated/corrupt "
                         f"({type(e).__name__}: {str(e)[:120]}); copy or download it again") from e

    if isinstance(obj, dict) and "format" in obj:
        if str(obj["format"]).startswith("dfdlib-last"):
            raise ValueError(f"{path} is a training checkpoint (last.pt): it resumes training (--resume), while "
                             "prediction needs the model_*.pt file of the same run folder")
        if obj["format"] != MODEL_FORMAT:
            raise ValueError(f"{path} has format {obj['format']!r}; this dfdlib reads {MODEL_FORMAT!r} (upgrade dfdlib)")
        meta, state = dict(obj.get("meta") or {}), obj["state_dict"]
        if "model" not in meta:
            raise ValueError(f"{path} has no meta['model'] (constructor kwargs); re-save it with dfdlib.save_model")
        arch = meta.get("architecture", "ResNeXtLSTM")
        classes = {"ResNeXtLSTM": ResNeXtLSTM, "LegacyResNeXtLSTM": LegacyResNeXtLSTM}
        if arch not in classes:
            raise ValueError(f"{path}: unknown architecture {arch!r} in meta")
        model = classes[arch](**meta["model"])
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = {k.removeprefix("module."): v for k, v in obj.items()}  # nn.DataParallel checkpoints
        if not _is_legacy(state):
            raise ValueError(
                f"{path} is a bare state_dict but not of the original project's layout (model.*, lstm.*, "
                f"linear1.*): first keys {', '.join(list(state)[:4])}. Load it into its own class, or train "
                "and save with dfdlib so the file carries its metadata.")
        kwargs, meta = _legacy_meta(path, state)
        model = LegacyResNeXtLSTM(**kwargs)
    else:
        keys = list(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path} is not a model file (found {keys}); a training checkpoint such as last.pt "
                         "resumes training, while prediction needs the model_*.pt file")

    expected = model.state_dict()
    missing, unexpected = key_diff(expected, state)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # absent in very old torch files
    mismatched = [k for k in expected if k in state and expected[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        raise ValueError(f"{path} holds weights of another architecture than {type(model).__name__}"
                         f"({meta.get('model')}): {describe_key_diff(missing, unexpected, mismatched)}")
    model.load_state_dict(state, strict=False)
    meta["path"] = str(path)
    model.meta = meta
    return model.to(device).eval()
