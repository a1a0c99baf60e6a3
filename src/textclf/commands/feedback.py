"""``textclf feedback list|quarantine|release``: who labelled how much, and whose labels no retrain takes.

Quarantine writes ``s3://<bucket>/feedback/quarantine.json`` (the labeller's lines stay in
``ground-truth/`` for audit; retraining datasets and the monitor skip them) and marks every
registered version whose retrain trained on that labeller's rows: the deploy loop never rolls
such a version out again.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from textclf.aws_clients import add_aws_arguments
from textclf.errors import UserError

DEFAULT_GROUP = "textclf-models"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "feedback",
        help="labellers and their label counts; quarantine or release a labeller",
        description="The ground truth labellers posted (POST /feedback). `quarantine` removes a "
        "labeller's labels from future retraining datasets (kept for audit) and marks the versions "
        "trained on them; `release` undoes it.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="labellers, their label counts, quarantine")
    listing.add_argument(
        "--since", type=_date, help="only labels received from this date/time on (UTC; default: all)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    quarantine = actions.add_parser("quarantine", help="no retraining dataset takes this labeller's labels")
    quarantine.add_argument("--labeller", required=True, help="API key id or IAM principal ARN")
    quarantine.add_argument("--since", type=_date, help="only labels received from then on (default: all)")
    quarantine.add_argument("--reason", default="", help="why (kept in quarantine.json)")
    release = actions.add_parser("release", help="take the labeller's labels again")
    release.add_argument("--labeller", required=True)
    for sub in (listing, quarantine, release):
        sub.add_argument("--bucket", default=None, help="the stack's bucket (default: from the stack)")
        sub.add_argument(
            "--group", default=None, help=f"model package group (default: the stack's, else {DEFAULT_GROUP})"
        )
        add_aws_arguments(sub)
        sub.set_defaults(func=run)


def _date(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date or date-time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from textclf.aws_clients import target_from_args

    where = target_from_args(args)
    bucket = args.bucket or where.require("bucket", "--bucket")
    s3 = where.client("s3")
    try:
        if args.action == "list":
            report = summary(s3, bucket, args.since)
            print(json.dumps(report, indent=2) if args.json else render(report))
            return 0
        group = args.group or where.state.get("model_package_group") or DEFAULT_GROUP
        if args.action == "quarantine":
            marked = quarantine(s3, where.client("sagemaker"), bucket, group, args)
            since = f" from {args.since:%Y-%m-%dT%H:%M:%SZ}" if args.since else ""
            print(f"labeller {args.labeller} quarantined{since}: no retraining dataset takes their labels")
            for version in marked:
                print(f"version {version} of {group} trained on their labels: marked, never rolled out again")
            return 0
        release(s3, bucket, args.labeller)
        print(f"labeller {args.labeller} released: their labels count again from the next retrain")
        return 0
    except (ClientError, BotoCoreError, ValueError) as exc:
        raise UserError(f"feedback {args.action}: {exc}") from exc


def summary(s3: Any, bucket: str, since: datetime | None) -> dict[str, Any]:
    """Per labeller: label lines, distinct predictions labelled, first and last received, quarantine."""
    from textclf_api.logic import authority, production

    stats = production.ReadStats()
    items = list(production.ground_truth(s3, bucket, start=None, end=datetime.now(UTC), stats=stats))
    if since is not None:
        items = [i for i in items if i.received_at >= since]
    blocked = authority.read_quarantine(s3, bucket)
    lines = Counter(i.labeller for i in items)
    distinct = Counter(g.labeller for g in production.latest_labels(items).values())
    labellers = {}
    for name in sorted(set(lines) | set(blocked)):
        own = [i.received_at for i in items if i.labeller == name]
        entry = blocked.get(name)
        labellers[name] = {
            "labels": lines.get(name, 0),
            "predictions": distinct.get(name, 0),
            "first": min(own).isoformat() if own else None,
            "last": max(own).isoformat() if own else None,
            "quarantined": entry.record() if entry else None,
        }
    return {
        "bucket": bucket,
        "since": since.isoformat() if since else None,
        "unreadable_lines": stats.unreadable,
        "labellers": labellers,
    }


def render(report: dict[str, Any]) -> str:
    if not report["labellers"]:
        return f"no feedback in s3://{report['bucket']}/ground-truth/ yet"
    lines = [f"{'labeller':<48} {'labels':>8} {'ids':>8}  {'last received':<25} quarantined"]
    for name, entry in report["labellers"].items():
        q = entry["quarantined"]
        shown = (
            "-"
            if q is None
            else f"since {q['since'] or 'always'}" + (f" ({q['reason']})" if q["reason"] else "")
        )
        lines.append(
            f"{name:<48} {entry['labels']:>8} {entry['predictions']:>8}  {entry['last'] or '-':<25} {shown}"
        )
    return "\n".join(lines)


def quarantine(s3: Any, sagemaker: Any, bucket: str, group: str, args: argparse.Namespace) -> list[str]:
    from textclf_api.logic import authority

    entries = authority.read_quarantine(s3, bucket)
    entries[args.labeller] = authority.Quarantine(args.labeller, args.since, args.reason, datetime.now(UTC))
    authority.write_quarantine(s3, bucket, entries)
    return mark_versions(s3, sagemaker, group, entries[args.labeller])


def release(s3: Any, bucket: str, labeller: str) -> None:
    from textclf_api.logic import authority

    entries = authority.read_quarantine(s3, bucket)
    if labeller not in entries:
        raise UserError(f"labeller {labeller} is not quarantined (textclf feedback list shows who is)")
    del entries[labeller]
    authority.write_quarantine(s3, bucket, entries)


def mark_versions(s3: Any, sagemaker: Any, group: str, entry: Any) -> list[str]:
    """Mark the versions whose retrain took rows of ``entry``'s labeller from its window; returns them."""
    from textclf_api.logic import artifacts, deployment
    from textclf_api.settings import Settings

    settings = Settings.from_env({"MODEL_PACKAGE_GROUP": group})
    marked = []
    for package in deployment.list_packages(settings, sagemaker):
        manifest_uri = package.metadata.get("feedback_manifest")
        until = package.feedback_until
        if not manifest_uri or until is None:
            continue
        if not entry.since_before(until):
            continue  # the version saw none of the quarantined window
        manifest_bucket, key = artifacts.split_s3_uri(manifest_uri)
        manifest = json.loads(s3.get_object(Bucket=manifest_bucket, Key=key)["Body"].read())
        if entry.labeller not in (manifest.get("feedback_per_labeller") or {}):
            continue
        already = [n for n in package.metadata.get(deployment.QUARANTINED_KEY, "").split(",") if n]
        names = ",".join(sorted({*already, entry.labeller}))[:256]
        sagemaker.update_model_package(
            ModelPackageArn=package.arn,
            # The status as it is (an update without it would clear it in moto), the metadata whole.
            ModelApprovalStatus=package.status,
            CustomerMetadataProperties=package.metadata | {deployment.QUARANTINED_KEY: names},
        )
        marked.append(package.version)
    return marked
