"""``textclf predict``: score a file of headlines (any size) into JSON Lines with a packaged model."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from textclf.aws_clients import add_aws_arguments
from textclf.data.options import DEFAULT_TEXT_SEPARATOR, split_column_list
from textclf.errors import UserError


def register(subparsers: Any) -> None:
    from textclf.scoring import FORMATS

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "predict",
        help="score a file of headlines into JSON Lines (label, score, scores, model_version per row)",
        description="Stream a file through the packaged model: raw newsCorpora.csv or its .zip, CSV/TSV "
        "with a title or text column, JSON Lines, or plain lines. One output line per input row, in "
        "order; the answers are the endpoint's (same archive, same inference.py).",
    )
    # Strings, not Paths: Path("s3://b/k") would fold the URI's "//".
    parser.add_argument("--input", required=True, help="file to score")
    parser.add_argument("--output", required=True, help="JSON Lines to write ('-' for stdout)")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model.tar.gz or model folder (default: <artifacts>/package/model.tar.gz)",
    )
    parser.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: by name)")
    parser.add_argument(
        "--text-column",
        action="append",
        default=None,
        metavar="NAME[,NAME...]",
        help="csv/tsv/jsonl column(s) holding the text, joined as `textclf data --text-column` joined "
        "them for training (default: a text or title column)",
    )
    parser.add_argument(
        "--text-separator",
        default=DEFAULT_TEXT_SEPARATOR,
        help="between several text columns: the one the model was trained with (default: %(default)r)",
    )
    parser.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="count and skip malformed rows instead of stopping at the first one",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    cloud = parser.add_argument_group(
        "s3:// input and output: a SageMaker Batch Transform job with the endpoint's model "
        "(JSON Lines in, one <file>.out per input file)"
    )
    cloud.add_argument(
        "--endpoint-name",
        default=None,
        help="endpoint whose model runs (default: the stack's EndpointName, else textclf)",
    )
    cloud.add_argument("--instance-type", default=None, help="CPU instance type (default ml.m5.xlarge)")
    cloud.add_argument(
        "--instance-count", type=int, default=1, help="instances; input files are spread over them"
    )
    cloud.add_argument("--no-wait", action="store_true", help="print the job name and return")
    add_aws_arguments(cloud)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.scoring import predict_file
    from textclf.serving.endpoint import ServingModel, default_model_path

    if args.input.startswith("s3://") or args.output.startswith("s3://"):
        return run_transform(args)
    source, output = Path(args.input), Path(args.output)
    if not source.is_file():
        raise UserError(f"--input {source} does not exist")
    model = ServingModel.load(default_model_path(args.model))
    progress_bar = _progress(source, disabled=args.no_progress)
    partial = None if args.output == "-" else output.with_name(f".{output.name}.partial")
    target = sys.stdout if partial is None else partial.open("w", encoding="utf-8")
    try:
        summary = predict_file(
            model.model,
            model.module,
            source,
            target,
            fmt=args.format,
            skip_bad_rows=args.skip_bad_rows,
            version=model.version,
            progress=progress_bar.update if progress_bar else None,
            text_columns=split_column_list(args.text_column),
            text_separator=args.text_separator,
        )
    except BaseException:
        if partial is not None:
            target.close()
            partial.unlink(missing_ok=True)  # no half-written output under the real name
        raise
    finally:
        if progress_bar:
            progress_bar.close()
    if partial is not None:
        target.close()
        os.replace(partial, output)
    skipped = (
        f"; skipped {summary.skipped} malformed rows (lines {summary.skipped_lines}...)"
        if summary.skipped
        else ""
    )
    print(
        f"scored {summary.rows:,} rows in {summary.seconds:.1f} s ({summary.rows_per_s:,.0f} rows/s) with "
        f"model {model.version}{skipped}",
        file=sys.stderr,
    )
    return 0


def run_transform(args: argparse.Namespace) -> int:
    from textclf_api.schemas import (
        BATCH_INSTANCE_TYPES,
        DEFAULT_BATCH_INSTANCE_TYPE,
        MAX_BATCH_INSTANCE_COUNT,
    )

    from textclf import transform_job
    from textclf.aws_clients import target_from_args

    transform_job.check_uris(args.input, args.output)
    if args.text_column:
        raise UserError(
            "--text-column reads local files; a Batch Transform job sends JSON Lines with a text field"
        )
    instance_type = args.instance_type or DEFAULT_BATCH_INSTANCE_TYPE
    if instance_type not in BATCH_INSTANCE_TYPES:
        raise UserError(f"--instance-type must be one of {', '.join(BATCH_INSTANCE_TYPES)}")
    if not 1 <= args.instance_count <= MAX_BATCH_INSTANCE_COUNT:
        raise UserError(f"--instance-count must be between 1 and {MAX_BATCH_INSTANCE_COUNT}")
    where = target_from_args(args)
    sagemaker = where.client("sagemaker")
    spec = transform_job.TransformSpec(
        input_uri=args.input,
        output_uri=args.output,
        endpoint_name=args.endpoint_name or where.state.get("endpoint_name") or "textclf",
        instance_type=instance_type,
        instance_count=args.instance_count,
    )
    name = transform_job.start(sagemaker, spec)
    print(name)
    if args.no_wait:
        print(
            f"started; follow it with `aws sagemaker describe-transform-job --transform-job-name {name}`",
            file=sys.stderr,
        )
        return 0
    job = transform_job.wait(sagemaker, name, lambda line: print(line, file=sys.stderr))
    print(f"results: {job['TransformOutput']['S3OutputPath']}<input file>.out", file=sys.stderr)
    return 0


def _progress(source: Path, *, disabled: bool) -> Any:
    if disabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(unit=" rows", desc=source.name, file=sys.stderr)
