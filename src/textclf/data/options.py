"""What ``textclf data`` is told about its input: format, columns, and the checks' thresholds.

Plain Python (no pandas/pyarrow) so the CLI can show these defaults in ``--help`` cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from textclf.errors import UserError

FORMATS: tuple[str, ...] = ("csv", "tsv", "jsonl", "parquet", "hf", "uci")
#: The news corpus preset's name in the manifest (``input.preset``).
NEWS_PRESET = "uci-news"
#: Between the cells of several ``--text-column``s. Whitespace alone would vanish: WordPiece and
#: most other tokenizers drop it, so "title body" would read as one sentence. " | " is one
#: punctuation token every tokenizer keeps (a visible boundary the model can learn), unlike
#: "[SEP]", which only BERT-family vocabularies treat as a separator; TF-IDF ignores it.
DEFAULT_TEXT_SEPARATOR = " | "

_BAD_ROWS = re.compile(r"^\s*(\d+)\s*$|^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class InputOptions:
    """How to read a file: its format and which columns hold what (all optional)."""

    format: str | None = None  # None: detect
    text_columns: tuple[str, ...] = ()
    text_separator: str = DEFAULT_TEXT_SEPARATOR
    label_column: str | None = None
    group_column: str | None = None
    time_column: str | None = None
    id_column: str | None = None

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if any(not name for name in self.text_columns):
            raise UserError("--text-column: empty column name")
        if len(set(self.text_columns)) != len(self.text_columns):
            raise UserError(f"--text-column names a column twice: {list(self.text_columns)}")
        if self.label_column is not None and self.label_column in self.text_columns:
            raise UserError(
                f"--label-column {self.label_column!r} is also a --text-column: "
                "the model would read its answer"
            )

    def named_columns(self) -> list[tuple[str, str]]:
        """(flag, column) for every column option given, text columns first."""
        named = [("--text-column", name) for name in self.text_columns]
        for flag, name in (
            ("--label-column", self.label_column),
            ("--group-column", self.group_column),
            ("--time-column", self.time_column),
            ("--id-column", self.id_column),
        ):
            if name is not None:
                named.append((flag, name))
        return named

    def describe(self, fmt: str) -> dict[str, Any]:
        """The manifest's ``input`` block for a generic (non-preset) file."""
        return {
            "format": fmt,
            "preset": None,
            "text_columns": list(self.text_columns),
            "text_separator": self.text_separator,
            "label_column": self.label_column,
            "group_column": self.group_column,
            "time_column": self.time_column,
            "id_column": self.id_column,
        }


#: The news corpus' time column (epoch ms), the one ``--time-column`` it takes for a time split.
NEWS_TIME_COLUMN = "TIMESTAMP"

#: The manifest's ``input`` block for the news preset: its fixed newsCorpora columns.
NEWS_INPUT: dict[str, Any] = {
    "format": "uci",
    "preset": NEWS_PRESET,
    "text_columns": ["TITLE"],
    "text_separator": None,
    "label_column": "CATEGORY",
    "group_column": "STORY",
    "time_column": None,
    "id_column": None,
}


def news_input(options: InputOptions) -> dict[str, Any]:
    """The news preset's ``input`` block; ``--time-column TIMESTAMP`` splits it by time."""
    return {**NEWS_INPUT, "time_column": options.time_column}


@dataclass(frozen=True)
class TimeRange:
    """``--since``/``--until``: keep rows with since <= time < until (epoch ms; None: open)."""

    since: int | None = None
    until: int | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise UserError(
                f"--since {iso_ms(self.since)} must be before --until {iso_ms(self.until)}: "
                "the range is empty"
            )

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> TimeRange:
        return cls(_date_ms("--since", since), _date_ms("--until", until))

    @property
    def given(self) -> bool:
        return self.since is not None or self.until is not None

    def describe(self) -> dict[str, str | None]:
        """The recipe's and manifest's ``rows_between`` block (ISO 8601, UTC)."""
        return {
            "since": iso_ms(self.since) if self.since is not None else None,
            "until": iso_ms(self.until) if self.until is not None else None,
        }


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC (seconds precision)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _date_ms(flag: str, value: str | None) -> int | None:
    if value is None:
        return None
    from textclf.data.generic import parse_times

    parsed = parse_times([value])[0]
    if parsed is None:
        raise UserError(f"{flag} {value!r} is not a date: give ISO 8601 (2014-04-01, 2014-04-01T12:00Z)")
    return parsed


def split_column_list(values: Sequence[str] | None) -> tuple[str, ...]:
    """``--text-column a,b --text-column c`` -> ("a", "b", "c"); names are stripped."""
    return tuple(part.strip() for value in values or () for part in value.split(","))


#: Default for --min-rows-per-label: fewer rows cannot fill a 10% validation and test share.
DEFAULT_MIN_ROWS_PER_LABEL = 10
#: Default for --max-bad-rows: up to 1% of the rows read may be skipped (blank text, blank label,
#: unreadable row...). A few blank cells are normal in exported data; more usually means a wrong
#: --text-column/--label-column or a broken export, which should stop the run, not shrink it.
DEFAULT_MAX_BAD_ROWS = "1%"
CONFLICT_POLICIES = ("drop", "keep")


@dataclass(frozen=True)
class Checks:
    """The refusal thresholds of ``textclf data`` (recorded in the recipe and the manifest)."""

    min_rows_per_label: int = DEFAULT_MIN_ROWS_PER_LABEL
    max_bad_rows: str = DEFAULT_MAX_BAD_ROWS
    #: "drop", "keep", or None: refuse conflicting labels (generic data) / keep them (news preset).
    conflicts: str | None = None

    def __post_init__(self) -> None:
        if self.min_rows_per_label < 1:
            raise UserError(f"--min-rows-per-label must be >= 1, got {self.min_rows_per_label}")
        bad_rows_limit(self.max_bad_rows, 0)  # refuse a malformed value before any work
        if self.conflicts is not None and self.conflicts not in CONFLICT_POLICIES:
            raise UserError(f"--conflicts must be drop or keep, got {self.conflicts!r}")

    def resolved(self, *, preset: bool) -> dict[str, Any]:
        """The checks as applied; the news preset keeps conflicting rows, as it always has."""
        policy = self.conflicts or ("keep" if preset else "refuse")
        return {
            "min_rows_per_label": self.min_rows_per_label,
            "max_bad_rows": self.max_bad_rows.strip(),
            "conflicts": policy,
        }


def bad_rows_limit(spec: str, rows_read: int) -> int:
    """Rows that may be skipped: ``"N"`` rows, or ``"P%"`` of ``rows_read`` (rounded down)."""
    match = _BAD_ROWS.match(spec)
    if match is None:
        raise UserError(
            f"--max-bad-rows must be a row count (e.g. 50) or a percentage (e.g. 2%), got {spec!r}"
        )
    if match.group(1) is not None:
        return int(match.group(1))
    percent = float(match.group(2))
    if percent > 100:
        raise UserError(f"--max-bad-rows must be at most 100%, got {spec!r}")
    return int(rows_read * percent / 100)
