"""``read_split``: one loader for processed splits, raw news corpus files and any labelled file."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.data.generic import check_columns, frame_from_table
from textclf.data.inputs import read_table, resolve_format
from textclf.data.options import InputOptions
from textclf.data.parse import COLUMNS, SCHEMA, parse_file
from textclf.errors import UserError

log = logging.getLogger(__name__)

#: Columns a processed split written before FORMAT_VERSION 2 lacks; read as nulls.
_ADDED_COLUMNS = ("source_id",)


def _processed(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable parquet file ({exc})") from exc
    for name in _ADDED_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, SCHEMA.field(name).type))
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise UserError(
            f"{path}: missing columns {missing} of a processed split (expected {list(COLUMNS)}); "
            f"to read it as raw data, name its text and label columns (its columns: {table.column_names})"
        )
    return table.select(list(COLUMNS)).cast(SCHEMA).to_pandas()


def read_split(path: str | Path, *, options: InputOptions | None = None) -> pd.DataFrame:
    """Rows of a split dir (``<dir>/data.parquet``), a processed ``.parquet``, or a raw file.

    Raw files are read as ``textclf data`` reads them: the news corpus (``.csv``/``.tsv``/``.zip``
    in the newsCorpora format) with its own validator and label names; any other file (CSV, TSV,
    JSON Lines, Parquet, a datasets save_to_disk folder) with ``options`` naming its text and label
    columns. Malformed rows are skipped with a warning; the labels are not checked and nothing is
    deduplicated. Columns are always :data:`textclf.data.parse.COLUMNS` with the same types.
    """
    options = options or InputOptions()
    p = Path(path).expanduser()
    if p.is_dir() and (p / "data.parquet").is_file():
        p = p / "data.parquet"
    elif p.is_dir() and options.format != "hf" and not (p / "state.json").is_file():
        hint = ""
        if (p / "manifest.json").is_file():
            hint = f" (a processed dataset: pass a split, e.g. {p / 'test'})"
        raise UserError(f"{p}: no data.parquet in this directory{hint}")
    if not p.exists():
        raise UserError(f"no such file or directory: {p}")
    if p.suffix.lower() == ".parquet" and options.format is None and not options.named_columns():
        return _processed(p)
    fmt = resolve_format(p, options, str(p))
    if fmt == "uci":
        return parse_file(p).frame
    table = read_table(p, fmt)
    check_columns(table, options, str(p), fmt=fmt)
    result = frame_from_table(table, options)
    if result.skipped:
        reasons = ", ".join(f"{k}={v}" for k, v in result.skipped.items())
        log.warning("%s: skipped %d unusable rows (%s)", p, result.rows_skipped, reasons)
    return result.frame
