"""``textclf deploy``: model.tar.gz -> SageMaker Model, EndpointConfig and (new or updated) endpoint."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys

from textclf.aws_clients import add_aws_arguments

#: Where a local archive goes in the stack's bucket: the only prefix its serving role may read.
MODELS_PREFIX = "models"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from textclf import deploy

    parser = subparsers.add_parser(
        "deploy",
        help="deploy model.tar.gz to a SageMaker endpoint (Hugging Face inference DLC)",
        description="Create a SageMaker Model and EndpointConfig (fresh names) for the archive, then "
        "create the endpoint or update it if it exists, and wait until it is InService. A local "
        "archive is uploaded first (--upload-to).",
    )
    parser.add_argument(
        "--model-data",
        required=True,
        help="s3://.../model.tar.gz, or a local model.tar.gz to upload to --upload-to",
    )
    parser.add_argument(
        "--upload-to",
        default=None,
        help="s3://bucket/prefix to admit the archive to, as <prefix>/<sha16>/model.tar.gz (default "
        f"with --stack-name: s3://<the stack's BucketName>/{MODELS_PREFIX}; for an s3:// archive: "
        f"{MODELS_PREFIX}/ of its own bucket)",
    )
    parser.add_argument(
        "--role-arn",
        default=os.environ.get("SAGEMAKER_ROLE_ARN"),
        help="SageMaker execution role (default: $SAGEMAKER_ROLE_ARN, else the stack's "
        "SageMakerServingRoleArn)",
    )
    parser.add_argument(
        "--endpoint-name",
        default=None,
        help=f"default: the stack's EndpointName, else {deploy.DEFAULT_ENDPOINT_NAME}",
    )
    parser.add_argument(
        "--instance-type",
        default=deploy.DEFAULT_INSTANCE_TYPE,
        help="default: %(default)s (CPU, for the ONNX runtimes); ml.g*/ml.p* pick the GPU image",
    )
    parser.add_argument("--instance-count", type=int, default=1, help="default: %(default)s")
    parser.add_argument("--image-uri", default=None, help="default: the HF inference DLC of the region")
    add_aws_arguments(parser, local=False)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra container environment (repeatable), e.g. TEXTCLF_NUM_THREADS=2 (default: none)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait (default: %(default)s)"
    )
    parser.add_argument(
        "--poll", type=float, default=15.0, help="seconds between status checks (default: %(default)s)"
    )
    parser.add_argument("--no-wait", action="store_true", help="return once the endpoint change is requested")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf import deploy
    from textclf.aws_clients import target_from_args
    from textclf.cli_args import key_values
    from textclf.errors import UserError

    if not args.role_arn and not args.stack_name:
        raise UserError(
            "--role-arn is required (or set SAGEMAKER_ROLE_ARN, or pass --stack-name): the role "
            "SageMaker runs the model as"
        )
    where = target_from_args(args)
    session, region = where.session, where.session.region_name
    args.role_arn = args.role_arn or where.require("serving_role_arn", "--role-arn")
    args.endpoint_name = (
        args.endpoint_name or where.state.get("endpoint_name") or deploy.DEFAULT_ENDPOINT_NAME
    )
    if args.upload_to is None and "bucket" in where.state:
        args.upload_to = f"s3://{where.state['bucket']}/{MODELS_PREFIX}"
    # With --json, stdout holds the result document only; progress and warnings go to stderr.
    echo = functools.partial(print, file=sys.stderr) if args.json else print
    environment = key_values(args.env, "--env")
    gpu = deploy.is_gpu_instance(args.instance_type)
    image_uri = args.image_uri or deploy.default_image_uri(region, args.instance_type)

    s3 = session.client("s3")
    artifact, prefix = deploy.admit_archive(s3, args.model_data, args.upload_to, echo)
    if gpu and str(artifact.runtime or "").startswith("onnx"):
        echo(
            f"warning: {args.model_data} holds the {artifact.runtime} runtime, which runs on CPU only; "
            f"{args.instance_type} has a GPU it will not use (package --runtime torch for GPUs)"
        )

    result = deploy.deploy(
        session.client("sagemaker"),
        s3,
        artifact=artifact,
        admitted_prefix=prefix,
        role_arn=args.role_arn,
        image_uri=image_uri,
        endpoint_name=args.endpoint_name,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        environment=environment,
        wait=not args.no_wait,
        timeout_s=args.timeout,
        poll_s=args.poll,
        echo=echo,
    )
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
        return 0
    print(
        f"endpoint {result.endpoint_name} {result.action} with config {result.endpoint_config_name}: "
        f"{result.status} after {result.elapsed_s:.0f} s"
    )
    return 0
