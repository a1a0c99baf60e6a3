"""``textclf leakage``: how much a random ROW split would overstate accuracy (vs the STORY split)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf.config import artifacts_dir


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "leakage",
        help="fit the baseline on a STORY split and on a random ROW split and compare test accuracy",
        description="Shows the leakage a random row split hides: headlines of one story are "
        "near-duplicates, so a row split tests on stories it trained on. Uses the TF-IDF + "
        "logistic-regression baseline (two fits of about a minute each). Writes leakage.json.",
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="processed dataset (default: <artifacts>/data)"
    )
    parser.add_argument("--out", type=Path, default=None, help="report directory (default: <artifacts>/eval)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the random row split")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.evaluation.leakage import LEAKAGE_FILE, format_leakage, leakage_demo

    art = artifacts_dir()
    out = (args.out or art / "eval").resolve()
    result = leakage_demo((args.data or art / "data").resolve(), out, args.seed)
    print(format_leakage(result))
    print(f"wrote {out / LEAKAGE_FILE}")
    return 0
