"""Classification metrics computed from labels, predictions and predicted probabilities.

Plain numpy so the numbers are easy to audit; the tests check them against scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Equal-width confidence bins for the expected calibration error (the usual choice, Guo et al. 2017).
ECE_BINS = 15


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """``cm[i, j]`` = rows of true class ``i`` predicted as ``j``."""
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def per_class_scores(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class; 0 where undefined (sklearn's zero_division=0)."""
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    support = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support.astype(np.int64)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> float:
    """Mean F1 over all ``num_labels`` labels (absent ones count 0, sklearn's ``zero_division=0``)."""
    _, _, f1, _ = per_class_scores(confusion_matrix(y_true, y_pred, num_labels))
    return float(f1.mean())


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE = sum over bins of (share of rows in bin) * |accuracy in bin - mean confidence in bin|.

    Bins are equal-width and right-closed, ``(k/n, (k+1)/n]``, with a confidence of exactly 0
    in the first bin; empty bins contribute nothing.
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if confidence.size == 0:
        return 0.0
    if np.any((confidence < 0) | (confidence > 1)):
        raise ValueError("confidences must lie in [0, 1]")
    # Bin k holds edges[k] < c <= edges[k+1] (edges from linspace, as in Guo et al.'s code);
    # searchsorted on the inner edges avoids the float drift of ceil(c * n_bins).
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    ece = 0.0
    for k in range(n_bins):
        in_bin = bins == k
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def mcnemar_p(only_reference_right: int, only_candidate_right: int) -> float:
    """Exact two-sided McNemar p-value: a binomial test of the discordant rows at 1/2.

    Stdlib only: the fidelity gate runs it inside the training job, whose image may lack scipy.
    """
    n = only_reference_right + only_candidate_right
    if n == 0:
        return 1.0
    k = min(only_reference_right, only_candidate_right)
    # Exact tail in log space (lgamma): a sum of comb(n, i) / 2**n overflows floats past n ~ 1,000.
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2))
        for i in range(k + 1)
    )
    return min(1.0, 2.0 * tail)


def classification_report(
    y_true: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """All figures of the evaluation report for one classifier.

    ``probabilities`` has one row per example and one column per label (in ``labels`` order);
    the prediction is the arg-max and its probability the confidence used for calibration.
    Macro averages run over every label in ``labels``, present in the data or not.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape != (len(y_true), len(labels)):
        raise ValueError(
            f"probabilities must have shape ({len(y_true)}, {len(labels)}), got {probabilities.shape}"
        )
    y_pred = probabilities.argmax(axis=1)
    report = prediction_report(y_true, y_pred, labels)
    report["ece"] = expected_calibration_error(probabilities.max(axis=1), y_pred == y_true)
    return report


def prediction_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """:func:`classification_report`'s figures for a classifier without probabilities (a linear
    SVM): ``ece`` is None (n/a)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"predictions must have shape {y_true.shape}, got {y_pred.shape}")
    cm = confusion_matrix(y_true, y_pred, len(labels))
    precision, recall, f1, support = per_class_scores(cm)
    return {
        "n": len(y_true),
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else 0.0,
        "macro_f1": float(f1.mean()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "ece": None,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
    }


def paired_comparison(model_right: np.ndarray, other_right: np.ndarray) -> dict[str, Any]:
    """Two classifiers on the same rows: the accuracy difference and McNemar's exact p on the rows
    only one of them gets right (the rows both get right or wrong say nothing about which is better)."""
    model_right = np.asarray(model_right, dtype=bool)
    other_right = np.asarray(other_right, dtype=bool)
    only_model = int(np.sum(model_right & ~other_right))
    only_other = int(np.sum(other_right & ~model_right))
    return {
        "accuracy_difference": (only_model - only_other) / max(len(model_right), 1),
        "only_model_right": only_model,
        "only_other_right": only_other,
        "mcnemar_p": mcnemar_p(only_model, only_other),
    }
