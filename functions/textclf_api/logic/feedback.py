"""POST /feedback: ground truth for earlier predictions, from labellers only, stored as SageMaker's
model-quality merge input.

Who may label is decided before anything else (``authorize``): with ``FeedbackAuth=AWS_IAM`` the
caller's IAM principal (API Gateway checked the signature), with ``API_KEY`` a key of the stack's
labellers usage plan -- API Gateway accepts a key of any usage plan on the stage, so a predict key
gets here and is refused with 403. The stored line names the labeller: the key id or the ARN.

Labels are checked against the label set the endpoint serves now, which the deploy function
records at ``serving/labels.json`` when a model starts serving (read once, then reused for
``SERVED_LABELS_CACHE_SECONDS`` by a warm function). Ids need not be known: the capture may be
sampled, so the monitor counts unknown ids when it joins. One request is one object,
``ground-truth/yyyy/mm/dd/hh/<uuid>.jsonl`` (the hour it was received, UTC), written whole with one
PutObject; a request that is refused stores nothing -- including one that would take the labeller
past ``FeedbackDailyCap`` items today (``authority.take_daily_quota``: 429).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from textclf_api import aws
from textclf_api.errors import (
    ApiError,
    ConfigurationError,
    ForbiddenError,
    InvalidRequestError,
    ServiceUnavailableError,
)
from textclf_api.logic import authority
from textclf_api.schemas import (
    GROUND_TRUTH_PREFIX,
    SERVING_LABELS_KEY,
    FeedbackItem,
    FeedbackRequest,
    FeedbackResponse,
)
from textclf_api.settings import Settings, get_settings

logger = Logger(child=True)


@dataclass(frozen=True)
class ServedLabels:
    labels: tuple[str, ...]
    model_version: str | None


#: bucket -> (when it was read, monotonic; what it said). One entry: a function has one bucket.
_cache: dict[str, tuple[float, ServedLabels]] = {}


def reset_cache() -> None:
    _cache.clear()


def authorize(event: Mapping[str, Any], settings: Settings | None = None) -> ApiError | None:
    """Why the caller of ``event`` may not post feedback (403), or None."""
    try:
        labeller_of(event, settings or get_settings())
    except ApiError as exc:
        return exc
    return None


def labeller_of(event: Mapping[str, Any], settings: Settings) -> str:
    """Who sent ``event``: a labeller key's id or the IAM principal's ARN (ForbiddenError if none)."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    if settings.feedback_auth == "API_KEY":
        if not settings.labeller_api_key_ids:
            raise ConfigurationError("environment variable LABELLER_API_KEY_IDS is not set")
        key_id = identity.get("apiKeyId")
        if not key_id or key_id not in settings.labeller_api_key_ids:
            raise ForbiddenError(
                "this API key may not send feedback: POST /feedback takes a key of the stack's "
                "labellers usage plan (stack output LabellerApiKeyId), not a predict key"
            )
        return str(key_id)
    principal = identity.get("userArn")
    if not principal:
        raise ForbiddenError("POST /feedback needs a SigV4-signed request of an IAM principal (FeedbackAuth)")
    return str(principal)


def served_labels(settings: Settings) -> ServedLabels:
    """The label set the endpoint serves, as the deploy function recorded it (cached briefly)."""
    now = time.monotonic()
    bucket = settings.require("bucket_name")
    cached = _cache.get(bucket)
    if cached is not None and now - cached[0] < settings.served_labels_cache_seconds:
        return cached[1]
    where = f"reading s3://{bucket}/{SERVING_LABELS_KEY}"
    try:
        record = json.loads(aws.s3().get_object(Bucket=bucket, Key=SERVING_LABELS_KEY)["Body"].read())
    except ClientError as exc:
        if aws.error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            raise _no_labels(
                "no model has started serving through the deploy function yet", settings
            ) from exc
        raise aws.translate(exc, where, settings.retry_after_seconds) from exc
    except ValueError as exc:
        raise _no_labels("its record is not JSON", settings) from exc
    except Exception as exc:
        raise aws.translate(exc, where, settings.retry_after_seconds) from exc
    labels = record.get("labels") if isinstance(record, dict) else None
    if not isinstance(labels, list) or not labels:
        raise _no_labels("the serving model's archive records none", settings)
    served = ServedLabels(tuple(str(label) for label in labels), record.get("model_version"))
    _cache[bucket] = (now, served)
    return served


