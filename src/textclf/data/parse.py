"""Parse and validate the raw UCI ``newsCorpora.csv`` (8-field TSV, no header, no quoting).

The file is split on tabs by hand rather than with a CSV reader: titles start with or contain
``"`` and any quote-aware reader strips those quotes or merges lines. Every row is validated;
a bad row is counted under a reason and skipped, never raised, so one broken line cannot stop
a 370k-row ingestion.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from textclf.data.files import read_bytes
from textclf.data.text import normalize_whitespace
from textclf.errors import UserError
from textclf.labels import CATEGORY_TO_LABEL

log = logging.getLogger(__name__)

N_FIELDS = 8

#: Output columns (DESIGN.md "Processed data"), in this order.
COLUMNS: tuple[str, ...] = (
    "id",
    "text",
    "label",
    "category",
    "story",
    "publisher",
    "hostname",
    "timestamp",
    "source_id",
)

#: Arrow schema of every processed parquet file; fixing it keeps empty splits and pandas
#: versions from changing column types under the training code.
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("text", pa.string()),
        ("label", pa.string()),
        ("category", pa.string()),
        ("story", pa.string()),
        ("publisher", pa.string()),
        ("hostname", pa.string()),
        ("timestamp", pa.int64()),
        # The user's --id-column value for generic data; null for the news preset (id is its ID).
        ("source_id", pa.string()),
    ]
)

#: The news preset's labels in class-id order (CATEGORY_TO_LABEL's order).
NEWS_LABELS: tuple[str, ...] = tuple(CATEGORY_TO_LABEL.values())

#: Skip reasons, in the order they are checked (a row is counted once, under the first failure).
REASONS: tuple[str, ...] = (
    "bad_encoding",
    "empty_line",
    "field_count",
    "bad_id",
    "blank_title",
    "bad_category",
    "blank_story",
    "bad_timestamp",
    "duplicate_id",
)

RAW_SUFFIXES = (".csv", ".tsv", ".zip")

# Line numbers kept per reason so a report can point at examples without storing every line.
_EXAMPLES_PER_REASON = 5


def looks_like_news_row(line: str) -> bool:
    """A newsCorpora.csv row: 8 tab-separated fields, a numeric ID, a b/t/e/m CATEGORY (no header)."""
    fields = line.rstrip("\r\n").split("\t")
    return (
        len(fields) == N_FIELDS
        and _parse_int(fields[0]) is not None
        and fields[4].strip() in CATEGORY_TO_LABEL
    )


def _parse_int(value: str) -> int | None:
    value = value.strip()
    # int() accepts "1_000" and "+5"; only plain decimal digits are real IDs/timestamps.
    if not value.isascii() or not value.isdigit():
        return None
    return int(value)


@dataclass
class SkipLog:
    """Rows skipped per reason, with the line numbers of the first few of each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)

    def add(self, reason: str, line: int) -> None:
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < _EXAMPLES_PER_REASON:
            kept.append(line)

    def copy(self) -> SkipLog:
        return SkipLog(Counter(self.counts), {reason: list(lines) for reason, lines in self.examples.items()})

    def result(self, frame: pd.DataFrame, rows_read: int, reasons: tuple[str, ...]) -> ParseResult:
        ordered = {reason: self.counts[reason] for reason in reasons if self.counts.get(reason)}
        return ParseResult(frame=frame, rows_read=rows_read, skipped=ordered, examples=self.examples)


@dataclass
class ParseResult:
    """Valid rows as a DataFrame plus what was skipped and why."""

    frame: pd.DataFrame
    rows_read: int
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[int]] = field(default_factory=dict)

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def rows_valid(self) -> int:
        return len(self.frame)


