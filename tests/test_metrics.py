"""dfdlib.metrics: sklearn-based metrics, EER, Youden threshold, plots, the guide's table."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dfdlib.metrics import (
    GUIDE_LEVELS,
    best_threshold,
    compute_metrics,
    equal_error_rate,
    format_metrics_table,
    plot_confusion,
    plot_history,
    plot_roc,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_perfect_separation():
    m = compute_metrics([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9])
    assert m["accuracy"] == m["precision"] == m["recall"] == m["f1"] == 1.0
    assert m["roc_auc"] == 1.0 and m["average_precision"] == 1.0 and m["eer"] == 0.0
    assert m["confusion_matrix"] == [[2, 0], [0, 2]]
    assert (m["n"], m["n_real"], m["n_fake"], m["threshold"]) == (4, 2, 2, 0.5)
    json.dumps(m)  # plain types only: goes into metrics.json and the model's meta


def test_known_values_and_confusion_layout():
    # rows = true [real, fake], columns = predicted [real, fake]
    y = [0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7]
    m = compute_metrics(y, p)
    assert m["confusion_matrix"] == [[2, 1], [1, 3]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(3 / 4)
    expected_ll = -np.mean([np.log(0.9), np.log(0.4), np.log(0.7), np.log(0.8), np.log(0.4), np.log(0.9), np.log(0.7)])
    assert m["log_loss"] == pytest.approx(expected_ll)
    # threshold moves the decisions: at 0.65 the fake scored 0.7 is still fake, the real at 0.6 is real
    m2 = compute_metrics(y, p, threshold=0.65)
    assert m2["confusion_matrix"] == [[3, 0], [1, 3]]


def test_eer_exact_crossing():
    # ROC points (fpr, fnr): (0,1) (0,.5) (.5,.5) (.5,0) (1,0) → FPR == FNR == 0.5
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == pytest.approx(0.5)
    # inverted scores: every fake scores below every real → EER 1
    assert equal_error_rate([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(1.0)


def test_one_class_gives_none_not_crash():
    m = compute_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert m["roc_auc"] is None and m["eer"] is None
    assert m["recall"] == pytest.approx(2 / 3) and m["average_precision"] == 1.0
    m = compute_metrics([0, 0], [0.1, 0.2])
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None  # no fake predicted or present
    assert m["average_precision"] is None and m["accuracy"] == 1.0
    assert m["log_loss"] is not None and m["confusion_matrix"] == [[2, 0], [0, 0]]
    assert compute_metrics([], [])["accuracy"] is None
    assert best_threshold([0, 0], [0.3, 0.4]) == 0.5


def test_bad_input_errors():
    with pytest.raises(ValueError, match="one score per video"):
        compute_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics([0, 1], [0.5, float("nan")])
    with pytest.raises(ValueError, match="probabilities"):
        compute_metrics([0, 1], [-2.0, 3.0])
    with pytest.raises(ValueError, match="0 \\(real\\)"):
        compute_metrics([0, 2], [0.1, 0.2])


def test_best_threshold_youden_separates_validation():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.05, 0.10, 0.20, 0.30, 0.35, 0.40])  # separable but all below 0.5
    t = best_threshold(y, p)
    assert 0.20 < t < 0.30
    assert compute_metrics(y, p, threshold=t)["accuracy"] == 1.0
    assert compute_metrics(y, p)["accuracy"] == 0.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1)), min_size=1, max_size=40))
@example([(0, 0.0), (1, 5e-324)])  # adjacent floats: no midpoint between them
def test_metrics_property_ranges(pairs):
    y = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    m = compute_metrics(y, p)
    assert np.sum(m["confusion_matrix"]) == len(y)
    assert m["accuracy"] == pytest.approx(np.mean((np.array(p) >= 0.5) == np.array(y)))
    for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer"):
        assert m[k] is None or 0.0 <= m[k] <= 1.0
    assert (m["roc_auc"] is None) == (len(set(y)) < 2)
    # Youden's threshold reaches the best J of any cut on the data it was chosen on (brute force)
    t = best_threshold(y, p)
    assert 0.0 <= t <= 1.0
    if len(set(y)) == 2:
        yy, pp = np.array(y), np.array(p)

        def youden(c):
            return np.mean(pp[yy == 1] >= c) - np.mean(pp[yy == 0] >= c)

        best = max(youden(c) for c in [*pp, np.inf])
        if best > 0:
            assert youden(t) == pytest.approx(best)
        else:
            assert t == 0.5


def test_plots_write_png_and_return_figure(tmp_path):
    hist = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.3], "val_loss": [0.69, 0.6, 0.4],
                         "train_acc": [0.5, 0.7, 0.9], "val_acc": [0.5, 0.6, 0.8], "val_auc": [0.5, None, 0.9]})
    csv = tmp_path / "history.csv"
    hist.to_csv(csv, index=False)
    figs = [
        plot_history(hist, tmp_path / "plots" / "curves.png"),
        plot_history(csv),  # a path to history.csv works too; no file written without a path
        plot_confusion([[3, 1], [0, 4]], tmp_path / "plots" / "confusion.png"),
        plot_roc([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], tmp_path / "plots" / "roc.png"),
        plot_roc([1, 1], [0.4, 0.9], tmp_path / "roc_one_class.png"),
    ]
    from matplotlib.figure import Figure

    assert all(isinstance(f, Figure) for f in figs)
    for name in ("plots/curves.png", "plots/confusion.png", "plots/roc.png", "roc_one_class.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 2000
    assert [p.name for p in tmp_path.glob(".*")] == []  # atomic writes leave no temp files
    # the confusion plot shows the counts
    texts = {t.get_text() for t in figs[2].axes[0].texts}
    assert {"3", "1", "0", "4"} <= texts


def test_format_metrics_table_levels():
    assert GUIDE_LEVELS["accuracy"] == (0.85, 0.95) and GUIDE_LEVELS["f1"] == (0.85, 0.95)
    m = {"accuracy": 0.96, "precision": 0.9, "recall": 0.5, "f1": None, "roc_auc": 0.97, "eer": 0.05,
         "n": 10, "n_real": 5, "n_fake": 5, "threshold": 0.5}
    table = format_metrics_table(m)
    rows = {line.split()[0]: line for line in table.splitlines()}
    assert "96.0%" in rows["Accuracy"] and rows["Accuracy"].endswith("excellent")
    assert "85.0%" in rows["Precision"] and rows["Precision"].endswith("good")
    assert rows["Recall"].endswith("below good")
    assert rows["F1-Score"].endswith("n/a") and "0.850" in rows["F1-Score"]
    assert "0.970" in rows["ROC-AUC"] and "5.0%" in rows["EER"]
    assert "10 (5 real, 5 fake)" in table


def test_verdict_confidence_never_reads_below_half_for_the_label_given():
    from dfdlib.metrics import verdict_confidence

    # threshold 0.3: prob_fake 0.35 is a FAKE verdict; the old "probability of the label" said 35 %
    assert verdict_confidence(0.35, 0.3) == pytest.approx(0.5 + 0.5 * 0.05 / 0.7)
    assert verdict_confidence(0.3, 0.3) == pytest.approx(0.5)
    assert verdict_confidence(1.0, 0.3) == pytest.approx(1.0) and verdict_confidence(0.0, 0.3) == pytest.approx(1.0)
    # threshold 0.7: prob_fake 0.6 is REAL, a little sure
    assert verdict_confidence(0.6, 0.7) == pytest.approx(0.5 + 0.5 * 0.1 / 0.7)
    # at threshold 0.5 it is the probability of the chosen label
    for p in (0.0, 0.2, 0.5, 0.81, 1.0):
        assert verdict_confidence(p, 0.5) == pytest.approx(max(p, 1 - p))
    # grows with the distance from the threshold on each side
    grid = np.linspace(0.3, 1.0, 15)
    assert np.all(np.diff([verdict_confidence(p, 0.3) for p in grid]) > 0)
