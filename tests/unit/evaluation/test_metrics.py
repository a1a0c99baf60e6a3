"""Metrics against scikit-learn on random inputs, and ECE on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from textclf.evaluation.metrics import (
    ECE_BINS,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    paired_comparison,
    prediction_report,
)

LABELS = ["business", "science_and_technology", "entertainment", "health"]


def random_probs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    logits = rng.normal(size=(n, k)) * 2
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, 300)
    probs = random_probs(rng, 300, 4)
    # Make the classifier better than chance so every class has real precision/recall.
    probs[np.arange(300), y_true] += rng.random(300)
    probs /= probs.sum(axis=1, keepdims=True)
    y_pred = probs.argmax(axis=1)
    report = classification_report(y_true, probs, LABELS)

    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert report["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=range(4), zero_division=0)
    for i, name in enumerate(LABELS):
        got = report["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p[i], r[i], f[i]))
        assert got["support"] == s[i]
    assert report["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=range(4)).tolist()
    assert report["n"] == 300


def test_absent_class_counts_in_the_macro_average() -> None:
    # Nothing is "health" and nothing is predicted "health": its F1 is 0 and, because the
    # report averages over the model's whole label set, it pulls the macro-F1 down.
    y_true = np.array([0, 0, 1, 2])
    probs = np.eye(4)[[0, 1, 1, 2]]
    report = classification_report(y_true, probs, LABELS)
    assert report["per_class"]["health"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    expected = skm.f1_score(y_true, probs.argmax(1), labels=range(4), average="macro", zero_division=0)
    assert report["macro_f1"] == pytest.approx(expected)
    assert report["accuracy"] == pytest.approx(0.75)


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        classification_report(np.array([0, 1]), np.ones((2, 3)) / 3, LABELS)


def test_confusion_matrix_orientation() -> None:
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([1, 1, 1]), 2)
    assert cm.tolist() == [[0, 2], [0, 1]]  # row = true class, column = predicted


def test_ece_perfectly_calibrated_is_zero() -> None:
    confidence = np.full(10, 0.9)
    correct = np.array([1] * 9 + [0])
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0)


def test_ece_overconfident_single_bin() -> None:
    # Confidence 0.9, accuracy 0.6: the gap is 0.3 for every row.
    assert expected_calibration_error(np.full(5, 0.9), np.array([1, 1, 1, 0, 0])) == pytest.approx(0.3)


def test_ece_two_bins_weighted_by_size() -> None:
    # 4 rows at 0.3 with 2 right (gap 0.2), 6 rows at 0.95 all right (gap 0.05):
    # ECE = 0.4 * 0.2 + 0.6 * 0.05 = 0.11.
    confidence = np.array([0.3] * 4 + [0.95] * 6)
    correct = np.array([1, 1, 0, 0] + [1] * 6)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.11)


def test_ece_bins_are_right_closed() -> None:
    edge = np.linspace(0, 1, ECE_BINS + 1)[1]  # 1/15: upper edge of the first bin
    # Same bin: |mean correct - mean confidence| = |0.5 - (edge + 0.0) / 2|.
    same = expected_calibration_error(np.array([0.0, edge]), np.array([1, 0]))
    assert same == pytest.approx(abs(0.5 - edge / 2))
    # Just above the edge: two bins, 0.5 * |1 - 0| + 0.5 * |0 - (edge + 1e-9)|.
    split = expected_calibration_error(np.array([0.0, edge + 1e-9]), np.array([1, 0]))
    assert split == pytest.approx(0.5 + 0.5 * (edge + 1e-9))
    # 15 bins by default: confidences 0.55 and 0.58 share the bin (0.5333, 0.6] -> one gap.
    assert expected_calibration_error(np.array([0.55, 0.58]), np.array([1, 1])) == pytest.approx(1 - 0.565)


def test_ece_rejects_values_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"confidences must lie in \[0, 1\]"):
        expected_calibration_error(np.array([1.2]), np.array([1]))
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0


@pytest.mark.parametrize("k", [2, 3, 12])
def test_a_report_from_predictions_alone_is_the_same_without_ece(k: int) -> None:
    rng = np.random.default_rng(k)
    labels = [f"label {i}" for i in range(k)]
    y_true = rng.integers(0, k, 400)
    probs = random_probs(rng, 400, k)
    probs[np.arange(400), y_true] += rng.random(400)
    from_probs = classification_report(y_true, probs / probs.sum(1, keepdims=True), labels)
    from_preds = prediction_report(y_true, probs.argmax(1), labels)
    assert from_preds["ece"] is None and from_probs["ece"] is not None
    assert {**from_preds, "ece": from_probs["ece"]} == from_probs
    assert from_preds["macro_f1"] == pytest.approx(skm.f1_score(y_true, probs.argmax(1), average="macro"))


def test_paired_comparison_counts_the_discordant_rows() -> None:
    from scipy.stats import binomtest

    model = np.array([True] * 70 + [False] * 30)
    other = np.array([True] * 55 + [False] * 15 + [True] * 5 + [False] * 25)
    paired = paired_comparison(model, other)
    assert (paired["only_model_right"], paired["only_other_right"]) == (15, 5)
    assert paired["accuracy_difference"] == pytest.approx(0.10)
    assert paired["mcnemar_p"] == pytest.approx(binomtest(5, 20, 0.5).pvalue)
