"""Score a whole file of headlines with a packaged model: ``textclf predict --input --output``.

Streams: rows are read, scored and written in chunks, so memory stays flat whatever the file's
size, and the output has one JSON line per input row, in input order, with the answer the
endpoint would give (``inference.predict_texts`` of the same archive: runtime, lexical blend and
confidence cascade included) and the model's version. Input formats:

- ``corpus``: the raw UCI ``newsCorpora.csv`` (8 tab-separated fields; the title is the 2nd), or
  the dataset's ``.zip``;
- ``csv`` / ``tsv``: a header row with a ``title`` or ``text`` column, or the ``--text-column`` columns
  the model was trained on (joined as ``textclf data`` joined them);
- ``jsonl``: one JSON object per line with ``text`` or ``title`` or the ``--text-column`` columns (or a
  bare JSON string);
- ``lines``: one headline per line.

A malformed row (wrong field count, no text column, invalid JSON, blank or over-long text) stops
the run with its line number, or with ``--skip-bad-rows`` is counted and skipped.
"""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from textclf_api.schemas import MAX_TEXT_CHARS

from textclf.data.options import DEFAULT_TEXT_SEPARATOR
from textclf.data.text import join_text_cells
from textclf.errors import UserError

FORMATS = ("auto", "corpus", "csv", "tsv", "jsonl", "lines")
TEXT_COLUMNS = ("text", "title")
CORPUS_FIELDS = 8
#: Rows per model call: big enough to amortise Python overhead, small enough to stay in cache.
CHUNK_ROWS = 512


class BadRowError(UserError):
    """A row that cannot be scored; the message names its line."""


@dataclass
class Summary:
    rows: int = 0
    skipped: int = 0
    seconds: float = 0.0
    skipped_lines: list[int] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def detect_format(path: Path) -> str:
    """The format of ``path``: the raw corpus layout wherever it is found (newsCorpora.csv keeps
    its layout when renamed .tsv or .txt, and read as a table or as lines it would fail or score
    its ids and URLs), else what the file's name says."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".zip":
        return "corpus"
    if _looks_like_corpus(_first_line(path)):
        return "corpus"
    by_suffix = {".tsv": "tsv", ".txt": "lines", ".csv": "csv"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    raise UserError(f"cannot tell the format of {path.name}; pass --format ({', '.join(FORMATS[1:])})")


def _first_line(path: Path) -> str:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        return handle.readline()


def _looks_like_corpus(line: str) -> bool:
    """newsCorpora.csv's rows: no header, 8 tab-separated fields, a numeric id first."""
    fields = line.rstrip("\r\n").split("\t")
    return len(fields) == CORPUS_FIELDS and fields[0].strip().isdigit()


def _open_text(path: Path, stack: ExitStack) -> IO[str]:
    """The file as UTF-8 text (the corpus member for a .zip); closed with ``stack``."""
    if path.suffix.lower() == ".zip":
        from textclf.config import UCI_MEMBER

        archive = stack.enter_context(zipfile.ZipFile(path))
        names = [n for n in archive.namelist() if n.endswith(UCI_MEMBER)]
        if not names:
            raise UserError(f"{path} has no {UCI_MEMBER}")
        member = stack.enter_context(archive.open(names[0]))
        return stack.enter_context(io.TextIOWrapper(member, encoding="utf-8", errors="strict", newline=""))
    return stack.enter_context(path.open("r", encoding="utf-8", errors="strict", newline=""))


