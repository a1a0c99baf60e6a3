"""The monitor's statistics against scipy and scikit-learn on the same inputs."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import special, stats
from sklearn.metrics import f1_score
from textclf_api.logic import drift


@pytest.mark.parametrize(
    ("a", "x"),
    [(0.5, 0.1), (0.5, 3.0), (1.0, 1.0), (1.5, 0.7), (2.0, 10.0), (3.5, 2.0), (10.0, 30.0), (50.0, 40.0),
     (0.5, 1e-8), (7.0, 7.9), (200.0, 260.0)],
)  # fmt: skip
def test_upper_incomplete_gamma_matches_scipy(a: float, x: float) -> None:
    assert drift.gammaincc(a, x) == pytest.approx(special.gammaincc(a, x), rel=1e-9, abs=1e-300)


def test_chi_square_goodness_of_fit_matches_scipy() -> None:
    rng = random.Random(7)
    labels = ["b", "t", "e", "m"]
    prior = {"b": 0.27, "t": 0.26, "e": 0.36, "m": 0.11}
    for n in (20, 300, 5000):
        observed = {label: 0 for label in labels}
        for _ in range(n):
            observed[rng.choices(labels, weights=[0.3, 0.2, 0.4, 0.1])[0]] += 1
        statistic, dof, p = drift.chi_square(observed, prior)
        expected = [n * prior[k] for k in labels]
        ref = stats.chisquare([observed[k] for k in labels], expected)
        assert dof == 3
        assert statistic == pytest.approx(ref.statistic, rel=1e-12)
        assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_chi_square_leaves_out_labels_without_prior_and_small_cases() -> None:
    statistic, dof, p = drift.chi_square({"a": 5, "b": 15, "c": 3}, {"a": 0.5, "b": 0.5, "c": 0.0})
    ref = stats.chisquare([5, 15], [10, 10])
    assert dof == 1 and statistic == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert drift.chi_square({}, {"a": 0.5, "b": 0.5}) == (0.0, 0, 1.0)
    assert drift.chi_square({"a": 3}, {"a": 1.0}) == (0.0, 0, 1.0)


def test_psi_is_the_textbook_sum_with_an_epsilon_floor() -> None:
    expected = {"a": 0.5, "b": 0.3, "c": 0.2}
    actual = {"a": 0.2, "b": 0.3, "c": 0.5}
    e, a = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    # scipy's rel_entr: (a - e) ln(a/e) = rel_entr(a, e) + rel_entr(e, a).
    ref = float(np.sum(special.rel_entr(a, e) + special.rel_entr(e, a)))
    assert drift.psi(expected, actual) == pytest.approx(ref, rel=1e-12)
    assert drift.psi(expected, expected) == 0.0
    # A label the window never answered: finite, large.
    missing = drift.psi(expected, {"a": 0.6, "b": 0.4})
    assert math.isfinite(missing) and missing > 1.0


def test_wilson_interval_matches_statsmodels_formula() -> None:
    # statsmodels is not installed; scipy's binomtest gives the Wilson interval too.
    for k, n in ((0, 10), (7, 10), (180, 200), (200, 200), (1, 3)):
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        low, high = drift.wilson(k, n)
        assert low == pytest.approx(ref.low, abs=1e-9) and high == pytest.approx(ref.high, abs=1e-9)
    assert drift.wilson(0, 0) == (0.0, 1.0)


def test_macro_f1_matches_sklearn() -> None:
    rng = random.Random(3)
    labels = ["b", "t", "e", "m"]
    truth = [rng.choice(labels) for _ in range(400)]
    predicted = [t if rng.random() < 0.7 else rng.choice(labels[:3]) for t in truth]
    ref = f1_score(truth, predicted, average="macro")
    assert drift.macro_f1(list(zip(truth, predicted, strict=True))) == pytest.approx(ref, rel=1e-12)
    assert drift.macro_f1([]) == 0.0
