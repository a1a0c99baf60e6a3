"""``textclf completion bash|zsh|tcsh``: a shell completion script generated from the parser tree.

shtab writes the script from argparse itself, so a new command or flag completes without anyone
editing a hand-kept script.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textclf.errors import UserError

#: Shells offered (all of which shtab has supported since 1.7, the version pyproject asks for).
SHELLS = ("bash", "zsh", "tcsh")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "completion",
        help="print a shell completion script (commands, flags, choices, file names)",
        description="Print the completion script for SHELL on stdout. Load it for this shell with\n\n"
        '  eval "$(textclf completion bash)"\n\n'
        "or keep it: textclf completion bash > ~/.local/share/bash-completion/completions/textclf "
        "(zsh: textclf completion zsh > a file named _textclf in a folder on $fpath).",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell the script is for")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import shtab
    except ImportError as exc:  # pragma: no cover - a dependency in pyproject
        raise UserError("shell completion needs shtab: pip install shtab") from exc
    from textclf.cli import build_parser

    parser = build_parser()
    for action in _actions(parser):
        # Path-typed options complete file names; the rest complete their choices or nothing.
        if action.type is Path and not hasattr(action, "complete"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    print(shtab.complete(parser, shell=args.shell), end="")
    return 0


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
