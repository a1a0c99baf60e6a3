"""``textclf data``: read the UCI corpus or any labelled file; check, split, write parquet (+ S3)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf import config
from textclf.aws_clients import add_aws_arguments, target_from_args
from textclf.data.options import (
    CONFLICT_POLICIES,
    DEFAULT_MAX_BAD_ROWS,
    DEFAULT_MIN_ROWS_PER_LABEL,
    DEFAULT_TEXT_SEPARATOR,
    FORMATS,
    Checks,
    InputOptions,
    TimeRange,
    split_column_list,
)

#: Where the stack's training function reads datasets/latest.json (template.yaml DATASET_POINTER_KEY).
DATASETS_PREFIX = "datasets"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "data",
        help="prepare train/validation/test parquet splits from the UCI corpus or any labelled file",
        description="Read a labelled dataset (CSV, TSV, JSON Lines, Parquet, a datasets save_to_disk "
        "folder, or the UCI News Aggregator corpus: the default, told by its first row), validate "
        "every row, check the labels, split (by STORY for the news corpus; by --group-column, by "
        "--time-column, else stratified by label) and write parquet + manifest. Nothing is written "
        "when a check fails. A re-run with the same source and options reuses the finished output.",
    )
    parser.add_argument(
        "--source",
        default=config.UCI_URL,
        help="URL of the UCI archive, s3://bucket/key (a file or a save_to_disk folder), or a local "
        "file or folder (default: the UCI archive)",
    )
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <artifacts>/data)")
    parser.add_argument("--seed", type=int, default=13, help="split seed (default: 13)")
    parser.add_argument("--val-frac", type=float, default=0.1, help="validation fraction (default: 0.1)")
    parser.add_argument("--test-frac", type=float, default=0.1, help="test fraction (default: 0.1)")
    parser.add_argument(
        "--sha256", default=None, help="expected sha256 of the source file (default: not checked)"
    )
    columns = parser.add_argument_group(
        "your own data (any file but the news corpus needs --text-column and --label-column)"
    )
    columns.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="input format (default: by extension; .csv/.tsv/.zip holding newsCorpora rows: uci)",
    )
    columns.add_argument(
        "--text-column",
        action="append",
        default=None,
        metavar="NAME[,NAME...]",
        help="column(s) holding the text; several (repeat the flag or separate with commas) are "
        "joined with --text-separator, e.g. --text-column title,body (default: none; the news corpus "
        "needs none)",
    )
    columns.add_argument(
        "--text-separator",
        default=DEFAULT_TEXT_SEPARATOR,
        help=f"between several text columns (default: {DEFAULT_TEXT_SEPARATOR!r}, a boundary every "
        "tokenizer keeps)",
    )
    columns.add_argument(
        "--label-column",
        default=None,
        help="column holding the label (default: none; the news corpus needs none)",
    )
    columns.add_argument(
        "--group-column",
        default=None,
        help="rows sharing a value stay in one split: a thread, a customer, a source document "
        "(default: none, a split stratified by label)",
    )
    columns.add_argument(
        "--time-column",
        default=None,
        help="split by time: train on the oldest rows, validation on the next, test on the newest "
        "(ISO 8601 or epoch seconds/ms; with --group-column, groups stay whole; the news corpus takes "
        "--time-column TIMESTAMP and keeps its stories whole; default: none)",
    )
    columns.add_argument(
        "--since",
        default=None,
        metavar="DATE",
        help="keep only rows from DATE on (ISO 8601, UTC unless it says; by the news corpus' TIMESTAMP "
        "or --time-column; default: from the first row)",
    )
    columns.add_argument(
        "--until",
        default=None,
        metavar="DATE",
        help="keep only rows before DATE (ISO 8601; 2014-04-01 keeps March and earlier; default: to the "
        "last row). An empty range is refused",
    )
    columns.add_argument(
        "--id-column",
        default=None,
        help="your row id, kept as source_id; blank or repeated ids are bad rows (default: none)",
    )
    checks = parser.add_argument_group("checks (a failed one writes nothing and exits 2)")
    checks.add_argument(
        "--min-rows-per-label",
        type=int,
        default=DEFAULT_MIN_ROWS_PER_LABEL,
        help=f"refuse a label with fewer rows (default: {DEFAULT_MIN_ROWS_PER_LABEL})",
    )
    checks.add_argument(
        "--max-bad-rows",
        default=DEFAULT_MAX_BAD_ROWS,
        help="rows that may be skipped (blank or non-text cells, unreadable rows): a count (50) or a "
        "percentage of the rows read (2%%); more refuses the file (default: %(default)s)",
    )
    checks.add_argument(
        "--conflicts",
        choices=CONFLICT_POLICIES,
        default=None,
        help="the same text under different labels: drop those rows or keep them "
        "(default: refuse and count them; the news corpus keeps them, as it always has)",
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
    add_aws_arguments(
        parser.add_argument_group("AWS (an s3:// --source, --s3-uri or --stack-name)"), local=False
    )
    parser.set_defaults(func=run)


def _fmt_summary(manifest: dict[str, Any]) -> list[str]:
    rows = manifest["rows"]
    lines = [
        f"rows read {rows['read']:,}  valid {rows['valid']:,}  skipped {rows['skipped']:,}  "
        f"conflicts dropped {rows['conflicts_dropped']:,}  "
        f"duplicates dropped {rows['duplicates_dropped']:,}  written {rows['written']:,}",
    ]
    if manifest["skipped"]:
        reasons = ", ".join(f"{k} {v:,}" for k, v in manifest["skipped"].items())
        lines.append(f"skipped by reason: {reasons}")
    conflicts = manifest["conflicts"]
    if conflicts["texts"]:
        what = "dropped" if conflicts["dropped"] else "kept"
        lines.append(
            f"texts with conflicting labels: {conflicts['texts']:,} ({conflicts['rows']:,} rows, {what})"
        )
    counts = manifest["counts"]
    groups = "stories" if manifest["split_method"] == "story" else "groups"
    split_title = f"split ({manifest['split_method']})"
    lines.append(f"{split_title:<18}{'rows':>9}{groups:>9}{'dups':>7}")
    for name, split in counts.items():
        lines.append(
            f"{name:<18}{split['rows']:>9,}{split['stories']:>9,}{manifest['duplicates_dropped'][name]:>7,}"
        )
    # One line per label, so any number of labels stays readable.
    labels = manifest["labels"]
    width = max(12, *(len(label) + 2 for label in labels))
    lines.append(
        f"{f'labels ({len(labels)})':<{width}}{'all':>9}" + "".join(f"{name:>12}" for name in counts)
    )
    for label in labels:
        per_split = "".join(f"{counts[name]['labels'][label]:>12,}" for name in counts)
        lines.append(f"{label:<{width}}{manifest['label_counts'][label]:>9,}{per_split}")
    return lines


def run(args: argparse.Namespace) -> int:
    # Imported here so `textclf --help` does not load pandas/pyarrow.
    from textclf.data.checksum import normalize_sha256
    from textclf.data.prepare import prepare

    sha256 = normalize_sha256(args.sha256) if args.sha256 else None
    options = InputOptions(
        format=args.format,
        text_columns=split_column_list(args.text_column),
        text_separator=args.text_separator,
        label_column=args.label_column,
        group_column=args.group_column,
        time_column=args.time_column,
        id_column=args.id_column,
    )
    checks = Checks(
        min_rows_per_label=args.min_rows_per_label, max_bad_rows=args.max_bad_rows, conflicts=args.conflicts
    )
    rows_between = TimeRange.parse(args.since, args.until)
    upload, where = None, None
    if args.s3_uri or args.stack_name or args.source.startswith("s3://"):
        # Fail on a bad URI, profile or stack before the slow work.
        where = target_from_args(args, need_region=False)
    if args.s3_uri or args.stack_name:
        from textclf.data.s3 import parse_s3_uri

        assert where is not None
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
        options=options,
        checks=checks,
        rows_between=rows_between,
        s3_client=where.client("s3") if where is not None and args.source.startswith("s3://") else None,
    )
    manifest = result.manifest
    state = "reused (up to date)" if result.reused else "written"
    print(f"source {result.source.origin}  sha256 {result.source.sha256}")
    if rows_between.given:
        between = manifest["rows_between"]
        print(f"rows from {between['since'] or 'the start'} until {between['until'] or 'the end'}")
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
