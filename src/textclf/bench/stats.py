"""Percentiles and latency summaries shared by every bench level: the one latency summary.

numpy computes them (``numpy.percentile``'s default linear interpolation between closest ranks,
"type 7"); this module only fixes which figures every level reports and in which unit.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``; NaN for an empty sequence."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if len(samples) == 0:
        return math.nan
    return float(np.percentile(np.asarray(samples, dtype=float), q))


@dataclass(frozen=True)
class LatencySummary:
    """Latency figures in milliseconds (input samples are in seconds)."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(latencies_s: Sequence[float]) -> LatencySummary:
    """Summarise latencies given in seconds; an empty input gives NaN figures and count 0."""
    if len(latencies_s) == 0:
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan, nan)
    ms = 1000.0 * np.asarray(latencies_s, dtype=float)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return LatencySummary(
        count=len(ms),
        mean_ms=float(ms.mean()),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        max_ms=float(ms.max()),
    )


def cdf_points(latencies_s: Sequence[float], max_points: int = 400) -> tuple[list[float], list[float]]:
    """(latency ms, cumulative fraction) pairs for a CDF plot, thinned to ``max_points``.

    Thinning keeps ``bench.json`` small for runs with hundreds of thousands of requests while
    keeping both tails (the first and the last sample are always kept).
    """
    if not latencies_s:
        return [], []
    ordered = sorted(latencies_s)
    n = len(ordered)
    if n <= max_points:
        idx = list(range(n))
    else:
        step = (n - 1) / (max_points - 1)
        idx = sorted({round(i * step) for i in range(max_points)})
    xs = [1000.0 * ordered[i] for i in idx]
    ys = [(i + 1) / n for i in idx]
    return xs, ys


def linear_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (0 with fewer than two distinct xs)."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys must have the same length")
    if len(set(xs)) < 2:
        return 0.0
    return float(statistics.linear_regression(xs, ys).slope)
