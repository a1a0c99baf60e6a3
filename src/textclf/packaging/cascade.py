"""The confidence cascade: the lexical head answers the headlines it is sure of, the transformer the rest.

The TF-IDF head in every archive scores ~100,000 headlines/s; the transformer a few hundred. On
headlines where the head is confident it is also nearly always right, so serving its answer
there costs almost no accuracy and skips the transformer for those rows. The threshold is chosen
here, at packaging, on the validation sample the fidelity gate scored: the lowest lexical
confidence such that, serving the head's answer at or above it and the blend below it,

- accuracy and macro-F1 stay within ``max_drop`` (0.1 point) of serving the blend everywhere;
- no class's recall drops more than ``max_class_recall_drop`` (a cascade must not buy speed with
  the small class).

``inference.py`` applies it (``cascade_threshold``; ``TEXTCLF_CASCADE=off`` switches it off at
serving time) and the archive records threshold, coverage and accuracy per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textclf.evaluation.metrics import macro_f1

#: Largest accuracy (and macro-F1) loss the cascade may cost on validation: 0.1 point.
MAX_DROP = 0.001
#: Largest recall loss of any one class: half a point.
MAX_CLASS_RECALL_DROP = 0.005
#: Candidate thresholds whose macro-F1 is checked (highest coverage first) before giving up.
_MAX_F1_CHECKS = 400


@dataclass(frozen=True)
class CascadeLimits:
    max_drop: float = MAX_DROP
    max_class_recall_drop: float = MAX_CLASS_RECALL_DROP


def choose(
    served: np.ndarray,
    lexical: np.ndarray,
    gold: np.ndarray,
    labels: Sequence[str],
    limits: CascadeLimits | None = None,
) -> dict[str, Any] | None:
    """The cascade record for ``textclf_meta.json``, or None when no threshold covers any row.

    ``served``: the blend's probabilities (cascade off); ``lexical``: the head's alone; ``gold``:
    label indices; all on the same validation rows.
    """
    limits = limits or CascadeLimits()
    n, num_labels = served.shape
    if n == 0:
        return None
    confidence = lexical.max(axis=1)
    lexical_pred, served_pred = lexical.argmax(axis=1), served.argmax(axis=1)
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    gold_sorted = gold[order]
    lex_right = (lexical_pred == gold)[order]
    full_right = (served_pred == gold)[order]

    # Covering the top k rows: right answers = head's in the top k + blend's in the rest.
    right_k = np.concatenate([[0], np.cumsum(lex_right)]) + (
        full_right.sum() - np.concatenate([[0], np.cumsum(full_right)])
    )
    accuracy_k = right_k / n
    accuracy_full = float(accuracy_k[0])
    # Per-class recall for each k, the same way (num_labels columns).
    onehot = np.eye(num_labels, dtype=float)[gold_sorted]
    support = onehot.sum(axis=0)
    lex_hits = np.vstack([np.zeros(num_labels), np.cumsum(onehot * lex_right[:, None], axis=0)])
    full_hits = np.vstack([np.zeros(num_labels), np.cumsum(onehot * full_right[:, None], axis=0)])
    hits_k = lex_hits + (full_hits[-1] - full_hits)
    recall_k = np.divide(hits_k, support, out=np.zeros_like(hits_k), where=support > 0)
    recall_drop_k = (recall_k[0] - recall_k).max(axis=1)

    # A threshold can only sit between distinct confidences: k must end a run of equal values.
    k_values = np.arange(n + 1)
    at_boundary = np.ones(n + 1, dtype=bool)
    at_boundary[1:n] = conf_sorted[:-1] > conf_sorted[1:]
    eligible = (
        at_boundary
        & (k_values > 0)
        & (accuracy_k >= accuracy_full - limits.max_drop - 1e-12)
        & (recall_drop_k <= limits.max_class_recall_drop + 1e-12)
    )
    f1_full = macro_f1(gold, served_pred, num_labels)
    for k in np.flatnonzero(eligible)[::-1][:_MAX_F1_CHECKS]:
        mixed = served_pred.copy()
        covered = order[:k]
        mixed[covered] = lexical_pred[covered]
        f1_k = macro_f1(gold, mixed, num_labels)
        if f1_k >= f1_full - limits.max_drop - 1e-12:
            return _record(
                k=int(k),
                threshold=float(conf_sorted[k - 1]),
                n=n,
                accuracy_k=accuracy_k,
                f1_full=f1_full,
                f1_k=f1_k,
                recall_k=recall_k,
                support=support,
                gold_sorted=gold_sorted,
                labels=labels,
                limits=limits,
            )
    return None


def _record(
    *,
    k: int,
    threshold: float,
    n: int,
    accuracy_k: np.ndarray,
    f1_full: float,
    f1_k: float,
    recall_k: np.ndarray,
    support: np.ndarray,
    gold_sorted: np.ndarray,
    labels: Sequence[str],
    limits: CascadeLimits,
) -> dict[str, Any]:
    covered_per_class = np.bincount(gold_sorted[:k], minlength=len(labels))
    return {
        "threshold": threshold,
        "coverage": k / n,
        "rows": n,
        "accuracy_full": float(accuracy_k[0]),
        "accuracy_cascade": float(accuracy_k[k]),
        "macro_f1_full": f1_full,
        "macro_f1_cascade": f1_k,
        "max_drop": limits.max_drop,
        "max_class_recall_drop": limits.max_class_recall_drop,
        "per_class": {
            label: {
                "support": int(support[i]),
                "coverage": float(covered_per_class[i] / support[i]) if support[i] else 0.0,
                "recall_full": float(recall_k[0][i]),
                "recall_cascade": float(recall_k[k][i]),
            }
            for i, label in enumerate(labels)
        },
    }


def summary(record: dict[str, Any] | None) -> str:
    if record is None:
        return "cascade: off (no lexical threshold keeps accuracy within the limits)"
    return (
        f"cascade: lexical head answers {record['coverage']:.1%} of validation headlines "
        f"(confidence >= {record['threshold']:.4f}); accuracy {record['accuracy_full']:.2%} -> "
        f"{record['accuracy_cascade']:.2%}, macro-F1 {record['macro_f1_full']:.4f} -> "
        f"{record['macro_f1_cascade']:.4f}"
    )
