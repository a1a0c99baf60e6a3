"""``textclf teardown``: stop the endpoint's billing (autoscaling deregistered, endpoint deleted)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from textclf.aws_clients import add_aws_arguments


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "teardown",
        help="delete the SageMaker endpoint (and its autoscaling) so nothing bills; versions stay",
        description="Deletes the endpoint the deploy function created and deregisters its autoscaling. "
        "Models, endpoint configs and the Model Registry stay (they cost nothing): `textclf models "
        "promote VERSION` brings a version back. Deleting the stack does the same "
        "(Custom::EndpointTeardown).",
    )
    parser.add_argument(
        "--endpoint-name",
        default=None,
        help="default: the stack's EndpointName (or the local stack's), else textclf",
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON document on stdout: endpoint, steps done"
    )
    add_aws_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError
    from textclf_api.logic.deployment import teardown

    from textclf.aws_clients import target_from_args
    from textclf.errors import UserError

    where = target_from_args(args)
    endpoint = args.endpoint_name or where.state.get("endpoint_name") or "textclf"
    try:
        done = teardown(endpoint, where.client("sagemaker"), where.client("application-autoscaling"))
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"teardown of {endpoint} failed: {exc}") from exc
    if args.json:
        print(json.dumps({"endpoint": endpoint, "existed": bool(done), "done": list(done)}, indent=2))
    else:
        print("; ".join(done) if done else f"nothing to do: endpoint {endpoint} does not exist")
    return 0
