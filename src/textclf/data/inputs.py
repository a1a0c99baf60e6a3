"""Read a labelled dataset in any supported layout into columns of plain Python values.

Formats (``--format``; by default told by the name and, for ``.csv``/``.tsv``/``.zip``, the first
line): ``uci`` (the raw newsCorpora file or its zip: the news preset, read by :mod:`parse`),
``csv`` / ``tsv`` (a header row, RFC 4180 quoting), ``jsonl`` (one JSON object per line; a
``.json`` file may also hold one array of objects), ``parquet``, and ``hf`` (a Hugging Face
``datasets`` ``save_to_disk`` folder, read from its Arrow files with pyarrow, so the
``datasets`` package is not needed; a ``DatasetDict`` folder gives the rows of all its splits).

Cells keep their Python type (CSV cells are always strings; JSON and Arrow cells may be numbers,
lists, nulls...) so the caller can tell a non-text cell from a text one. Rows that cannot be read
at all (a CSV record with the wrong field count, a line that is not a JSON object) are counted
under a skip reason here, exactly as :func:`textclf.data.parse.parse_lines` counts malformed
newsCorpora lines.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from textclf.data.files import first_line, read_bytes
from textclf.data.options import FORMATS, NEWS_TIME_COLUMN, InputOptions
from textclf.data.parse import SkipLog, looks_like_news_row
from textclf.errors import UserError

_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# Long documents exceed csv's default 128 KiB field limit; 2**31-1 fits every platform's C long.
_CSV_FIELD_LIMIT = 2**31 - 1


def detect_format(path: Path) -> str:
    """The format of ``path`` when ``--format`` is not given."""
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".zip", ".csv", ".tsv", ".txt"):
        # newsCorpora.csv is a header-less TSV whatever it is called: its first row tells.
        line, name = first_line(path)
        if looks_like_news_row(line):
            return "uci"
        suffix = Path(name).suffix.lower()
    fmt = _SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        raise UserError(f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS)})")
    return fmt


def resolve_format(path: Path, options: InputOptions, origin: str) -> str:
    """``--format`` or the detected format; refuses column options for the news corpus."""
    fmt = options.format or detect_format(path)
    # Its own time column is the one a news corpus takes: --time-column TIMESTAMP splits it by time.
    named = [pair for pair in options.named_columns() if pair != ("--time-column", NEWS_TIME_COLUMN)]
    if fmt == "uci" and named:
        flags = ", ".join(dict.fromkeys(flag for flag, _ in named))
        raise UserError(
            f"{origin} is the news corpus (newsCorpora.csv: no header, fixed columns), so {flags} "
            f"cannot apply (but --time-column {NEWS_TIME_COLUMN}); drop them, or pass --format csv/tsv "
            "if its first line is a header"
        )
    return fmt


@dataclass
class Table:
    """A file's rows: its column names, a way to get one column's cells, and what was unreadable."""

    columns: list[str]
    rows_read: int
    get: Callable[[str], list[Any]]
    #: Line (CSV, JSONL) or row (Parquet, Arrow) number of every readable row, 1-based.
    line_numbers: list[int]
    #: 0-based position of every readable row among all the rows read (unreadable ones count).
    positions: list[int]
    skips: SkipLog = field(default_factory=SkipLog)
    #: Per column: class id -> name, from a ``datasets`` ClassLabel feature.
    class_names: dict[str, list[str]] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        values = self.get(name)
        names = self.class_names.get(name)
        if names is None:
            return values
        # Ids outside the ClassLabel's range stay numbers, so they show up as their own labels.
        return [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in values]

    def keep(self, line: int) -> None:
        """Record a readable row (call after counting it in ``rows_read``)."""
        self.line_numbers.append(line)
        self.positions.append(self.rows_read - 1)


def _decode(data: bytes, origin: str) -> str:
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{origin} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc


def _read_delimited(text: str, delimiter: str, origin: str) -> Table:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise UserError(f"{origin}: no header row (an empty file?)")
    columns = [h.strip() for h in header]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise UserError(f"{origin}: the header names {', '.join(map(repr, repeated))} more than once")
    rows: list[list[str]] = []
    table = Table(columns=columns, rows_read=0, get=lambda name: [], line_numbers=[], positions=[])
    try:
        for row in reader:
            if not row:  # a blank line between records: not a row
                continue
            table.rows_read += 1
            if len(row) != len(columns):
                table.skips.add("field_count", reader.line_num)
                continue
            rows.append(row)
            table.keep(reader.line_num)
    except csv.Error as exc:
        raise UserError(f"{origin}: line {reader.line_num}: {exc}") from exc
    index = {name: i for i, name in enumerate(columns)}
    table.get = lambda name: [row[index[name]] for row in rows]
    return table


_NOT_JSON = object()


def _json_values(text: str, origin: str) -> list[tuple[int, Any]]:
    """(line number, value) per non-blank line, or (index, item) for a JSON array file;
    a line that is not JSON gives the marker ``_NOT_JSON``."""
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{origin}: not valid JSON ({exc})") from exc
        return list(enumerate(values, start=1))
    numbered: list[tuple[int, Any]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            numbered.append((number, json.loads(line)))
        except ValueError:
            numbered.append((number, _NOT_JSON))
    return numbered


def _read_jsonl(text: str, origin: str) -> Table:
    records: list[dict[str, Any]] = []
    columns: dict[str, None] = {}  # every key seen, in order of first appearance
    table = Table(columns=[], rows_read=0, get=lambda name: [], line_numbers=[], positions=[])
    for number, value in _json_values(text, origin):
        table.rows_read += 1
        if value is _NOT_JSON:
            table.skips.add("bad_json", number)
        elif not isinstance(value, dict):
            table.skips.add("not_object", number)
        else:
            records.append(value)
            table.keep(number)
            columns.update(dict.fromkeys(value))
    table.columns = list(columns)
    table.get = lambda name: [record.get(name) for record in records]
    return table


def _arrow_table(table: pa.Table) -> Table:
    return Table(
        columns=list(table.column_names),
        rows_read=table.num_rows,
        get=lambda name: table.column(name).to_pylist(),
        line_numbers=list(range(1, table.num_rows + 1)),
        positions=list(range(table.num_rows)),
    )


def _read_parquet(path: Path) -> Table:
    try:
        return _arrow_table(pq.read_table(path))
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UserError(f"{path}: not a readable parquet file ({exc})") from exc


def _read_json_file(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: expected a JSON object")
    return loaded


def _read_arrow_file(path: Path) -> pa.Table:
    # datasets writes Arrow IPC *streams*; accept the random-access file format too.
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_stream(source).read_all()
    except pa.ArrowInvalid:
        try:
            with pa.memory_map(str(path)) as source:
                return pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowException) as exc:
            raise UserError(f"{path}: not a readable Arrow file ({exc})") from exc
    except OSError as exc:
        raise UserError(f"{path}: not a readable Arrow file ({exc})") from exc


def _hf_dataset(folder: Path) -> tuple[pa.Table, dict[str, list[str]]]:
    """One ``Dataset.save_to_disk`` folder: its rows and its ClassLabel names per column."""
    state = _read_json_file(folder / "state.json")
    files = [entry.get("filename") for entry in state.get("_data_files", []) if isinstance(entry, dict)]
    if not files or not all(isinstance(f, str) for f in files):
        raise UserError(f"{folder / 'state.json'}: lists no _data_files")
    tables = [_read_arrow_file(folder / str(name)) for name in files]
    info = _read_json_file(folder / "dataset_info.json") if (folder / "dataset_info.json").is_file() else {}
    features = info.get("features") if isinstance(info.get("features"), dict) else {}
    class_names = {
        name: [str(n) for n in feature["names"]]
        for name, feature in (features or {}).items()
        if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and feature.get("names")
    }
    try:
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except pa.ArrowInvalid as exc:
        raise UserError(f"{folder}: its Arrow files have different columns ({exc})") from exc
    return table, class_names


def _read_hf(folder: Path) -> Table:
    if (folder / "dataset_dict.json").is_file():
        splits = _read_json_file(folder / "dataset_dict.json").get("splits")
        if not isinstance(splits, list) or not splits:
            raise UserError(f"{folder / 'dataset_dict.json'}: lists no splits")
        # We split again ourselves, so a DatasetDict's splits are read as one table, in order.
        parts = [_hf_dataset(folder / str(split)) for split in splits]
        try:
            table = pa.concat_tables([part for part, _ in parts], promote_options="default")
        except pa.ArrowInvalid as exc:
            raise UserError(f"{folder}: its splits have different columns ({exc})") from exc
        class_names: dict[str, list[str]] = {}
        for _, names in parts:
            class_names.update(names)
    elif (folder / "state.json").is_file():
        table, class_names = _hf_dataset(folder)
    else:
        raise UserError(f"{folder}: not a datasets save_to_disk folder (no state.json or dataset_dict.json)")
    result = _arrow_table(table)
    result.class_names = class_names
    return result


def read_table(path: Path, fmt: str) -> Table:
    """Read a non-preset file of format ``fmt`` (see :data:`FORMATS`)."""
    if fmt == "hf":
        if not path.is_dir():
            raise UserError(f"--format hf expects a datasets save_to_disk folder, got the file {path}")
        return _read_hf(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; only --format hf (a datasets save_to_disk folder) reads one")
    if fmt == "parquet":
        return _read_parquet(path)
    data, name = read_bytes(path)
    text = _decode(data, name)
    if fmt == "jsonl":
        return _read_jsonl(text, name)
    if fmt in ("csv", "tsv"):
        return _read_delimited(text, "," if fmt == "csv" else "\t", name)
    raise UserError(f"read_table: unsupported format {fmt!r}")
