"""Evaluation: metrics, the TF-IDF baseline, model scoring, the report and the leakage demo.

``textclf evaluate`` uses :func:`textclf.evaluation.report.evaluate`; the modules import
torch, transformers and scikit-learn lazily so importing this package stays cheap.
"""

from textclf.evaluation.metrics import (
    ECE_BINS,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    per_class_scores,
)

__all__ = [
    "ECE_BINS",
    "classification_report",
    "confusion_matrix",
    "expected_calibration_error",
    "per_class_scores",
]
