"""Data pipeline: read and check any labelled dataset (the UCI corpus by default), split, write
parquet + manifest, S3 upload.

Public helpers for other parts (evaluation, tests): :func:`read_split`,
:func:`split_by_story`, :func:`split_rows_randomly` (the deliberately leaky row split). They are
loaded on first use, so importing a light module of the package (``textclf.data.options``, for
the CLI's ``--help``) does not load pandas and pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textclf.data.parse import COLUMNS, ParseResult, parse_bytes, parse_file
    from textclf.data.read import read_split
    from textclf.data.split import SPLITS, check_fractions, split_by_story, split_rows_randomly

_HOMES = {
    "COLUMNS": "parse",
    "ParseResult": "parse",
    "parse_bytes": "parse",
    "parse_file": "parse",
    "read_split": "read",
    "SPLITS": "split",
    "check_fractions": "split",
    "split_by_story": "split",
    "split_rows_randomly": "split",
}

__all__ = [
    "COLUMNS",
    "SPLITS",
    "ParseResult",
    "check_fractions",
    "parse_bytes",
    "parse_file",
    "read_split",
    "split_by_story",
    "split_rows_randomly",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
