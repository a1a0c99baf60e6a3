"""``textclf upload-source``: put the SageMaker training code (``sourcedir.tar.gz``) on S3."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf import training
from textclf.bundle import build_source_bundle


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "upload-source",
        help="build sourcedir.tar.gz (train.py and the packaging code it runs) and upload it to S3",
        description="The training Lambda starts SageMaker jobs with the code at "
        "s3://<bucket>/code/sourcedir.tar.gz; this builds that archive and uploads it. "
        "With --out only, it just writes the archive.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--s3-uri", help="s3://bucket/code/ (adds sourcedir.tar.gz) or a full .tar.gz URI")
    target.add_argument("--out", type=Path, help="write the archive here instead of uploading")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        print(f"wrote {build_source_bundle(args.out)}")
        return 0
    print(f"uploaded {training.upload_source_bundle(args.s3_uri)}")
    return 0