def _no_labels(why: str, settings: Settings) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"the served model's label set is not known ({why}); feedback is taken once one is",
        retry_after=settings.retry_after_seconds,
    )


def check_labels(items: list[FeedbackItem], served: ServedLabels) -> None:
    """Every label must be one the served model has; the first that is not is named, with the set."""
    allowed = set(served.labels)
    unknown = [(i, item.label) for i, item in enumerate(items) if item.label not in allowed]
    if unknown:
        index, label = unknown[0]
        more = f" ({len(unknown)} items have labels outside it)" if len(unknown) > 1 else ""
        version = f" (version {served.model_version})" if served.model_version else ""
        raise InvalidRequestError(
            f"items[{index}].label {label[:80]!r} is not a label of the served model{version}: "
            f"one of {list(served.labels)}{more}"
        )


def _take_quota(settings: Settings, labeller: str, items: int, now: datetime) -> bool:
    """Count the items against the labeller's daily cap (429 past it); False without a table."""
    if not settings.feedback_counts_table:
        return False
    try:
        authority.take_daily_quota(
            settings.feedback_counts_table, labeller, items, settings.feedback_daily_cap, now
        )
    except ApiError:
        raise
    except Exception as exc:
        raise aws.translate(exc, "counting the labeller's feedback", settings.retry_after_seconds) from exc
    return True


def _give_back_quota(settings: Settings, labeller: str, items: int, now: datetime) -> None:
    try:
        authority.give_back_quota(str(settings.feedback_counts_table), labeller, items, now)
    except Exception:  # the count stays high by these items: the labeller loses quota, no data
        logger.exception("could not give back the feedback count", labeller=labeller, items=items)


def ground_truth_line(prediction_id: str, label: str, labeller: str, received_at: str) -> str:
    """One line of SageMaker's ground-truth merge format, with who sent it and when."""
    line = {
        "groundTruthData": {"data": label, "encoding": "CSV"},
        "eventMetadata": {"eventId": prediction_id},
        "eventVersion": "0",
        "textclf": {"labeller": labeller, "received_at": received_at},
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"


def record_feedback(
    request: FeedbackRequest,
    labeller: str,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> FeedbackResponse:
    """Check the labels, keep the last label of each id, store the lines as one object."""
    settings = settings or get_settings()
    check_labels(request.items, served := served_labels(settings))
    latest: dict[str, str] = {}
    for item in request.items:  # the last label of an id wins
        latest[item.prediction_id] = item.label
    received = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = received.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = "".join(ground_truth_line(pid, label, labeller, stamp) for pid, label in latest.items())
    bucket = settings.require("bucket_name")
    key = f"{GROUND_TRUTH_PREFIX}{received:%Y/%m/%d/%H}/{uuid.uuid4()}.jsonl"
    counted = _take_quota(settings, labeller, len(latest), received)
    try:
        aws.s3().put_object(
            Bucket=bucket, Key=key, Body=body.encode("utf-8"), ContentType="application/jsonl"
        )
    except Exception as exc:
        if counted:
            _give_back_quota(settings, labeller, len(latest), received)
        raise aws.translate(exc, "storing the feedback", settings.retry_after_seconds) from exc
    return FeedbackResponse(
        accepted=len(latest),
        duplicates_in_request=len(request.items) - len(latest),
        labels=dict(Counter(latest.values())),
        model_version=served.model_version,
        labeller=labeller,
        received_at=received,
    )
