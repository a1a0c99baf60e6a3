"""``textclf teardown``: stop the endpoint's billing (autoscaling deregistered, endpoint deleted)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "teardown",
        help="delete the SageMaker endpoint (and its autoscaling) so nothing bills; versions stay",
        description="Deletes the endpoint the deploy function created and deregisters its autoscaling. "
        "Models, endpoint configs and the Model Registry stay (they cost nothing): `textclf models "
        "promote VERSION` brings a version back. Deleting the stack does the same "
        "(Custom::EndpointTeardown).",
    )
    parser.add_argument("--endpoint-name", default=None, help="default: textclf (or the local stack's)")
    parser.add_argument("--region", default=None, help="default: the AWS SDK's")
    parser.add_argument("--local", action="store_true", help="the running `textclf serve` instead of AWS")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError
    from textclf_api.logic.deployment import teardown

    from textclf.aws_clients import target
    from textclf.errors import UserError

    where = target(local=args.local, region=args.region)
    endpoint = args.endpoint_name or where.state.get("endpoint_name") or "textclf"
    try:
        done = teardown(endpoint, where.client("sagemaker"), where.client("application-autoscaling"))
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"teardown of {endpoint} failed: {exc}") from exc
    print("; ".join(done) if done else f"nothing to do: endpoint {endpoint} does not exist")
    return 0