def parse_lines(lines: Iterable[bytes | str]) -> ParseResult:
    """Validate raw lines (bytes or text, with or without line terminators).

    Meant for the pieces of a file split on LF: ``rows_read`` counts every piece except a
    zero-length last one (what follows the file's final newline). Returns valid rows with the
    canonical label names.
    """
    cols: dict[str, list[object]] = {name: [] for name in COLUMNS}
    skips = SkipLog()
    skip = skips.add
    skipped, examples = skips.counts, skips.examples
    seen_ids: set[int] = set()
    rows_read = 0

    final_piece_empty = False
    for line_no, raw in enumerate(lines, start=1):
        rows_read += 1
        final_piece_empty = len(raw) == 0
        if isinstance(raw, bytes):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                skip("bad_encoding", line_no)
                continue
        else:
            line = raw
        # Strip only the terminator (LF or CRLF): trailing tabs are empty fields, not whitespace.
        line = line.rstrip("\r\n")
        if not line.strip():
            skip("empty_line", line_no)
            continue
        parts = line.split("\t")
        if len(parts) != N_FIELDS:
            skip("field_count", line_no)
            continue
        raw_id, title, _url, publisher, category, story, hostname, raw_ts = parts
        row_id = _parse_int(raw_id)
        if row_id is None:
            skip("bad_id", line_no)
            continue
        text = normalize_whitespace(title)
        if not text:
            skip("blank_title", line_no)
            continue
        category = category.strip()
        if category not in CATEGORY_TO_LABEL:
            skip("bad_category", line_no)
            continue
        story = story.strip()
        if not story:
            # The STORY id is what the splitter groups on; a row without one cannot be placed.
            skip("blank_story", line_no)
            continue
        timestamp = _parse_int(raw_ts)
        if timestamp is None:
            skip("bad_timestamp", line_no)
            continue
        if row_id in seen_ids:
            skip("duplicate_id", line_no)
            continue
        seen_ids.add(row_id)
        cols["id"].append(row_id)
        cols["text"].append(text)
        cols["label"].append(CATEGORY_TO_LABEL[category])
        cols["category"].append(category)
        cols["story"].append(story)
        cols["publisher"].append(normalize_whitespace(publisher))
        cols["hostname"].append(hostname.strip())
        cols["timestamp"].append(timestamp)
    cols["source_id"] = [None] * len(cols["id"])

    # Splitting a file on LF leaves one zero-length piece after its final newline: not a row.
    # (A real blank line is a zero-length piece too, but never the last one.)
    if final_piece_empty:
        rows_read -= 1
        skipped["empty_line"] -= 1
        if not skipped["empty_line"]:
            del skipped["empty_line"]
        if examples.get("empty_line", [])[-1:] == [rows_read + 1]:
            examples["empty_line"].pop()
            if not examples["empty_line"]:
                del examples["empty_line"]

    return skips.result(pa.Table.from_pydict(cols, schema=SCHEMA).to_pandas(), rows_read, REASONS)


def read_raw_bytes(path: Path) -> bytes:
    """The raw corpus bytes from a ``.zip`` (its ``newsCorpora.csv``) or a ``.csv``/``.tsv``."""
    if path.suffix.lower() not in RAW_SUFFIXES and path.is_file():
        raise UserError(f"{path}: expected a .zip, .csv or .tsv file in the newsCorpora.csv format")
    return read_bytes(path)[0]


def parse_bytes(data: bytes) -> ParseResult:
    # Split on LF only: splitlines() would also break titles at \x0b, \x1c or U+2028.
    try:
        # One decode of the whole buffer is several times faster than 370k small ones.
        return parse_lines(data.decode("utf-8").split("\n"))
    except UnicodeDecodeError:
        # Some line is not UTF-8: decode per line so only that row is skipped.
        return parse_lines(data.split(b"\n"))


def parse_file(path: Path) -> ParseResult:
    """Parse a raw corpus file; logs a one-line warning when rows were skipped."""
    result = parse_bytes(read_raw_bytes(path))
    if result.skipped:
        reasons = ", ".join(f"{k}={v}" for k, v in result.skipped.items())
        log.warning("%s: skipped %d malformed rows (%s)", path, result.rows_skipped, reasons)
    return result
