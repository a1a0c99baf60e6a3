"""``textclf bench-train``: torchrun data-parallel training beside one process, on the same sample."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf import training
from textclf.config import artifacts_dir
from textclf.errors import UserError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench-train",
        help="train the same sample with 1 and with N torchrun processes; compare time and accuracy",
        description="Runs model/train.py twice on the processed data with the same effective batch: "
        "one process, then N data-parallel processes (torchrun, gloo on CPU). Prints time, rows/s "
        "and validation accuracy beside each other with the machine's CPU; writes bench_train.json.",
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="processed dataset (default <artifacts>/data)"
    )
    parser.add_argument("--out", type=Path, default=None, help="default <artifacts>/bench-train")
    parser.add_argument("--processes", type=int, default=2, help="data-parallel processes (default 2)")
    parser.add_argument("--rows", type=int, default=8_000, help="training rows (default %(default)s)")
    parser.add_argument("--eval-rows", type=int, default=2_000, help="validation rows (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="effective batch (default %(default)s)")
    parser.add_argument("--base-model", default=None, help="default: the local all-MiniLM-L6-v2")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.bench.training_bench import bench

    if not 2 <= args.processes <= 64 or args.rows < 100 or args.eval_rows < 100:
        raise UserError("need 2 <= --processes <= 64, --rows >= 100 and --eval-rows >= 100")
    data = (args.data or artifacts_dir() / "data").resolve()
    training.check_data(data)
    base = training.TrainSettings(
        base_model=args.base_model or training.default_base_model(),
        max_train_samples=args.rows,
        max_eval_samples=args.eval_rows,
        max_length=training.default_max_length(),
        batch_size=args.batch_size,
        evals_per_epoch=1,
    )
    print(bench(data, (args.out or artifacts_dir() / "bench-train").resolve(), base, args.processes))
    return 0
