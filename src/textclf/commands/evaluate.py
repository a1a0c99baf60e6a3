"""``textclf evaluate``: a model beside the TF-IDF baseline and anchor, on a split or a raw corpus file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf.config import artifacts_dir
from textclf.errors import UserError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "evaluate",
        help="accuracy, macro-F1, per-class P/R/F1, calibration, confusion matrix and throughput, "
        "beside a TF-IDF + logistic-regression baseline and a TF-IDF + linear-SVM anchor",
        description="Evaluate a trained model on a processed split (directory or .parquet) or a raw "
        "newsCorpora file (.csv/.tsv/.zip). Two linear models are fitted on --train-data: the "
        "baseline (TF-IDF + logistic regression) and the anchor (TF-IDF word 1-2 grams + LinearSVC "
        "C=0.5, the strongest linear model; margins only, so its ECE is n/a), each compared with "
        "the model on the same rows (McNemar's exact test). Prints a side-by-side table and writes "
        "evaluation.json and confusion_matrix.png. Labels are the model's (config.json id2label).",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="model directory (default: <artifacts>/model)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="split dir, .parquet or raw .csv/.tsv/.zip (default: <artifacts>/data/test)",
    )
    parser.add_argument(
        "--train-data",
        type=Path,
        default=None,
        help="training split for the linear models (default: <artifacts>/data/train)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline and the anchor")
    parser.add_argument("--out", type=Path, default=None, help="report directory (default: <artifacts>/eval)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--max-samples", type=int, default=0, help="evaluate a random sample of N rows (0 = all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --max-samples and the latency sample")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for the model (default: torch's)"
    )
    parser.add_argument("--force", action="store_true", help="re-evaluate even if an identical report exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.evaluation.report import EvalSettings, evaluate, format_table

    if args.batch_size <= 0:
        raise UserError("--batch-size must be > 0")
    if args.max_samples < 0:
        raise UserError("--max-samples must be >= 0 (0 = all)")
    art = artifacts_dir()
    train_data = None if args.no_baseline else (args.train_data or art / "data" / "train")
    if train_data is not None and not train_data.exists():
        first = "run `textclf data` first, or " if args.train_data is None else ""
        raise UserError(
            f"baseline training data not found: {train_data} ({first}pass --train-data or --no-baseline)"
        )
    settings = EvalSettings(
        model_dir=(args.model or art / "model").resolve(),
        data=(args.data or art / "data" / "test").resolve(),
        out=(args.out or art / "eval").resolve(),
        train_data=train_data.resolve() if train_data is not None else None,
        batch_size=args.batch_size,
        max_samples=args.max_samples,
        seed=args.seed,
        num_threads=args.threads,
    )
    if not settings.data.exists():
        first = "run `textclf data` first, or pass --data" if args.data is None else "no such file"
        raise UserError(f"no such data: {settings.data} ({first})")
    report = evaluate(settings, force=args.force)
    print(format_table(report))
    note = " (reused)" if report.get("reused") else ""
    print(f"wrote {settings.out / 'evaluation.json'} and {settings.out / 'confusion_matrix.png'}{note}")
    return 0
