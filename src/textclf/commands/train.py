"""``textclf train``: fine-tune the classifier on the processed data with ``model/train.py``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf import training
from textclf.config import artifacts_dir
from textclf.errors import UserError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="fine-tune the text classifier locally (the SageMaker train.py, on this machine)",
        description="Run model/train.py as SageMaker would (flags = hyperparameters, SM_* folders) "
        "on the output of `textclf data`. Defaults train the bundled all-MiniLM-L6-v2 and its lexical "
        "head on 2 CPU cores in about 6 minutes on the news corpus (357 s measured by make demo, "
        "docs/results.md); longer texts cost more per row (textclf eda shows how much). A model "
        "already trained from the same data and settings is reused.",
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="processed dataset (default: <artifacts>/data)"
    )
    parser.add_argument("--out", type=Path, default=None, help="model directory (default: <artifacts>/model)")
    parser.add_argument(
        "--base-model",
        default=None,
        help="Hugging Face folder or Hub id (default: the local all-MiniLM-L6-v2)",
    )
    parser.add_argument("--epochs", type=float, default=training.DEFAULT_EPOCHS)
    parser.add_argument(
        "--max-train-samples",
        type=int,
        default=None,
        help="training rows, spread round-robin over stories (0 = all; default "
        f"{training.DEFAULT_MAX_TRAIN_SAMPLES} for headlines, fewer for a longer --max-length L: "
        f"{training.DEFAULT_MAX_TRAIN_SAMPLES} x (32/L)^1.5, about the same CPU time)",
    )
    parser.add_argument(
        "--max-eval-samples",
        type=int,
        default=training.DEFAULT_MAX_EVAL_SAMPLES,
        help="validation rows scored per evaluation (0 = all; default %(default)s)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per text (default: from the EDA report, else 32)",
    )
    parser.add_argument(
        "--truncation",
        choices=training.TRUNCATION_MODES,
        default=training.TrainSettings.truncation,
        help="tokens kept of a text longer than --max-length: the first (head), the last (tail) or "
        "both ends (head+tail: a quarter from the start, the rest from the end; for long documents). "
        "Serving cuts the same way. Default %(default)s",
    )
    parser.add_argument("--batch-size", type=int, default=training.DEFAULT_BATCH_SIZE)
    parser.add_argument("--learning-rate", type=float, default=training.DEFAULT_LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=training.DEFAULT_SEED)
    parser.add_argument(
        "--freeze-layers",
        type=int,
        default=training.DEFAULT_FREEZE_LAYERS,
        help="freeze the embeddings and the first N transformer layers (0 = train all; default %(default)s)",
    )
    parser.add_argument(
        "--evals-per-epoch",
        type=int,
        default=training.DEFAULT_EVALS_PER_EPOCH,
        help="validation passes per epoch",
    )
    parser.add_argument(
        "--no-lexical-head",
        dest="lexical_head",
        action="store_false",
        help="transformer only: skip the TF-IDF head fitted on every training row (model/lexical.py)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads per process (default: cores / processes)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="data-parallel processes under torchrun (gloo on CPU); --batch-size rows each per step",
    )
    parser.add_argument("--force", action="store_true", help="retrain even if an identical model exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for name in ("epochs", "batch_size", "learning_rate", "evals_per_epoch"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0")
    if (args.max_train_samples or 0) < 0 or args.max_eval_samples < 0 or args.freeze_layers < 0:
        raise UserError("--max-train-samples, --max-eval-samples and --freeze-layers must be >= 0")
    if not 1 <= args.processes <= 64:
        raise UserError("--processes must be between 1 and 64")
    if args.max_length is not None and args.max_length < 8:
        raise UserError("--max-length must be >= 8")
    data = (args.data or artifacts_dir() / "data").resolve()
    out = (args.out or artifacts_dir() / "model").resolve()
    base_model = args.base_model or training.default_base_model()
    if Path(base_model).exists():
        base_model = str(Path(base_model).resolve())  # same model, same identity, from any cwd
    max_length = args.max_length or training.default_max_length()
    max_train_samples = args.max_train_samples
    if max_train_samples is None:
        max_train_samples = training.default_max_train_samples(max_length)
        if max_train_samples < training.DEFAULT_MAX_TRAIN_SAMPLES:
            print(
                f"training on up to {max_train_samples:,} rows at max_length {max_length} (the CPU "
                "budget of the headline default; --max-train-samples N or 0 for all)"
            )
    settings = training.TrainSettings(
        base_model=base_model,
        epochs=args.epochs,
        max_train_samples=max_train_samples,
        max_eval_samples=args.max_eval_samples,
        max_length=max_length,
        truncation=args.truncation,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        freeze_layers=args.freeze_layers,
        evals_per_epoch=args.evals_per_epoch,
        lexical_head=int(args.lexical_head),
        num_threads=args.threads or max(1, training.default_num_threads() // args.processes),
        processes=args.processes,
    )
    result = training.run_training(data, out, settings, force=args.force)
    print(training.summary(result))
    return 0
