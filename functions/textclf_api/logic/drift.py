"""The monitor's statistics, as plain functions of counts.

Hand-written because the monitor runs in a Lambda whose package is boto3 + powertools + pydantic:
scipy and numpy alone are ~100 MB unpacked, past Lambda's 250 MB limit with the layer and far past
the few MB this package keeps its cold start at. Each function is a few lines of textbook formula
and the tests pin them to scipy/scikit-learn on the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: Added to every share before the log in PSI: a label the window (or the baseline) never saw
#: would otherwise make it infinite. The usual choice for PSI over proportions.
PSI_EPSILON = 1e-4
#: z of a two-sided 95 % interval.
Z_95 = 1.959963984540054


def shares(counts: Mapping[str, float], labels: Sequence[str]) -> dict[str, float]:
    total = sum(counts.get(label, 0) for label in labels)
    return {label: (counts.get(label, 0) / total if total else 0.0) for label in labels}


def psi(expected: Mapping[str, float], actual: Mapping[str, float], epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of ``actual`` shares against ``expected`` shares (same keys):
    sum over labels of (a - e) * ln(a / e), each share floored at ``epsilon``."""
    total = 0.0
    for label in expected.keys() | actual.keys():
        e = max(float(expected.get(label, 0.0)), epsilon)
        a = max(float(actual.get(label, 0.0)), epsilon)
        total += (a - e) * math.log(a / e)
    return total


def chi_square(observed: Mapping[str, float], prior: Mapping[str, float]) -> tuple[float, int, float]:
    """Pearson's goodness-of-fit test of ``observed`` counts against the ``prior`` shares:
    (statistic, degrees of freedom, p-value). Labels with a zero prior are left out (their
    expected count is 0: no finite statistic); with fewer than two labels left, p = 1."""
    used = [label for label, share in prior.items() if share > 0]
    n = sum(observed.get(label, 0) for label in used)
    if len(used) < 2 or n <= 0:
        return 0.0, 0, 1.0
    norm = sum(prior[label] for label in used)
    statistic = 0.0
    for label in used:
        expected = n * prior[label] / norm
        statistic += (observed.get(label, 0) - expected) ** 2 / expected
    dof = len(used) - 1
    return statistic, dof, chi2_sf(statistic, dof)


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for a chi-square variable with ``dof`` degrees of freedom: Q(dof/2, x/2)."""
    if x <= 0:
        return 1.0
    return gammaincc(dof / 2.0, x / 2.0)


def gammaincc(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x), a > 0, x >= 0.

    Numerical Recipes' split: the series of P(a, x) below x < a + 1 (where it converges fast),
    Lentz's continued fraction of Q above. Accurate to ~1e-12 relative, ample for a p-value."""
    if x <= 0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def wilson(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default); (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def macro_f1(pairs: Sequence[tuple[str, str]]) -> float:
    """Mean F1 over every label present as truth or prediction in ``(true, predicted)`` pairs
    (scikit-learn's ``f1_score(average="macro")``, a label with no true positive scoring 0)."""
    if not pairs:
        return 0.0
    labels = {t for t, _ in pairs} | {p for _, p in pairs}
    scores = []
    for label in labels:
        tp = sum(1 for t, p in pairs if t == label and p == label)
        fp = sum(1 for t, p in pairs if t != label and p == label)
        fn = sum(1 for t, p in pairs if t == label and p != label)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)
