"""Turn any labelled table (:class:`textclf.data.inputs.Table`) into the processed columns.

Per row: the ``--text-column`` cells, whitespace-normalised, joined with the separator; the
``--label-column`` cell as a string label; the ``--group-column`` value as the row's story (else
the row's own id: one group per row); the ``--time-column`` parsed to epoch milliseconds; the
``--id-column`` value as ``source_id``. ``id`` is the row's 0-based position among the file's
data rows, so it points back into the file. A row that cannot be used is skipped and counted
under the first reason it fails (:data:`REASONS`), never raised: the caller decides with
``--max-bad-rows`` whether that many skips are acceptable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

import pandas as pd
import pyarrow as pa

from textclf.data.inputs import Table
from textclf.data.options import InputOptions
from textclf.data.parse import COLUMNS, SCHEMA, ParseResult
from textclf.data.text import join_text_cells
from textclf.errors import UserError

#: Skip reasons of generic data, in the order they are checked (``field_count``, ``bad_json``
#: and ``not_object`` come from the reader: a row it could not read at all).
REASONS: tuple[str, ...] = (
    "field_count",
    "bad_json",
    "not_object",
    "non_text",
    "blank_text",
    "bad_label",
    "blank_label",
    "blank_group",
    "bad_time",
    "blank_id",
    "duplicate_id",
)

_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?$")
_EPOCH = pd.Timestamp(0, tz="UTC")
#: Epoch numbers at least this large are milliseconds (1e11 ms is March 1973; 1e11 s is year 5138).
_MS_THRESHOLD = 1e11


def check_columns(table: Table, options: InputOptions, origin: str, *, fmt: str) -> None:
    """Refuse a missing --text-column/--label-column or a column the file does not have."""
    available = ", ".join(map(repr, table.columns)) or "none"
    missing = [
        flag
        for flag, given in (("--text-column", options.text_columns), ("--label-column", options.label_column))
        if not given
    ]
    if missing:
        raise UserError(f"{origin}: a {fmt} file needs {' and '.join(missing)} (its columns: {available})")
    unknown = [f"{flag} {name!r}" for flag, name in options.named_columns() if name not in table.columns]
    if unknown:
        raise UserError(f"{origin}: no such column: {', '.join(unknown)} (its columns: {available})")


def _scalar(value: Any) -> str | None:
    """A label/group/id cell as a string: "" when missing or blank, None when not a scalar."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        # Integer labels come back as floats from a column that also holds nulls: 3.0 is "3".
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _number_ms(value: float) -> int | None:
    if not math.isfinite(value):
        return None
    return int(value) if abs(value) >= _MS_THRESHOLD else round(value * 1000)


def _datetime_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # a naive time is read as UTC
    return round(value.timestamp() * 1000)


def parse_times(values: Sequence[Any]) -> list[int | None]:
    """Epoch milliseconds: ISO 8601 strings (naive = UTC), dates/datetimes, or epoch numbers
    (seconds, or milliseconds from 1e11 up); None where a value is missing or unreadable."""
    out: list[int | None] = [None] * len(values)
    pending: dict[int, str] = {}
    for i, value in enumerate(values):
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[i] = _number_ms(float(value)) if isinstance(value, float) else _number_ms(value)
        elif isinstance(value, datetime):
            out[i] = _datetime_ms(value)
        elif isinstance(value, date):
            out[i] = _datetime_ms(datetime.combine(value, time()))
        elif isinstance(value, str) and value.strip():
            text = value.strip()
            if _NUMBER.match(text):
                out[i] = _number_ms(float(text)) if "." in text else _number_ms(int(text))
            else:
                pending[i] = text
    if pending:
        parsed = pd.to_datetime(
            pd.Series(list(pending.values()), dtype=object), utc=True, errors="coerce", format="ISO8601"
        )
        for i, stamp in zip(pending, parsed, strict=True):
            if not pd.isna(stamp):
                out[i] = (stamp - _EPOCH) // pd.Timedelta(milliseconds=1)
    return out


def frame_from_table(table: Table, options: InputOptions) -> ParseResult:
    """Valid rows in the processed columns (:data:`COLUMNS`), plus what was skipped and why."""
    n = len(table.line_numbers)
    texts = [table.column(name) for name in options.text_columns]
    labels = table.column(options.label_column) if options.label_column else [None] * n
    groups = table.column(options.group_column) if options.group_column else None
    times = parse_times(table.column(options.time_column)) if options.time_column else None
    source_ids = table.column(options.id_column) if options.id_column else None
    seen_ids: set[str] = set()

    def usable(row: int) -> tuple[Any, ...] | str:
        """The row's processed values (in :data:`COLUMNS` order), or why it cannot be used."""
        text = join_text_cells([column[row] for column in texts], options.text_separator)
        if text is None:
            return "non_text"
        if not text:
            return "blank_text"
        label = _scalar(labels[row])
        if label is None:
            return "bad_label"
        if not label:
            return "blank_label"
        story = _scalar(groups[row]) if groups is not None else None
        if groups is not None and not story:
            return "blank_group"
        timestamp = times[row] if times is not None else None
        if times is not None and timestamp is None:
            return "bad_time"
        source_id = _scalar(source_ids[row]) if source_ids is not None else None
        if source_ids is not None and not source_id:
            return "blank_id"
        if source_id is not None:
            if source_id in seen_ids:
                return "duplicate_id"
            seen_ids.add(source_id)
        row_id = table.positions[row]
        return (row_id, text, label, None, story or str(row_id), None, None, timestamp, source_id)

    skips = table.skips.copy()
    kept: list[tuple[Any, ...]] = []
    for row in range(n):
        values = usable(row)
        if isinstance(values, str):
            skips.add(values, table.line_numbers[row])
        else:
            kept.append(values)
    cols = {name: [values[i] for values in kept] for i, name in enumerate(COLUMNS)}
    return skips.result(pa.Table.from_pydict(cols, schema=SCHEMA).to_pandas(), table.rows_read, REASONS)
