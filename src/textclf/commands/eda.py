"""``textclf eda``: plots, report and the ``max_length`` choice for the processed splits."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf import config


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eda",
        help="class balance, token lengths (-> max_length) and story sizes of the processed data",
        description="Write class_balance.png, token_lengths.png, headlines_per_story.png (grouped "
        "splits), report.md and eda.json (with the max_length that training uses: the coverage "
        "rule, capped for CPU cost; the report shows the cost of the uncapped length).",
    )
    parser.add_argument("--data", type=Path, default=None, help="processed data (default: <artifacts>/data)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <artifacts>/eda)")
    parser.add_argument(
        "--tokenizer", type=Path, default=None, help="tokenizer directory (default: the local base model)"
    )
    parser.add_argument(
        "--coverage", type=float, default=0.995, help="share of train texts max_length must cover"
    )
    parser.add_argument("--round-to", type=int, default=8, help="round max_length up to a multiple of this")
    parser.add_argument(
        "--sample", type=int, default=0, help="measure token lengths on at most N rows per split (0 = all)"
    )
    parser.add_argument("--force", action="store_true", help="recompute even if the outputs are up to date")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.eda import cost_note, run_eda

    data: Path = (args.data or config.artifacts_dir() / "data").resolve()
    out: Path = (args.out or config.artifacts_dir() / "eda").resolve()
    tokenizer: Path = (args.tokenizer or config.local_base_model()).resolve()
    result = run_eda(
        data,
        out,
        tokenizer,
        coverage=args.coverage,
        round_to=args.round_to,
        sample=args.sample,
        force=args.force,
    )
    s = result.summary
    train = s["token_lengths"]["train"]
    print(
        f"max_length {s['max_length']}  ({s['coverage_target']:.1%} of train texts fit in "
        f"{s['max_length_raw']} tokens; median {train['p50']:.0f}, p95 {train['p95']:.0f}, "
        f"longest {train['max']})"
    )
    note = cost_note(s)
    if note:
        print(note)
    for split, stats in s["token_lengths"].items():
        print(
            f"{split:<11} texts {stats['n']:>8,}  longer than max_length {stats['truncated']:>6,} "
            f"({1 - stats['coverage']:.2%})  coverage {stats['coverage']:.4%}"
        )
    state = "reused (up to date)" if result.reused else "written"
    print(f"{out}: {state} in {result.seconds:.1f} s (report.md, eda.json, {len(s['class_balance'])} splits)")
    return 0
