"""The fidelity gate's statistics and the cascade's threshold choice, on synthetic scores.

Numbers with a known answer: the paired interval against its textbook formula, McNemar's exact
p against scipy, the cascade against a brute-force search over every threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from textclf.evaluation.metrics import confusion_matrix, macro_f1, mcnemar_p, per_class_scores
from textclf.packaging import cascade
from textclf.packaging.fidelity import paired_accuracy_drop

LABELS = ["business", "science_and_technology", "entertainment", "health"]


def test_the_paired_interval_counts_only_discordant_rows() -> None:
    n = 10_000
    ref = np.ones(n, dtype=bool)
    cand = np.ones(n, dtype=bool)
    ref[:100] = False  # candidate right where the reference is wrong
    cand[100:250] = False  # and wrong on 150 others
    drop, upper = paired_accuracy_drop(ref, cand)
    assert drop == pytest.approx(0.005)  # (150 - 100) / 10,000
    diff = ref.astype(float) - cand.astype(float)
    assert upper == pytest.approx(drop + 1.959963984540054 * diff.std(ddof=1) / math.sqrt(n))
    # Identical runtimes: no drop, no uncertainty.
    assert paired_accuracy_drop(ref, ref) == (0.0, 0.0)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 9), (120, 95), (1500, 1400), (0, 40)])
def test_mcnemar_matches_scipys_exact_binomial_test(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else binomtest(c, b + c, 0.5).pvalue
    assert mcnemar_p(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def _scores(rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A served model right ~90% of the time and a lexical head whose confidence tracks its
    accuracy, over ``k`` labels."""
    gold = rng.integers(0, k, n)
    served = np.full((n, k), 0.06 / (k - 1))
    served_pred = np.where(rng.random(n) < 0.9, gold, rng.integers(0, k, n))
    served[np.arange(n), served_pred] = 0.94
    confidence = rng.uniform(1.0 / k + 0.05, 1.0, n)
    lexical_right = rng.random(n) < confidence  # confident rows are mostly right
    lexical_pred = np.where(lexical_right, gold, (gold + 1) % k)
    lexical = np.tile(((1 - confidence) / (k - 1))[:, None], (1, k))
    lexical[np.arange(n), lexical_pred] = confidence
    return served, lexical, gold


def _recalls(gold: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    return per_class_scores(confusion_matrix(gold, predicted, k))[1]


def _brute_force(served: np.ndarray, lexical: np.ndarray, gold: np.ndarray) -> float:
    """Highest coverage over every distinct threshold that meets all three limits."""
    limits = cascade.CascadeLimits()
    k = served.shape[1]
    full_pred = served.argmax(1)
    acc_full = (full_pred == gold).mean()
    f1_full = macro_f1(gold, full_pred, k)
    rec_full = _recalls(gold, full_pred, k)
    best = 0.0
    for t in np.unique(lexical.max(1)):
        covered = lexical.max(1) >= t
        mixed = np.where(covered, lexical.argmax(1), full_pred)
        right = mixed == gold
        ok = (
            right.mean() >= acc_full - limits.max_drop - 1e-12
            and macro_f1(gold, mixed, k) >= f1_full - limits.max_drop - 1e-12
            and (rec_full - _recalls(gold, mixed, k)).max() <= limits.max_class_recall_drop + 1e-12
        )
        if ok:
            best = max(best, covered.mean())
    return float(best)


@pytest.mark.parametrize(("seed", "k"), [(0, 4), (1, 4), (2, 4), (3, 2), (4, 3), (5, 12)])
def test_the_chosen_threshold_is_the_highest_coverage_within_the_limits(seed: int, k: int) -> None:
    labels = LABELS if k == 4 else [f"label {i}" for i in range(k)]
    served, lexical, gold = _scores(np.random.default_rng(seed), 3000, k)
    record = cascade.choose(served, lexical, gold, labels)
    assert record is not None and list(record["per_class"]) == labels
    assert record["coverage"] == pytest.approx(_brute_force(served, lexical, gold))
    # What the record says is what serving at that threshold does.
    covered = lexical.max(1) >= record["threshold"]
    assert covered.mean() == pytest.approx(record["coverage"])
    mixed = np.where(covered, lexical.argmax(1), served.argmax(1))
    assert (mixed == gold).mean() == pytest.approx(record["accuracy_cascade"])
    assert record["accuracy_cascade"] >= record["accuracy_full"] - 0.001 - 1e-12
    for label, figures in record["per_class"].items():
        assert figures["recall_full"] - figures["recall_cascade"] <= 0.005 + 1e-12, label
        assert 0.0 <= figures["coverage"] <= 1.0


def test_no_cascade_when_the_head_is_never_right_enough() -> None:
    rng = np.random.default_rng(3)
    served, lexical, gold = _scores(rng, 500)
    wrong = lexical.copy()
    wrong[np.arange(len(gold)), gold] = 0.0  # the head never picks the gold label
    assert cascade.choose(served, wrong, gold, LABELS) is None
    assert "off" in cascade.summary(None)


def test_ties_in_confidence_are_covered_all_or_none() -> None:
    gold = np.array([0, 1, 2, 3, 0, 1])
    served = np.eye(4)[gold] * 0.9 + 0.025  # the blend is always right
    lexical = np.full((6, 4), 0.1)
    lexical[np.arange(6), gold] = 0.7  # equally confident everywhere, right except the last row
    lexical[5] = [0.7, 0.1, 0.1, 0.1]
    # Covering all six costs a row (1/6 of accuracy): no threshold can split the tie.
    assert cascade.choose(served, lexical, gold, LABELS) is None
