"""Argument helpers shared by several commands."""

from __future__ import annotations

from textclf.errors import UserError


def key_values(pairs: list[str], flag: str) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> ``{"KEY": "VALUE"}`` (values may contain ``=``); a pair without
    ``=`` or with an empty key is a one-line user error naming ``flag``."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} takes KEY=VALUE pairs, got {pair!r}")
        found[key] = value
    return found
