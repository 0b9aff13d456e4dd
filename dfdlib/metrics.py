"""Binary detection metrics (sklearn.metrics) and the plots the trainer and notebooks show.

Scores are `prob_fake` in [0, 1] (label 1 = FAKE, 0 = REAL, as in the labels CSV). A metric that is
undefined for the data given (ROC-AUC on a one-class set, precision with no positive prediction) is
None rather than a crash or a misleading 0, so a tiny test split still yields a metrics.json.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dfdlib.utils import atomic_write

# The guide's "Metrics to Check" table: metric -> (good, excellent).
GUIDE_LEVELS: dict[str, tuple[float, float]] = {
    "accuracy": (0.85, 0.95),
    "precision": (0.85, 0.95),
    "recall": (0.85, 0.95),
    "f1": (0.85, 0.95),
}

CLASS_NAMES = ("REAL", "FAKE")


def _as_arrays(y_true, prob_fake) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(prob_fake, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but prob_fake has {p.size}; pass one score per video")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must hold 0 (real) / 1 (fake) only, got {sorted(set(y.tolist()))[:5]}")
    if not np.isfinite(p).all():
        raise ValueError(f"prob_fake holds {int((~np.isfinite(p)).sum())} NaN/inf values (did training diverge?)")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("prob_fake must be probabilities in [0, 1] (apply softmax/sigmoid to logits first)")
    return y, p


def _none_if_nan(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def equal_error_rate(y_true, prob_fake) -> float | None:
    """EER: the error rate where false-positive rate == false-negative rate (interpolated on the ROC).

    Takes labels and scores; returns a float in [0, 1], or None when only one class is present.
    """
    from sklearn.metrics import roc_curve

    y, p = _as_arrays(y_true, prob_fake)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, p)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # starts >= 0 (fpr=0, fnr=1) and ends <= 0 (fpr=1, fnr=0)
    i = int(np.argmax(diff <= 0))
    if i == 0 or diff[i] == 0:
        return float((fpr[i] + fnr[i]) / 2)
    # Linear interpolation between the two ROC points that bracket the crossing.
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def compute_metrics(y_true, prob_fake, threshold: float = 0.5) -> dict:
    """Video-level metrics of fake scores against labels.

    Takes labels (0 real / 1 fake), `prob_fake` scores and the decision threshold (score >= threshold
    → FAKE). Returns a JSON-ready dict: accuracy, precision, recall, f1, roc_auc, average_precision, eer,
    log_loss, confusion_matrix (rows = true [real, fake], columns = predicted), n, n_real, n_fake,
    threshold. Undefined metrics are None. Raises ValueError on mismatched lengths or non-probabilities.
    """
    from sklearn import metrics as skm

    y, p = _as_arrays(y_true, prob_fake)
    n, n_fake = int(y.size), int(y.sum())
    out: dict = {"n": n, "n_real": n - n_fake, "n_fake": n_fake, "threshold": float(threshold)}
    if n == 0:
        return out | dict.fromkeys(
            ["accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer", "log_loss"]
        ) | {"confusion_matrix": [[0, 0], [0, 0]]}
    pred = (p >= threshold).astype(np.int64)
    both = 0 < n_fake < n
    out["accuracy"] = float(skm.accuracy_score(y, pred))
    # zero_division=nan → None: "no video predicted fake" has no precision, it is not 0 %.
    out["precision"] = _none_if_nan(skm.precision_score(y, pred, zero_division=np.nan))
    out["recall"] = _none_if_nan(skm.recall_score(y, pred, zero_division=np.nan))
    out["f1"] = _none_if_nan(skm.f1_score(y, pred, zero_division=np.nan))
    out["roc_auc"] = float(skm.roc_auc_score(y, p)) if both else None
    out["average_precision"] = float(skm.average_precision_score(y, p)) if n_fake else None
    out["eer"] = equal_error_rate(y, p)
    out["log_loss"] = float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))
    out["confusion_matrix"] = skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    return out


def verdict_confidence(prob_fake: float, threshold: float = 0.5) -> float:
    """How sure a verdict is, from 0.5 (prob_fake at the threshold) to 1.0 (prob_fake 0 or 1).

    The raw probability of the chosen label misleads when the calibrated threshold is not 0.5: at
    threshold 0.3, prob_fake 0.35 is a FAKE verdict whose "probability of the label" would read 35 %.
    Here each side of the threshold is stretched linearly onto 0.5–1, so the confidence is always at
    least 50 % for the label given and grows with the distance from the threshold.
    """
    p, t = float(prob_fake), min(max(float(threshold), 1e-6), 1 - 1e-6)
    if p >= t:
        return 0.5 + 0.5 * (p - t) / (1 - t)
    return 0.5 + 0.5 * (t - p) / t


def best_threshold(y_true, prob_fake) -> float:
    """Decision threshold maximising Youden's J (TPR - FPR), meant to be chosen on the validation split.

    Returns the midpoint between the last score called FAKE and the next lower one (same decisions on
    val, more margin on new data), clipped to [0, 1]; 0.5 when only one class is present or no threshold
    beats chance (J <= 0: nothing to calibrate).
    """
    from sklearn.metrics import roc_curve

    y, p = _as_arrays(y_true, prob_fake)
    if len(np.unique(y)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    j = tpr - fpr
    i = int(np.argmax(j))
    if j[i] <= 0:
        return 0.5
    hi = min(float(thr[i]), 1.0)  # thr[0] is +inf ("nothing is fake")
    lo = float(thr[i + 1]) if i + 1 < len(thr) else 0.0
    mid = (hi + lo) / 2 if i + 1 < len(thr) else hi
    if mid <= lo:  # no float strictly between two adjacent scores (5e-324 and 0.0): the fake side's score
        mid = hi
    return float(np.clip(mid, 0.0, 1.0))


def _figure(figsize):
    # A bare Figure (no pyplot): works headless without choosing a backend, is not kept alive by
    # pyplot's figure manager, and still renders inline when a notebook cell returns it.
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _save(fig, path) -> None:
    if path is None:
        return

    with atomic_write(Path(path), "wb") as f:
        fig.savefig(f, format="png", dpi=110)


def plot_history(history, path=None):
    """Loss and accuracy/AUC curves per epoch.

    Takes the trainer's history (DataFrame or path to history.csv with epoch, train_loss, val_loss,
    train_acc, val_acc[, val_auc]; accuracies as fractions) and an optional PNG path. Returns the Figure.
    """
    import pandas as pd

    df = pd.read_csv(history) if isinstance(history, str | Path) else history
    fig = _figure((10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for col, label in (("train_loss", "train"), ("val_loss", "validation")):
        if col in df:
            ax1.plot(df["epoch"], df[col], marker="o", label=label)
    ax1.set(title="Loss", xlabel="epoch", ylabel="loss")
    for col, label in (("train_acc", "train accuracy"), ("val_acc", "val accuracy"), ("val_auc", "val ROC-AUC")):
        if col in df and df[col].notna().any():
            ax2.plot(df["epoch"], 100 * df[col], marker="o", label=label)
    ax2.set(title="Accuracy", xlabel="epoch", ylabel="%", ylim=(0, 101))
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    _save(fig, path)
    return fig


def plot_confusion(cm, path=None, class_names=CLASS_NAMES, title: str = "Confusion matrix"):
    """Confusion matrix heat map (rows = true class, columns = predicted). Returns the Figure."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = _figure((4.2, 3.8))
    ax = fig.subplots()
    ConfusionMatrixDisplay(np.asarray(cm), display_labels=list(class_names)).plot(ax=ax, cmap="Blues", colorbar=False)
    ax.set_title(title)
    _save(fig, path)
    return fig


