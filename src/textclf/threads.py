"""How many cores a textclf process may use: the one thread policy of the CLI side.

``os.cpu_count()`` counts the host's cores; a process limited by taskset or cgroups may run on
fewer, and torch/onnxruntime would over-subscribe them. The affinity mask says what is really
available; hyper-threads share execution units, so a single inference thread wants only the
physical cores among them. ``model/inference.py`` applies the same rule in its own copy
(``num_threads``): it ships to SageMaker without this package.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """Logical cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS has no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def physical_cores() -> int:
    """Physical cores among :func:`available_cores` (hyper-threads add contention, not speed)."""
    available = available_cores()
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency; stay usable without it
        return available
    return max(1, min(available, psutil.cpu_count(logical=False) or available))
