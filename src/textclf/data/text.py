"""Text cells to model input, the same way for ``textclf data`` and ``textclf predict``: whitespace
normalised, several columns joined with the separator. Plain Python, so the streaming scorer can
use it without loading pandas."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace (tabs, NBSP, newlines...) to one space and trim."""
    return " ".join(text.split())


def join_text_cells(cells: Iterable[Any], separator: str) -> str | None:
    """The cells' text joined with ``separator`` ("" when all are blank or missing), or None
    when a cell holds something other than text (a number, a list...)."""
    parts = []
    for cell in cells:
        if cell is None:
            continue
        if not isinstance(cell, str):
            return None
        part = normalize_whitespace(cell)
        if part:
            parts.append(part)
    return separator.join(parts)
