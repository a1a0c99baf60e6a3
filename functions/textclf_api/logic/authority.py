"""How much one labeller may say: a daily cap on feedback items, and quarantine.

Feedback is a write path into training, so one labeller -- a bad actor or a buggy
script -- must not be able to outweigh the others:

- **Daily cap.** Each labeller may post at most ``FeedbackDailyCap`` items per UTC day. The count
  lives in a DynamoDB item ``feedback#<labeller>#<yyyy-mm-dd>`` raised by one conditional update
  (atomic across concurrent requests); a request that would pass the cap is refused whole with
  429 and a Retry-After until the next UTC midnight, and nothing of it is stored.
- **Quarantine.** ``s3://<bucket>/feedback/quarantine.json`` names labellers whose labels no
  retraining dataset takes (from ``since`` on, or all of them). Their lines stay in
  ``ground-truth/`` for audit; readers skip them. ``textclf feedback quarantine|release`` edits it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from textclf_api import aws
from textclf_api.errors import QuotaExceededError
from textclf_api.logic.production import GroundTruth, parse_time
from textclf_api.schemas import QUARANTINE_KEY

_MISSING = ("NoSuchKey", "404", "NotFound")
#: Count items live two days: long enough for any clock skew around midnight, then DynamoDB's TTL
#: removes them.
_COUNT_TTL = timedelta(days=2)


# --------------------------------------------------------------------------------------------
# Daily cap
# --------------------------------------------------------------------------------------------


def count_key(labeller: str, day: datetime) -> str:
    return f"feedback#{labeller}#{day:%Y-%m-%d}"


def seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


def take_daily_quota(
    table: str, labeller: str, items: int, cap: int, now: datetime, *, dynamodb: Any = None
) -> int:
    """Add ``items`` to the labeller's count for ``now``'s UTC day unless that passes ``cap``
    (429, nothing counted); returns the new count."""
    db = dynamodb or aws.dynamodb()
    if items > cap:
        raise QuotaExceededError(
            f"{items} items are more than FeedbackDailyCap ({cap}) allows a labeller in a day",
            retry_after=seconds_to_midnight(now),
        )
    try:
        answer = db.update_item(
            TableName=table,
            Key={"id": {"S": count_key(labeller, now)}},
            UpdateExpression="ADD #n :n SET expiration = :exp",
            ConditionExpression="attribute_not_exists(#n) OR #n <= :room",
            ExpressionAttributeNames={"#n": "items"},
            ExpressionAttributeValues={
                ":n": {"N": str(items)},
                ":room": {"N": str(cap - items)},
                ":exp": {"N": str(int((now + _COUNT_TTL).timestamp()))},
            },
            ReturnValues="UPDATED_NEW",
        )
    except ClientError as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise
        raise QuotaExceededError(
            f"labeller {labeller} has reached FeedbackDailyCap ({cap} items per UTC day) or these "
            f"{items} items would pass it; nothing was stored, retry after midnight UTC",
            retry_after=seconds_to_midnight(now),
        ) from exc
    return int(answer["Attributes"]["items"]["N"])


def give_back_quota(table: str, labeller: str, items: int, now: datetime, *, dynamodb: Any = None) -> None:
    """Undo :func:`take_daily_quota` when the items could not be stored after all."""
    (dynamodb or aws.dynamodb()).update_item(
        TableName=table,
        Key={"id": {"S": count_key(labeller, now)}},
        UpdateExpression="ADD #n :n",
        ExpressionAttributeNames={"#n": "items"},
        ExpressionAttributeValues={":n": {"N": str(-items)}},
    )


# --------------------------------------------------------------------------------------------
# Quarantine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quarantine:
    labeller: str
    since: datetime | None  # None: every label the labeller ever sent
    reason: str
    at: datetime

    def since_before(self, when: datetime) -> bool:
        """Whether labels received before ``when`` can be quarantined ones."""
        return self.since is None or self.since < when

    def covers(self, item: GroundTruth) -> bool:
        return item.labeller == self.labeller and (self.since is None or item.received_at >= self.since)

    def record(self) -> dict[str, Any]:
        return {"since": _iso(self.since) if self.since else None, "reason": self.reason, "at": _iso(self.at)}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_quarantine(document: Any) -> dict[str, Quarantine]:
    """The labellers a ``quarantine.json`` document names (ValueError when it is malformed)."""
    labellers = document.get("labellers") if isinstance(document, dict) else None
    if not isinstance(labellers, dict):
        raise ValueError('quarantine.json must be {"labellers": {"<id>": {...}}}')
    out: dict[str, Quarantine] = {}
    for labeller, entry in labellers.items():
        if not isinstance(entry, dict):
            raise ValueError(f"quarantine.json: the entry of {labeller!r} is not an object")
        since = entry.get("since")
        out[str(labeller)] = Quarantine(
            labeller=str(labeller),
            since=parse_time(str(since)) if since else None,
            reason=str(entry.get("reason") or ""),
            at=parse_time(str(entry.get("at") or "1970-01-01T00:00:00Z")),
        )
    return out


def read_quarantine(s3: Any, bucket: str) -> dict[str, Quarantine]:
    """Who is quarantined (nobody when the file does not exist)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=QUARANTINE_KEY)["Body"].read()
    except ClientError as exc:
        if aws.error_code(exc) in _MISSING:
            return {}
        raise
    return parse_quarantine(json.loads(body))


def write_quarantine(s3: Any, bucket: str, entries: Mapping[str, Quarantine]) -> None:
    document = {"labellers": {name: q.record() for name, q in sorted(entries.items())}}
    s3.put_object(
        Bucket=bucket,
        Key=QUARANTINE_KEY,
        Body=(json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        ContentType="application/json",
    )


def quarantined(item: GroundTruth, entries: Mapping[str, Quarantine]) -> bool:
    entry = entries.get(item.labeller)
    return entry is not None and entry.covers(item)
