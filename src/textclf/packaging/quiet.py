"""Silence the INFO chatter of ONNX Runtime's offline tools while they run.

The quantiser and the transformer optimiser log through the root logger or top-level loggers
that inherit its level (one line per tensor or fusion), which would drown the CLI's output.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def root_logger_at_least(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the root logger to ``level`` (never lower it) for the block; restore it after."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(previous, level))
    try:
        yield
    finally:
        root.setLevel(previous)
