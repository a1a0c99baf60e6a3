"""boto3 clients for the CLI's AWS commands, aimed at real AWS or at a running ``textclf serve``.

The one place that turns ``--profile``, ``--region``, ``--stack-name`` and ``--local`` into a
session: every command that talks to AWS adds those flags with :func:`add_aws_arguments` and gets
its clients from :func:`target_from_args`.

``--stack-name`` reads the deployed CloudFormation stack (describe_stacks): its outputs and its
EndpointName parameter stand in for the bucket, role, model group and endpoint the user would
otherwise copy by hand. ``--local`` reads the state file the local stack writes while it runs (its
URLs, the names its template resolved to) and sends the calls there with fake credentials, so
``textclf models``, ``textclf teardown`` and ``textclf invoke`` work the same on one machine as
against a deployment. Both fill :attr:`Target.state` with the same keys.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from textclf.errors import UserError

#: State key -> (where in describe_stacks, name): the stack's names under the keys a running
#: local stack uses for the same things (``LocalStack.state``).
STACK_STATE: dict[str, tuple[str, str]] = {
    "bucket": ("output", "BucketName"),
    "api_url": ("output", "ApiUrl"),
    "model_package_group": ("output", "ModelPackageGroup"),
    "deployments_table": ("output", "DeploymentsTableName"),
    "serving_role_arn": ("output", "SageMakerServingRoleArn"),
    "endpoint_name": ("parameter", "EndpointName"),
    "monitor_function": ("output", "MonitorFunctionName"),
}


@dataclass(frozen=True)
class Target:
    """Where the calls go, and the stack's names there (absent: ask the user)."""

    session: Any
    endpoints: dict[str, str]  # service name -> endpoint URL (local stack only)
    state: dict[str, str]

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoints.get(service))

    def require(self, key: str, flag: str) -> str:
        """``state[key]``, or a one-line error saying to pass ``flag`` (or ``--stack-name``)."""
        value = self.state.get(key)
        if value:
            return value
        if "stack_name" in self.state:
            kind, name = STACK_STATE[key]
            raise UserError(f"stack {self.state['stack_name']} has no {kind} {name}: pass {flag}")
        raise UserError(f"pass {flag}, or --stack-name to read it from the deployed stack")


def add_aws_arguments(parser: Any, *, local: bool = True, region: str | None = None) -> None:
    """``--profile``, ``--region``, ``--stack-name`` (and ``--local``) on ``parser`` or an argument group.

    ``region``: a fixed default instead of the SDK's (``textclf invoke``: the region the function sees).
    """
    parser.add_argument(
        "--profile",
        default=None,
        help="AWS named profile (default: AWS_PROFILE, else the SDK's credential chain)",
    )
    parser.add_argument(
        "--region",
        default=region,
        help="AWS region (default: %(default)s)"
        if region
        else "AWS region (default: the profile's, else AWS_REGION)",
    )
    # One group adds both to `parser` whether it is a parser or an argument group.
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--stack-name",
        default=None,
        help="deployed CloudFormation stack whose outputs (bucket, roles, model group, endpoint "
        "name) fill in the flags not given (default: none; pass them by flag)",
    )
    if local:
        where.add_argument(
            "--local",
            action="store_true",
            help="the running `textclf serve` instead of AWS (default: AWS)",
        )


def target_from_args(args: argparse.Namespace, *, need_region: bool = True) -> Target:
    return target(
        local=getattr(args, "local", False),
        region=args.region,
        profile=args.profile,
        stack_name=args.stack_name,
        need_region=need_region,
    )


def target(
    *,
    local: bool = False,
    region: str | None = None,
    profile: str | None = None,
    stack_name: str | None = None,
    need_region: bool = True,
) -> Target:
    """``need_region=False``: S3-only work, which boto3 does without a region unless a stack is read."""
    if local:
        return _local_target()
    aws = session(profile=profile, region=region, need_region=need_region or stack_name is not None)
    state = stack_state(aws, stack_name) if stack_name else {}
    return Target(aws, {}, state)


def function_environment(where: Target, function: str) -> dict[str, str]:
    """The environment the stack's deployed ``function`` (logical id) runs with, and its region."""
    from botocore.exceptions import BotoCoreError, ClientError

    stack = where.state["stack_name"]
    try:
        resource = where.client("cloudformation").describe_stack_resource(
            StackName=stack, LogicalResourceId=function
        )["StackResourceDetail"]
        deployed = where.client("lambda").get_function_configuration(
            FunctionName=resource["PhysicalResourceId"]
        )
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise UserError(f"--stack-name {stack}: cannot read {function}'s configuration: {message}") from exc
    except BotoCoreError as exc:
        raise UserError(f"--stack-name {stack}: {exc}") from exc
    variables = (deployed.get("Environment") or {}).get("Variables") or {}
    return {"AWS_REGION": where.session.region_name, **variables}


def session(*, profile: str | None = None, region: str | None = None, need_region: bool = True) -> Any:
    """A boto3 session for ``--profile``/``--region``; a missing profile or region is a user error."""
    import boto3
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        aws = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise UserError(f"--profile {profile}: no such profile in the AWS config files") from exc
    except BotoCoreError as exc:
        raise UserError(f"AWS session: {exc}") from exc
    if need_region and not aws.region_name:
        raise UserError("no AWS region: pass --region, set AWS_REGION or give the profile a region")
    return aws


def stack_state(aws: Any, stack_name: str) -> dict[str, str]:
    """The deployed stack's names (:data:`STACK_STATE` keys present in it), its name and region."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = aws.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if "does not exist" in message:
            raise UserError(f"--stack-name {stack_name}: no such stack in {aws.region_name}") from exc
        raise UserError(f"--stack-name {stack_name}: {message}") from exc
    except BotoCoreError as exc:
        raise UserError(f"--stack-name {stack_name}: {exc}") from exc
    stack = stacks[0]
    found = {
        "output": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        "parameter": {
            p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue", ""))
            for p in stack.get("Parameters", [])
        },
    }
    state = {key: found[kind].get(name, "") for key, (kind, name) in STACK_STATE.items()}
    state = {key: value for key, value in state.items() if value}
    return {**state, "stack_name": stack_name, "region": aws.region_name}


def _local_target() -> Target:
    from textclf.serving import local_session

    state = local_state()
    aws = local_session(state["region"])
    moto = state["control_plane_url"]
    endpoints = {
        "sagemaker": state["sagemaker_url"],
        "sagemaker-runtime": state["endpoint_url"],
        "s3": moto,
        "dynamodb": moto,
        "application-autoscaling": moto,
        "cloudwatch": moto,
        # A stack started before the local Lambda API existed has none: AWS's is never the answer.
        "lambda": state.get("lambda_url") or moto,
    }
    return Target(aws, endpoints, state)


def local_state() -> dict[str, str]:
    from textclf.local.stack import state_file

    path = state_file()
    try:
        state: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"no running local stack ({path} is missing): start it with `make serve`") from exc
    return state
