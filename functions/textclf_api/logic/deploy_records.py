"""What the other functions read of the deploy loop (:mod:`textclf_api.logic.deployment`).

How a rollout names its Model and EndpointConfig (so "which version serves" is one
DescribeEndpoint away: health, batch), the one DynamoDB record per training job (GET
/train/{job_name} shows it), and the hyperparameter a training request sets to let the gate
change the label set. Apart from the loop itself: its gate, registry and rollout code (and the
archive checks of ``artifacts``) are the deploy function's alone, and importing them cost every
other function's cold start about 10 ms.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from textclf_api import aws
from textclf_api.schemas import Deployment
from textclf_api.settings import Settings

MODEL_VERSION_ENV: Final = "TEXTCLF_MODEL_VERSION"
_VERSIONED_NAME: Final = re.compile(r"-v(?P<version>\d+)-\d{8}-\d{6}$")
_NAME_MAX: Final = 63

#: The training job's hyperparameter that lets its model change the served label set. A
#: hyperparameter rather than a tag: DescribeTrainingJob (which the gate calls anyway) returns
#: hyperparameters, in the cloud and in the local stack alike, and they cannot be edited after the
#: job starts; tags need ListTags (another permission and call) and can be added later by anyone
#: allowed to tag. POST /train sends it only when true; train.py ignores it.
ALLOW_LABEL_CHANGE: Final = "allow_label_change"


# --------------------------------------------------------------------------------------------
# Names and versions
# --------------------------------------------------------------------------------------------


def versioned_name(endpoint_name: str, version: str, now: datetime | None = None) -> str:
    """``<endpoint>-v<version>-<YYYYmmdd-HHMMSS>``: the Model and EndpointConfig of one rollout."""
    return fit_name(endpoint_name, f"-v{version}-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}")


def fit_name(prefix: str, suffix: str) -> str:
    """``prefix + suffix`` within SageMaker's 63-character name limit (the prefix is cut)."""
    return prefix[: _NAME_MAX - len(suffix)].rstrip("-") + suffix


def version_of(config_name: str | None) -> str | None:
    """The model version an endpoint config serves, or None for one this loop did not create."""
    match = _VERSIONED_NAME.search(config_name or "")
    return match.group("version") if match else None


# --------------------------------------------------------------------------------------------
# Deployment records (DynamoDB)
# --------------------------------------------------------------------------------------------


class Records:
    """One item per training job (``job#<name>``): status, reason, version, the rollout's config."""

    def __init__(self, table: str) -> None:
        self.table = table

    def claim(self, job: str) -> bool:
        """Create the job's record as ``pending``; False when an earlier event already did."""
        try:
            aws.dynamodb().put_item(
                TableName=self.table,
                Item=_item({"id": f"job#{job}", "training_job_name": job, "status": "pending"}),
                ConditionExpression="attribute_not_exists(id)",
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def update(self, job: str, **changes: str | None) -> None:
        values = {k: v for k, v in changes.items() if v is not None} | {"updated_at": utc_now()}
        names = {f"#{k}": k for k in values}
        aws.dynamodb().update_item(
            TableName=self.table,
            Key={"id": {"S": f"job#{job}"}},
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":{k}": {"S": str(v)} for k, v in values.items()},
        )

    def get(self, job: str) -> dict[str, str] | None:
        item = aws.dynamodb().get_item(
            TableName=self.table, Key={"id": {"S": f"job#{job}"}}, ConsistentRead=True
        )
        return _plain(item["Item"]) if "Item" in item else None

    def jobs(self, status: str) -> list[dict[str, str]]:
        """Job records in ``status`` (a scan: one small item per training job ever run)."""
        out: list[dict[str, str]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(id, :job) AND #s = :status",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":job": {"S": "job#"}, ":status": {"S": status}},
        }
        while True:
            page = aws.dynamodb().scan(**kwargs)
            out += [_plain(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _item(values: dict[str, str]) -> dict[str, dict[str, str]]:
    return {k: {"S": v} for k, v in (values | {"updated_at": utc_now()}).items()}


def _plain(item: dict[str, Any]) -> dict[str, str]:
    return {k: str(v.get("S", "")) for k, v in item.items()}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def deployment_of(job: str, settings: Settings) -> Deployment | None:
    """The deployment record of ``job`` as the API shows it (None: the loop has not seen it)."""
    if not settings.deployments_table:
        return None
    record = Records(settings.deployments_table).get(job)
    if record is None:
        return None
    return Deployment(
        status=record["status"],  # type: ignore[arg-type]  # written by this module only
        reason=record.get("reason") or None,
        model_version=record.get("model_version") or None,
    )
