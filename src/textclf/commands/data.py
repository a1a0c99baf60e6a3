"""``textclf data``: download/read the UCI corpus, validate, split by STORY, write parquet (+ S3)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf import config
from textclf.aws_clients import add_aws_arguments, target_from_args

#: Where the stack's training function reads datasets/latest.json (template.yaml DATASET_POINTER_KEY).
DATASETS_PREFIX = "datasets"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "data",
        help="prepare train/validation/test parquet splits (grouped by STORY) from the UCI corpus",
        description="Read the UCI News Aggregator corpus (official URL, cached, or a local "
        ".zip/newsCorpora.csv), validate every row, split by STORY and write parquet + manifest. "
        "A re-run with the same source, seed and fractions reuses the finished output.",
    )
    parser.add_argument(
        "--source",
        default=config.UCI_URL,
        help="URL or local .zip/.csv/.tsv in the newsCorpora.csv format (default: the UCI archive)",
    )
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <artifacts>/data)")
    parser.add_argument("--seed", type=int, default=13, help="split seed (default: 13)")
    parser.add_argument("--val-frac", type=float, default=0.1, help="validation fraction (default: 0.1)")
    parser.add_argument("--test-frac", type=float, default=0.1, help="test fraction (default: 0.1)")
    parser.add_argument(
        "--sha256", default=None, help="expected sha256 of the source file (default: not checked)"
    )
    parser.add_argument(
        "--s3-uri",
        default=None,
        help="also upload raw + processed data to s3://bucket/prefix (default: no upload; with "
        "--stack-name, s3://<the stack's BucketName>/datasets, where the training function looks)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="download cache directory "
        "(default: <user cache>/textclf/downloads, or TEXTCLF_CACHE_DIR/downloads)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the output is up to date")
    add_aws_arguments(parser.add_argument_group("upload (--s3-uri or --stack-name)"), local=False)
    parser.set_defaults(func=run)


def _fmt_summary(manifest: dict[str, Any]) -> list[str]:
    rows = manifest["rows"]
    lines = [
        f"rows read {rows['read']:,}  valid {rows['valid']:,}  skipped {rows['skipped']:,}  "
        f"duplicates dropped {rows['duplicates_dropped']:,}  written {rows['written']:,}",
    ]
    if manifest["skipped"]:
        reasons = ", ".join(f"{k} {v:,}" for k, v in manifest["skipped"].items())
        lines.append(f"skipped by reason: {reasons}")
    labels = manifest["labels"]
    # Each label column as wide as its name, so the table stays readable in 120 columns.
    widths = {lab: max(len(lab), 9) + 2 for lab in labels}
    header = f"{'split':<11}{'rows':>9}{'stories':>9}{'dups':>7}"
    header += "".join(f"{lab:>{widths[lab]}}" for lab in labels)
    lines.append(header)
    for name, counts in manifest["counts"].items():
        line = (
            f"{name:<11}{counts['rows']:>9,}{counts['stories']:>9,}{manifest['duplicates_dropped'][name]:>7,}"
        )
        line += "".join(f"{counts['labels'][lab]:>{widths[lab]},}" for lab in labels)
        lines.append(line)
    return lines


def run(args: argparse.Namespace) -> int:
    # Imported here so `textclf --help` does not load pandas/pyarrow.
    from textclf.data.checksum import normalize_sha256
    from textclf.data.prepare import prepare

    sha256 = normalize_sha256(args.sha256) if args.sha256 else None
    upload, where = None, None
    if args.s3_uri or args.stack_name:
        from textclf.data.s3 import parse_s3_uri

        # Fail on a bad URI, profile or stack before the slow work.
        where = target_from_args(args, need_region=False)
        upload = parse_s3_uri(args.s3_uri or f"s3://{where.require('bucket', '--s3-uri')}/{DATASETS_PREFIX}")
    out: Path = (args.out or config.artifacts_dir() / "data").resolve()
    result = prepare(
        args.source,
        out,
        seed=args.seed,
        val_frac=args.val_frac,
        test_frac=args.test_frac,
        sha256=sha256,
        force=args.force,
        cache_dir=args.cache_dir,
    )
    manifest = result.manifest
    state = "reused (up to date)" if result.reused else "written"
    print(f"source {result.source.origin}  sha256 {result.source.sha256}")
    for line in _fmt_summary(manifest):
        print(line)
    print(f"{out}: {state} in {result.seconds:.1f} s (seed {manifest['seed']})")
    if upload is not None and where is not None:
        from textclf.data.s3 import upload_dataset
        from textclf.eda import training_defaults

        defaults = training_defaults(out, config.local_base_model())
        print(f"training defaults for jobs: max_length {defaults['max_length']}, labels {defaults['labels']}")
        pointer = upload_dataset(
            out, manifest, result.source.path, upload, training_defaults=defaults, client=where.client("s3")
        )
        print(f"uploaded to {pointer['uri']}  (pointer {upload.pointer_uri})")
    return 0
