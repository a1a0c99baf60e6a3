"""``read_split``: one loader for processed splits and raw ``newsCorpora.csv`` files alike."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from textclf.data.parse import COLUMNS, RAW_SUFFIXES, SCHEMA, parse_file
from textclf.errors import UserError

log = logging.getLogger(__name__)


def read_split(path: str | Path) -> pd.DataFrame:
    """Rows of a split dir (``<dir>/data.parquet``), a ``.parquet`` file, or a raw corpus file.

    Raw ``.csv``/``.tsv``/``.zip`` files go through the same validator as ``textclf data``
    (malformed rows skipped with a warning) and get the canonical label names. Columns are
    always :data:`textclf.data.parse.COLUMNS` with the same types.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        data = p / "data.parquet"
        if not data.is_file():
            hint = ""
            if (p / "manifest.json").is_file():
                hint = f" (a processed dataset: pass a split, e.g. {p / 'test'})"
            raise UserError(f"{p}: no data.parquet in this directory{hint}")
        p = data
    if not p.is_file():
        raise UserError(f"no such file or directory: {p}")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        try:
            table = pq.read_table(p)
        except (OSError, ValueError) as exc:
            raise UserError(f"{p}: not a readable parquet file ({exc})") from exc
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise UserError(f"{p}: missing columns {missing}; expected {list(COLUMNS)}")
        return table.select(list(COLUMNS)).cast(SCHEMA).to_pandas()
    if suffix in RAW_SUFFIXES:
        return parse_file(p).frame
    raise UserError(f"{p}: expected a split directory, a .parquet file or a raw .csv/.tsv/.zip corpus")