def _check(text: Any, line: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadRowError(f"line {line}: the headline is missing or blank")
    if len(text) > MAX_TEXT_CHARS:
        raise BadRowError(f"line {line}: the text has {len(text)} characters; at most {MAX_TEXT_CHARS}")
    return text


def _corpus_text(raw: str, line: int) -> str:
    fields = raw.rstrip("\r\n").split("\t")
    if len(fields) != CORPUS_FIELDS:
        raise BadRowError(f"line {line}: {len(fields)} tab-separated fields, expected {CORPUS_FIELDS}")
    return _check(fields[1], line)


def _joined(cells: list[Any], separator: str, line: int) -> str:
    """Several --text-column cells as ``textclf data`` joined them for training."""
    text = join_text_cells(cells, separator)
    if text is None:
        raise BadRowError(f"line {line}: a --text-column cell is not text")
    return _check(text, line)


def _jsonl_text(raw: str, line: int, columns: Sequence[str] = (), separator: str = "") -> str:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise BadRowError(f"line {line}: not JSON ({exc})") from exc
    if isinstance(value, dict) and columns:
        return _joined([value.get(c) for c in columns], separator, line)
    if isinstance(value, dict):
        value = next((value[c] for c in TEXT_COLUMNS if c in value), None)
    return _check(value, line)


def _plain_text(raw: str, line: int) -> str:
    return _check(raw.rstrip("\r\n"), line)


def _lines(handle: IO[str], parse: Callable[[str, int], str]) -> Iterator[tuple[int, Callable[[], str]]]:
    for number, raw in enumerate(handle, start=1):
        yield number, partial(parse, raw, number)


def _table_rows(
    handle: IO[str], delimiter: str, columns: Sequence[str] = (), separator: str = ""
) -> Iterator[tuple[int, Callable[[], str]]]:
    reader = csv.reader(handle, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    if columns:
        yield from _named_columns_rows(reader, [h.strip() for h in header], columns, separator)
        return
    names = [h.strip().lower() for h in header]
    column = next((names.index(c) for c in TEXT_COLUMNS if c in names), None)
    if column is None:
        hint = (
            "; this looks like the raw newsCorpora file: pass --format corpus"
            if _looks_like_corpus("\t".join(header))
            else ""
        )
        raise UserError(f"the header {header} has no {' or '.join(TEXT_COLUMNS)} column{hint}")

    def text(row: list[str], line: int) -> str:
        if len(row) != len(names):
            raise BadRowError(f"line {line}: {len(row)} fields, the header has {len(names)}")
        return _check(row[column], line)

    for row in reader:
        yield reader.line_num, partial(text, row, reader.line_num)


def _named_columns_rows(
    reader: Any, header: list[str], columns: Sequence[str], separator: str
) -> Iterator[tuple[int, Callable[[], str]]]:
    missing = [c for c in columns if c not in header]
    if missing:
        raise UserError(
            f"no such column: --text-column {', '.join(map(repr, missing))} (the header: {header})"
        )
    indices = [header.index(c) for c in columns]

    def text(row: list[str], line: int) -> str:
        if len(row) != len(header):
            raise BadRowError(f"line {line}: {len(row)} fields, the header has {len(header)}")
        return _joined([row[i] for i in indices], separator, line)

    for row in reader:
        yield reader.line_num, partial(text, row, reader.line_num)


def iter_rows(
    path: Path, fmt: str, text_columns: Sequence[str] = (), text_separator: str = DEFAULT_TEXT_SEPARATOR
) -> Iterator[tuple[int, Callable[[], str]]]:
    """(line number, a function giving the row's headline or raising BadRowError), streamed: the
    caller decides whether a bad row stops the run or is skipped. ``text_columns`` (csv, tsv,
    jsonl) name the text the model was trained on, joined as ``textclf data`` joined them."""
    if text_columns and fmt not in ("csv", "tsv", "jsonl"):
        raise UserError(f"--text-column applies to csv, tsv and jsonl input, not {fmt}")
    with ExitStack() as stack:
        handle = _open_text(path, stack)
        cols, sep = tuple(text_columns), text_separator
        rows = {
            "corpus": lambda: _lines(handle, _corpus_text),
            "csv": lambda: _table_rows(handle, ",", cols, sep),
            "tsv": lambda: _table_rows(handle, "\t", cols, sep),
            "jsonl": lambda: _lines(handle, partial(_jsonl_text, columns=cols, separator=sep)),
            "lines": lambda: _lines(handle, _plain_text),
        }[fmt]
        try:
            yield from rows()
        except UnicodeDecodeError as exc:
            raise UserError(f"{path} is not UTF-8 text (byte {exc.start} of a read block)") from exc


def predict_file(
    model: Any,
    inference: Any,
    source: Path,
    out: IO[str],
    *,
    fmt: str = "auto",
    skip_bad_rows: bool = False,
    version: str,
    progress: Callable[[int], None] | None = None,
    text_columns: Sequence[str] = (),
    text_separator: str = DEFAULT_TEXT_SEPARATOR,
) -> Summary:
    """Score every row of ``source`` with a loaded ``inference.Classifier`` into ``out`` (JSONL)."""
    if fmt == "auto":
        fmt = detect_format(source)
    summary = Summary()
    started = time.perf_counter()
    chunk: list[str] = []

    def flush() -> None:
        for answer in inference.predict_texts(model, chunk):
            out.write(json.dumps({**answer, "model_version": version}, ensure_ascii=False) + "\n")
        summary.rows += len(chunk)
        if progress is not None:
            progress(len(chunk))
        chunk.clear()

    for number, text in iter_rows(source, fmt, text_columns, text_separator):
        try:
            chunk.append(text())
        except BadRowError:
            if not skip_bad_rows:
                raise
            summary.skipped += 1
            if len(summary.skipped_lines) < 20:
                summary.skipped_lines.append(number)
            continue
        if len(chunk) >= CHUNK_ROWS:
            flush()
    if chunk:
        flush()
    summary.seconds = time.perf_counter() - started
    return summary
