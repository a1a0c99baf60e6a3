"""``textclf figures``: docs/theory.md's figures and numbers, from the trained model and the corpus."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from textclf.config import artifacts_dir


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "figures",
        help="make docs/theory.md's figures (attention, [CLS] vectors, WordPiece, blend, calibration)",
        description="From the trained model and the processed corpus: the 1/sqrt(d) simulation, an attention "
        "map, pooled [CLS] vectors, WordPiece splits and token lengths, the blend's weight and temperature "
        "curves, and reliability diagrams. Writes PNGs and theory.json.",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="trained model folder (default <artifacts>/model)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="processed dataset (default <artifacts>/data)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="default docs/img")
    parser.add_argument("--rows", type=int, default=5000, help="validation headlines for the blend figures")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.theory import make_figures

    report = make_figures(
        (args.model or artifacts_dir() / "model").resolve(),
        (args.data or artifacts_dir() / "data").resolve(),
        args.out,
        args.rows,
    )
    print(json.dumps(report, indent=2))
    return 0
