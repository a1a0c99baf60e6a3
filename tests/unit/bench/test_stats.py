"""Percentile math and summaries."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from textclf.bench.stats import cdf_points, linear_slope, percentile, summarize


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_percentile_matches_numpy(n: int) -> None:
    rng = random.Random(n)
    samples = [rng.expovariate(1.0) for _ in range(n)]
    for q in (0, 1, 25, 50, 90, 99, 99.9, 100):
        assert percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)), rel=1e-12)


def test_percentile_small_cases() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == pytest.approx(3.97)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"percentile must be within 0\.\.100, got 101"):
        percentile([1.0], 101)


def test_summarize_reports_milliseconds() -> None:
    summary = summarize([0.001 * i for i in range(1, 101)])  # 1..100 ms
    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.max_ms == pytest.approx(100.0)
    assert summary.mean_ms == pytest.approx(50.5)
    empty = summarize([])
    assert empty.count == 0 and math.isnan(empty.p50_ms)


def test_cdf_points_are_thinned_monotone_and_keep_both_ends() -> None:
    samples = [random.Random(1).random() for _ in range(10_000)]
    xs, ys = cdf_points(samples, max_points=100)
    assert len(xs) <= 100
    assert xs == sorted(xs) and ys == sorted(ys)
    assert xs[0] == pytest.approx(1000 * min(samples))
    assert xs[-1] == pytest.approx(1000 * max(samples))
    assert ys[-1] == 1.0
    assert cdf_points([]) == ([], [])


def test_linear_slope() -> None:
    assert linear_slope([0, 1, 2, 3], [5, 7, 9, 11]) == pytest.approx(2.0)
    assert linear_slope([0, 1, 2], [4, 4, 4]) == 0.0
    assert linear_slope([1], [2]) == 0.0