def plot_roc(y_true, prob_fake, path=None, title: str = "ROC"):
    """ROC curve with its AUC (or a note when only one class is present). Returns the Figure."""
    from sklearn.metrics import RocCurveDisplay

    y, p = _as_arrays(y_true, prob_fake)
    fig = _figure((4.2, 4))
    ax = fig.subplots()
    if len(np.unique(y)) < 2:
        ax.text(0.5, 0.5, "ROC undefined:\nonly one class in this split", ha="center", va="center")
    else:
        RocCurveDisplay.from_predictions(y, p, ax=ax, name="model", plot_chance_level=True)
    ax.set(title=title, xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    _save(fig, path)
    return fig


def format_metrics_table(metrics: dict) -> str:
    """Text table of the metrics next to the guide's good/excellent levels (what notebooks print)."""

    def pct(v):
        return "   n/a" if v is None else f"{100 * v:5.1f}%"

    def num(v):
        return "   n/a" if v is None else f"{v:6.3f}"

    lines = [f"{'metric':<18}{'value':>8}{'good':>8}{'excellent':>11}  verdict"]
    for key, label in (("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall"), ("f1", "F1-Score")):
        v = metrics.get(key)
        good, exc = GUIDE_LEVELS[key]
        fmt = num if key == "f1" else pct
        verdict = "n/a" if v is None else "excellent" if v >= exc else "good" if v >= good else "below good"
        lines.append(f"{label:<18}{fmt(v):>8}{fmt(good):>8}{fmt(exc):>11}  {verdict}")
    for key, label, fmt in (
        ("roc_auc", "ROC-AUC", num), ("average_precision", "Average precision", num),
        ("eer", "EER", pct), ("log_loss", "Log-loss", num),
    ):
        if key in metrics:
            lines.append(f"{label:<18}{fmt(metrics[key]):>8}")
    if "n" in metrics:
        lines.append(f"videos: {metrics['n']} ({metrics.get('n_real')} real, {metrics.get('n_fake')} fake), "
                     f"threshold {metrics.get('threshold', 0.5):.3f}")
    return "\n".join(lines)


def metrics_by_method(y_true, prob_fake, method, threshold: float = 0.5):
    """Per-method metrics, the usual protocol: each method's fakes scored against *all* the real videos.

    Takes labels, scores and one method/source name per video (reals' name is ignored: every real is in
    every row). Returns a DataFrame indexed by method (`all` first, then each fake method sorted) with
    n_real, n_fake, accuracy, precision, recall, f1, roc_auc, average_precision, eer; undefined is None.
    """
    import pandas as pd

    y, p = _as_arrays(y_true, prob_fake)
    m = np.asarray([str(x) if x is not None else "" for x in method], dtype=object)
    if m.shape != y.shape:
        raise ValueError(f"method has {m.size} values but there are {y.size} videos; pass one per video")
    keep = ("n_real", "n_fake", "accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer")
    rows = {"all": {k: compute_metrics(y, p, threshold)[k] for k in keep}}
    for name in sorted({x for x, yy in zip(m, y, strict=True) if yy == 1}):
        sel = (y == 0) | (m == name)
        rows[name or "(no method)"] = {k: compute_metrics(y[sel], p[sel], threshold)[k] for k in keep}
    return pd.DataFrame.from_dict(rows, orient="index")


def plot_roc_by_method(y_true, prob_fake, method, path=None, title: str = "ROC per method"):
    """One ROC curve per fake method (its fakes against all reals) plus the overall one. Returns the Figure."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y, p = _as_arrays(y_true, prob_fake)
    m = np.asarray([str(x) if x is not None else "" for x in method], dtype=object)
    fig = _figure((5.2, 4.6))
    ax = fig.subplots()
    if len(np.unique(y)) < 2:
        ax.text(0.5, 0.5, "ROC undefined:\nonly one class in this split", ha="center", va="center")
    else:
        curves = [("all", np.ones(len(y), bool), 2.5)]
        curves += [(name or "(no method)", (y == 0) | (m == name), 1.2)
                   for name in sorted({x for x, yy in zip(m, y, strict=True) if yy == 1})]
        for name, sel, lw in curves:
            fpr, tpr, _ = roc_curve(y[sel], p[sel])
            ax.plot(fpr, tpr, lw=lw, label=f"{name} (AUC = {roc_auc_score(y[sel], p[sel]):.3f}, n = {sel.sum()})")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
        ax.legend(loc="lower right", fontsize="small")
    ax.set(title=title, xlabel="false positive rate", ylabel="true positive rate", xlim=(-0.01, 1.01),
           ylim=(-0.01, 1.01))
    _save(fig, path)
    return fig
