"""Parse a request body as strict, bounded JSON before anything recurses into it.

Python's ``json`` recurses once per nesting level, so a 20 KB body of ``[[[[...`` exhausts the
interpreter's recursion limit inside the parser (a ``RecursionError``, not a ``ValueError``). The
depth is therefore measured first, in one linear scan that skips string contents, and a body
nested deeper than any request could be is refused with a message. The parse itself is strict
where the standard library is lenient and two readers of one body could disagree: a duplicate key
(which value wins?), ``NaN``/``Infinity`` (not JSON), and any encoding but UTF-8 (``json.loads``
of bytes would silently accept UTF-16 and UTF-32).

The model container's ``inference.py`` applies the same rules in its own copy (it ships
self-contained); ``tests/unit/api/test_hostile.py`` runs one table of hostile bodies through both.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

#: The API's documents nest 2 levels (``{"texts": [...]}``); 32 leaves room for any future schema.
MAX_DEPTH: Final = 32

# A whole string literal (brackets inside it do not nest). An unterminated one runs to the end in a
# single match, so the scan stays linear on any input.
_STRINGS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS: Final = re.compile(r"[^\[\]{}]+")


class JsonBodyError(ValueError):
    """The body is not strict UTF-8 JSON within the bounds; the message says what is wrong."""


def nesting_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """The deepest nesting of ``text``, counting up to ``limit + 1`` (then it stops scanning)."""
    if text.count("[") + text.count("{") <= limit:
        return min(text.count("[") + text.count("{"), limit)  # cannot nest deeper than it opens
    # The regexes run in C; the loop then walks only the brackets outside strings.
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise JsonBodyError(f"the request body repeats the key {key[:40]!r}; send each field once")
        document[key] = value
    return document


def _no_constant(name: str) -> Any:
    raise JsonBodyError(f"the request body contains {name}, which is not valid JSON")


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """``data`` parsed as strict JSON, or :class:`JsonBodyError` naming the problem."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonBodyError(
                f"the request body is not UTF-8 (invalid byte at offset {exc.start}); send UTF-8 JSON"
            ) from exc
    else:
        text = data
    if text.startswith("\ufeff"):
        raise JsonBodyError("the request body starts with a byte-order mark; send UTF-8 JSON without one")
    if nesting_depth(text, max_depth) > max_depth:
        raise JsonBodyError(f"the request body nests deeper than {max_depth} levels")
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except JsonBodyError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonBodyError(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except ValueError as exc:  # e.g. an integer literal longer than Python converts (4,300 digits)
        raise JsonBodyError("the request body holds a number too large to read") from exc
    _check_strings(document)
    return document


def _check_strings(value: Any) -> None:
    """Refuse a ``\\ud800``-style escape of half a surrogate pair: no UTF-8 text can hold it, so
    the first encode downstream (the endpoint call, a log line) would fail on it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise JsonBodyError(
                f"the request body has an unpaired surrogate escape (\\u{ord(value[exc.start]):04x})"
            ) from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)
