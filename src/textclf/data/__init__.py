"""Data pipeline: download, parse/validate, STORY-grouped split, parquet + manifest, S3 upload.

Public helpers for other parts (evaluation, tests): :func:`read_split`,
:func:`split_by_story`, :func:`split_rows_randomly` (the deliberately leaky row split).
"""

from textclf.data.parse import COLUMNS, ParseResult, parse_bytes, parse_file
from textclf.data.read import read_split
from textclf.data.split import SPLITS, check_fractions, split_by_story, split_rows_randomly

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
