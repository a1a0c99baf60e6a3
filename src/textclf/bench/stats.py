"""Percentiles and latency summaries shared by every bench level.

Percentiles use linear interpolation between closest ranks (numpy's default, "type 7"), so
the figures match what ``numpy.percentile`` would print for the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``; NaN for an empty sequence."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not samples:
        return math.nan
    ordered = sorted(samples)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    weight = rank - low
    return float(ordered[low] * (1.0 - weight) + ordered[high] * weight)


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
    if not latencies_s:
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan, nan)
    ordered = sorted(latencies_s)
    return LatencySummary(
        count=len(ordered),
        mean_ms=1000.0 * sum(ordered) / len(ordered),
        p50_ms=1000.0 * percentile(ordered, 50),
        p90_ms=1000.0 * percentile(ordered, 90),
        p99_ms=1000.0 * percentile(ordered, 99),
        max_ms=1000.0 * ordered[-1],
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
    n = len(xs)
    if n != len(ys):
        raise ValueError("xs and ys must have the same length")
    if n < 2:
        return 0.0
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx
