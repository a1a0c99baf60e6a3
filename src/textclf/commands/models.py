"""``textclf models list|promote``: the Model Registry versions of the stack, and rollback."""

from __future__ import annotations

import argparse
import json
from typing import Any

from textclf.aws_clients import add_aws_arguments
from textclf.errors import UserError

DEFAULT_GROUP = "textclf-models"
DEFAULT_ENDPOINT = "textclf"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "models",
        help="list model versions (metrics, approval, which serves) or promote one (rollback)",
        description="The versions the deploy function registered in the Model Registry. `promote "
        "VERSION` approves a version, which makes the deploy function roll it out: promoting an "
        "earlier version is how to roll back.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    for name, help_text in (
        ("list", "versions, their test accuracy, approval and the one serving"),
        ("promote", "approve VERSION so the deploy function rolls it out (rollback to an earlier one)"),
    ):
        sub = actions.add_parser(name, help=help_text, description=help_text)
        if name == "promote":
            sub.add_argument("version", help="Model Registry version number (textclf models list)")
        else:
            sub.add_argument(
                "--json", action="store_true", help="one JSON document on stdout instead of the table"
            )
        sub.add_argument(
            "--group",
            default=None,
            help=f"model package group (default: the stack's ModelPackageGroup, else {DEFAULT_GROUP})",
        )
        sub.add_argument(
            "--endpoint-name",
            default=None,
            help=f"default: the stack's EndpointName, else {DEFAULT_ENDPOINT}",
        )
        add_aws_arguments(sub)
        sub.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.aws_clients import target_from_args

    where = target_from_args(args)
    group = args.group or where.state.get("model_package_group") or DEFAULT_GROUP
    endpoint = args.endpoint_name or where.state.get("endpoint_name") or DEFAULT_ENDPOINT
    sagemaker = where.client("sagemaker")
    if args.action == "list":
        rows, serving = versions(sagemaker, group), serving_version(sagemaker, endpoint)
        if args.json:
            print(json.dumps(as_json(rows, serving, group, endpoint), indent=2))
        else:
            print(render(rows, serving, group, endpoint))
        return 0
    promote(sagemaker, group, args.version)
    print(f"version {args.version} of {group} approved: the deploy function rolls it out to {endpoint}")
    print("watch it with `textclf models list` (or GET /health's model_version)")
    return 0


def versions(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    rows = []
    try:
        pages = sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Ascending"
        )
        for page in pages:
            for summary in page.get("ModelPackageSummaryList", []):
                rows.append(sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"]))
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"cannot list the versions of {group}: {exc}") from exc
    return rows


def serving_version(sagemaker: Any, endpoint: str) -> str | None:
    from botocore.exceptions import ClientError
    from textclf_api.logic.deployment import version_of

    try:
        return version_of(sagemaker.describe_endpoint(EndpointName=endpoint).get("EndpointConfigName"))
    except ClientError:
        return None  # no endpoint (yet, or torn down)


def as_json(rows: list[dict[str, Any]], serving: str | None, group: str, endpoint: str) -> dict[str, Any]:
    """What ``models list --json`` prints: the table's facts, numbers as numbers, times in ISO 8601."""
    listed = []
    for row in rows:
        meta = row.get("CustomerMetadataProperties") or {}
        created = row.get("CreationTime")
        version = str(row.get("ModelPackageVersion", ""))
        listed.append(
            {
                "version": int(version) if version.isdigit() else version,
                "arn": row.get("ModelPackageArn"),
                "status": row.get("ModelApprovalStatus"),
                "serving": version == serving,
                "test_accuracy": _number(meta.get("test_accuracy")),
                "baseline_test_accuracy": _number(meta.get("baseline_test_accuracy")),
                "created": created.isoformat() if created else None,
                "training_job": meta.get("training_job"),
                "gate": meta.get("gate"),
            }
        )
    return {
        "group": group,
        "endpoint": endpoint,
        "serving_version": int(serving) if serving and serving.isdigit() else serving,
        "versions": listed,
    }


def _number(value: str | None) -> float | None:
    return float(value) if value else None


def render(rows: list[dict[str, Any]], serving: str | None, group: str, endpoint: str) -> str:
    if not rows:
        return f"{group} has no versions yet: POST /train starts the first training job"
    columns = f"{'version':>7}  {'status':<21} {'test acc':>8}  {'baseline':>8}  {'created':<19}"
    header = f"{'':2}{columns}  training job"
    lines = [f"{group} (endpoint {endpoint} serves version {serving or 'none of these'}):", header]
    for row in rows:
        meta = row.get("CustomerMetadataProperties") or {}
        version = str(row.get("ModelPackageVersion", "?"))
        created = row.get("CreationTime")
        lines.append(
            f"{'*' if version == serving else ' ':2}{version:>7}  {row.get('ModelApprovalStatus', ''):<21} "
            f"{_figure(meta.get('test_accuracy')):>8}  {_figure(meta.get('baseline_test_accuracy')):>8}  "
            f"{created.strftime('%Y-%m-%d %H:%M:%S') if created else '':<19}  {meta.get('training_job', '')}"
        )
        if meta.get("gate"):
            lines.append(f"{'':11}gate: {meta['gate']}")
    return "\n".join(lines)


def _figure(value: str | None) -> str:
    return f"{float(value):.4f}" if value else "-"


def promote(sagemaker: Any, group: str, version: str) -> None:
    """Approve ``version``. One already Approved is set Pending first: the registry emits its state
    change event only when the status changes, and that event is what redeploys it."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not version.isdigit():
        raise UserError(f"VERSION must be a version number (textclf models list), got {version!r}")
    arn = next(
        (
            str(row["ModelPackageArn"])
            for row in versions(sagemaker, group)
            if str(row.get("ModelPackageVersion")) == version
        ),
        None,
    )
    if arn is None:
        raise UserError(f"{group} has no version {version} (textclf models list shows them)")
    try:
        status = sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
        if status == "Approved":
            sagemaker.update_model_package(
                ModelPackageArn=arn,
                ModelApprovalStatus="PendingManualApproval",
                ApprovalDescription="re-approval requested by textclf models promote",
            )
        sagemaker.update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="textclf models promote"
        )
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"cannot approve version {version} of {group}: {exc}") from exc
