"""``textclf upload-source``: put the SageMaker training code (``sourcedir.tar.gz``) on S3."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf import training
from textclf.aws_clients import add_aws_arguments, target_from_args
from textclf.bundle import build_source_bundle
from textclf.errors import UserError

#: Where the stack's training function takes the code from (template.yaml SOURCE_BUNDLE_KEY).
SOURCE_PREFIX = "code"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "upload-source",
        help="build sourcedir.tar.gz (train.py and the packaging code it runs) and upload it to S3",
        description="The training Lambda starts SageMaker jobs with the code at "
        "s3://<bucket>/code/sourcedir.tar.gz; this builds that archive and uploads it. "
        "With --out only, it just writes the archive.",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--s3-uri",
        help="s3://bucket/code/ (adds sourcedir.tar.gz) or a full .tar.gz URI "
        f"(default: s3://<the stack's BucketName>/{SOURCE_PREFIX}/ with --stack-name)",
    )
    target.add_argument(
        "--out", type=Path, help="write the archive here instead of uploading (default: upload)"
    )
    add_aws_arguments(parser, local=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        print(f"wrote {build_source_bundle(args.out)}")
        return 0
    if args.s3_uri is None and args.stack_name is None:
        raise UserError("pass --s3-uri, --stack-name (upload to the stack's bucket) or --out")
    where = target_from_args(args, need_region=False)
    uri = args.s3_uri or f"s3://{where.require('bucket', '--s3-uri')}/{SOURCE_PREFIX}/"
    print(f"uploaded {training.upload_source_bundle(uri, client=where.client('s3'))}")
    return 0
