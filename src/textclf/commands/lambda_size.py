"""``textclf lambda-size``: each Lambda function's unpacked size with its layers, and its cold import."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lambda-size",
        help="size (code + layers, unpacked) and cold handler import of each function of a sam build",
        description="Reads a `sam build` output (make lambda-size builds one) and prints, per function, "
        "its unpacked size with its layers and the median time to import its handler module in a fresh "
        "python3.12 that sees only the build folder, the layers and boto3 (as the Lambda runtime has it).",
    )
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=Path(".aws-sam/build"),
        help="sam build output (default: .aws-sam/build)",
    )
    parser.add_argument(
        "--python", default="python3.12", help="the runtime's interpreter (default: python3.12)"
    )
    parser.add_argument("--runs", type=int, default=10, help="fresh interpreters per function (default: 10)")
    parser.add_argument("--sizes-only", action="store_true", help="skip the import timing")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the figures and the machine to this JSON file (default: not written)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf import lambda_size
    from textclf.bench.runner import describe_machine
    from textclf.errors import UserError

    if args.runs < 1:
        raise UserError(f"--runs must be at least 1, not {args.runs}")
    python = None
    if not args.sizes_only:
        python = shutil.which(args.python)
        if python is None:
            raise UserError(f"{args.python} is not on PATH (the Makefile puts pyenv's python3.12 there)")
    machine = describe_machine()
    figures = lambda_size.measure(args.build_dir.resolve(), python=python, runs=args.runs)
    print(lambda_size.render(figures))
    if python:
        print(
            f"import: median wall-clock and CPU ms of {args.runs} fresh interpreters, "
            f"python {lambda_size.python_version(python)}; "
            f"CPU {machine['cpu_model']}, load average {machine['loadavg_1_5_15']}"
        )
    if args.json:
        args.json.write_text(lambda_size.as_json(figures, machine) + "\n", encoding="utf-8")
    return 0
