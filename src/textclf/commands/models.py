"""``textclf models list|promote``: the Model Registry versions of the stack, and rollback."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from textclf.aws_clients import add_aws_arguments
from textclf.errors import UserError

if TYPE_CHECKING:
    from textclf_api.logic.deployment import Package

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
    from botocore.exceptions import BotoCoreError, ClientError
    from textclf_api.logic import deployment
    from textclf_api.settings import Settings

    from textclf.aws_clients import target_from_args

    where = target_from_args(args)
    group = args.group or where.state.get("model_package_group") or DEFAULT_GROUP
    endpoint = args.endpoint_name or where.state.get("endpoint_name") or DEFAULT_ENDPOINT
    # The deploy function's registry reads, with this command's client and names.
    settings = Settings.from_env({"MODEL_PACKAGE_GROUP": group, "ENDPOINT_NAME": endpoint})
    sagemaker = where.client("sagemaker")
    try:
        packages = deployment.list_packages(settings, sagemaker)
        serving = deployment.serving_version(settings, sagemaker)
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"cannot list the versions of {group}: {exc}") from exc
    if args.action == "list":
        if args.json:
            print(json.dumps(as_json(packages, serving, group, endpoint), indent=2))
        else:
            print(render(packages, serving, group, endpoint))
        return 0
    promote(sagemaker, packages, group, args.version)
    print(f"version {args.version} of {group} approved: the deploy function rolls it out to {endpoint}")
    print("watch it with `textclf models list` (or GET /health's model_version)")
    return 0


def as_json(packages: list[Package], serving: str | None, group: str, endpoint: str) -> dict[str, Any]:
    """What ``models list --json`` prints: the table's facts, numbers as numbers, times in ISO 8601."""
    listed = [
        {
            "version": int(p.version) if p.version.isdigit() else p.version,
            "arn": p.arn,
            "status": p.status,
            "serving": p.version == serving,
            "test_accuracy": _number(p.metadata.get("test_accuracy")),
            "baseline_test_accuracy": _number(p.metadata.get("baseline_test_accuracy")),
            "created": p.created.isoformat() if p.created else None,
            "training_job": p.metadata.get("training_job"),
            "reason": reason_of(p),
            "feedback_until": p.metadata.get("feedback_until"),
            "quarantined_labellers": p.metadata.get("quarantined_labellers"),
            "gate": p.metadata.get("gate"),
        }
        for p in packages
    ]
    return {
        "group": group,
        "endpoint": endpoint,
        "serving_version": int(serving) if serving and serving.isdigit() else serving,
        "versions": listed,
    }


def reason_of(package: Package) -> str:
    """Why the version exists: its job's retrain_reason (a version without one was trained by hand,
    or registered before reasons were recorded)."""
    return package.metadata.get("retrain_reason") or "manual"


def _number(value: str | None) -> float | None:
    return float(value) if value else None


def render(packages: list[Package], serving: str | None, group: str, endpoint: str) -> str:
    if not packages:
        return f"{group} has no versions yet: POST /train starts the first training job"
    columns = (
        f"{'version':>7}  {'status':<21} {'test acc':>8}  {'baseline':>8}  {'created':<19}  {'reason':<8}"
    )
    header = f"{'':2}{columns}  training job"
    lines = [f"{group} (endpoint {endpoint} serves version {serving or 'none of these'}):", header]
    for package in packages:
        meta = package.metadata
        created = package.created.strftime("%Y-%m-%d %H:%M:%S") if package.created else ""
        lines.append(
            f"{'*' if package.version == serving else ' ':2}{package.version:>7}  {package.status:<21} "
            f"{_figure(meta.get('test_accuracy')):>8}  {_figure(meta.get('baseline_test_accuracy')):>8}  "
            f"{created:<19}  {reason_of(package):<8}  {meta.get('training_job', '')}"
        )
        if meta.get("quarantined_labellers"):
            lines.append(f"{'':11}trained on labels of quarantined {meta['quarantined_labellers']}")
        if meta.get("gate"):
            lines.append(f"{'':11}gate: {meta['gate']}")
    return "\n".join(lines)


def _figure(value: str | None) -> str:
    return f"{float(value):.4f}" if value else "-"


def promote(sagemaker: Any, packages: list[Package], group: str, version: str) -> None:
    """Approve ``version``. One already Approved is set Pending first: the registry emits its state
    change event only when the status changes, and that event is what redeploys it."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not version.isdigit():
        raise UserError(f"VERSION must be a version number (textclf models list), got {version!r}")
    package = next((p for p in packages if p.version == version), None)
    if package is None:
        raise UserError(f"{group} has no version {version} (textclf models list shows them)")
    try:
        if package.status == "Approved":
            sagemaker.update_model_package(
                ModelPackageArn=package.arn,
                ModelApprovalStatus="PendingManualApproval",
                ApprovalDescription="re-approval requested by textclf models promote",
            )
        sagemaker.update_model_package(
            ModelPackageArn=package.arn,
            ModelApprovalStatus="Approved",
            ApprovalDescription="textclf models promote",
        )
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"cannot approve version {version} of {group}: {exc}") from exc
