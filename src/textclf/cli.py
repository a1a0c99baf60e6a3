"""``textclf`` command line: one sub-command per module in ``textclf.commands``.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` (called with the parsed namespace, returns an exit code). Modules keep heavy
imports (torch, transformers) inside their functions so ``textclf --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from textclf import __version__, commands
from textclf.cli_args import CommandParser, HelpFormatter
from textclf.errors import UserError

EPILOG = """\
environment:
  TEXTCLF_ARTIFACTS  the folder every step reads its input from and writes its output to,
                     shown as <artifacts> in the commands' help (default: ./artifacts, in the
                     directory textclf runs from): data/, eda/, model/, eval/, package/, bench/

Run `textclf COMMAND --help` for a command's options, `textclf completion bash` for tab completion."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textclf",
        description="News-headline topic classifier: data, EDA, training, evaluation, packaging, "
        "deployment and a local stack.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"textclf {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"textclf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"textclf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
