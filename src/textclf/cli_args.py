"""Argument helpers shared by several commands."""

from __future__ import annotations

import argparse
from typing import Any

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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in ``--help``; descriptions and epilogs keep their paragraphs.

    A help text that already says its default (``default <artifacts>/data``, ``default:
    $SAGEMAKER_ROLE_ARN``) is left alone, and so are switches (off unless given) and options whose
    default is None or []: "(default: None)" says nothing, so their help says in words what happens
    without them (tests/unit/test_cli.py checks that every option's help does).
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False or action.default == []:
            return text
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        # Paragraphs re-wrap; lines indented by the author (lists, examples) stay as written.
        paragraphs = []
        for block in text.split("\n\n"):
            if any(line.startswith(" ") for line in block.splitlines()):
                paragraphs.append("\n".join(indent + line for line in block.splitlines()))
            else:
                paragraphs.append(super()._fill_text(block, width, indent))
        return "\n\n".join(paragraphs)


class CommandParser(argparse.ArgumentParser):
    """Parser of every sub-command: :class:`HelpFormatter`, and ``-v`` accepted after the command.

    ``add_subparsers`` builds sub-parsers of the parent's class, so nested actions
    (``textclf models list``) get the same. The flag's SUPPRESS default keeps a ``-v`` given
    before the command when none follows it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )
