"""Retrain on evidence: a monitor alarm in ALARM starts a training job on the feedback so far.

The template subscribes the retrain function to ``CloudWatch Alarm State Change`` events of the
stack's three monitor alarms (``<stack>-drift``, ``<stack>-live-accuracy``, ``<stack>-labels``,
state ALARM). Each episode of an alarm starts at most one job: the start goes through POST
/train's path (``training.start_training_once``: the same caps, checks and request) with the
idempotency key ``<alarm name>:<event time>`` -- a repeated event returns the job the first one
started. Nothing starts while a job of this stack is still running (its model has not been judged
yet) or when no model serves (nothing to improve on, no champion to compare with); the skip is
logged with its reason.

The job trains on the parent dataset (``datasets/latest.json``, as POST /train) with the serving
model's recipe (its job's hyperparameters), plus the channels of :mod:`feedback_sets` and the
serving model's archive as ``champion``; its hyperparameters say why it exists and which feedback
it saw (``retrain_reason``, ``feedback_until``, ``dataset_version``, ``feedback_manifest``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from textclf_api import aws
from textclf_api.errors import ApiError, ConfigurationError
from textclf_api.logic import deployment, feedback_sets, training
from textclf_api.logic.production import parse_time
from textclf_api.schemas import RetrainReason, TrainRequest, TrainStartedResponse
from textclf_api.settings import Settings, get_settings

logger = Logger(child=True)

ALARM_EVENT: Final = "CloudWatch Alarm State Change"
#: ``<stack>-<suffix>``: the monitor's alarms (template.yaml) and the reason each one gives.
ALARM_REASONS: Final[dict[str, RetrainReason]] = {
    "drift": "drift",
    "live-accuracy": "accuracy",
    "labels": "labels",
}
#: TrainRequest fields a retrain takes from the serving model's job (its recipe).
RECIPE_FIELDS: Final = (
    "epochs",
    "learning_rate",
    "batch_size",
    "max_length",
    "truncation",
    "max_train_samples",
    "base_model",
    "instance_type",
)
#: SageMaker allows 2,500 characters per hyperparameter value.
_HYPERPARAMETER_MAX = 2000
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


@dataclass(frozen=True)
class Outcome:
    """What one event did (logged and returned by the handler)."""

    action: str  # started | skipped | ignored
    reason: str
    retrain_reason: str | None = None
    training_job_name: str | None = None
    idempotency_key: str | None = None


def alarm_reasons(settings: Settings) -> dict[str, RetrainReason]:
    stack = settings.require("stack_name")
    return {f"{stack}-{suffix}": reason for suffix, reason in ALARM_REASONS.items()}


def idempotency_key(alarm: str, time: str) -> str:
    """One key per alarm episode: the alarm's name and the time of its change to ALARM."""
    return _KEY_UNSAFE.sub("-", f"{alarm}:{time}")[-128:]


def handle_event(
    event: Mapping[str, Any], settings: Settings | None = None, lambda_context: Any = None
) -> Outcome:
    settings = settings or get_settings()
    detail = event.get("detail")
    if event.get("detail-type") != ALARM_EVENT or not isinstance(detail, dict):
        return Outcome("ignored", f"not a {ALARM_EVENT!r} event")
    alarm = str(detail.get("alarmName", ""))
    state = (detail.get("state") or {}).get("value")
    reason = alarm_reasons(settings).get(alarm)
    if reason is None:
        return Outcome("ignored", f"alarm {alarm!r} is not one of this stack's monitor alarms")
    if state != "ALARM":
        return Outcome("ignored", f"alarm {alarm} is {state}, not ALARM", reason)
    time = str(event.get("time") or (detail.get("state") or {}).get("timestamp") or "")
    if not time:
        return Outcome("ignored", "the event has no time (needed to tell alarm episodes apart)", reason)
    key = idempotency_key(alarm, time)
    skip = why_not_now(settings)
    if skip is not None:
        logger.info("retrain skipped", alarm=alarm, retrain_reason=reason, skip=skip)
        return Outcome("skipped", skip, reason, idempotency_key=key)
    version = deployment.serving_version(settings)
    package = deployment.find_package(version, settings) if version else None
    if package is None:
        why = f"version {version} is not in the model registry" if version else "no model serves"
        return Outcome("skipped", f"{why}: nothing to retrain", reason, idempotency_key=key)
    until = parse_time(time)
    try:
        request = recipe(package, settings)
    except ConfigurationError as exc:
        return Outcome("skipped", f"not started: {exc}", reason, idempotency_key=key)

    def prepare(dataset_uri: str) -> training.ExtraInputs:
        return retrain_inputs(
            settings, package, reason=reason, alarm=alarm, until=until, parent_dataset=dataset_uri
        )

    try:
        started: TrainStartedResponse = training.start_training_once(
            request, key, settings, lambda_context, prepare=prepare
        )
    except ApiError as exc:
        if exc.status >= 500:
            raise  # AWS failed us: EventBridge retries the event (the idempotency key holds)
        # A refused start (caps, missing prerequisites) is this episode's answer; EventBridge
        # retrying it would not change it, and the next episode will try again.
        logger.warning("retrain not started", alarm=alarm, status=exc.status, error=str(exc))
        return Outcome("skipped", f"not started: {exc}", reason, idempotency_key=key)
    logger.info("retrain started", alarm=alarm, training_job_name=started.training_job_name)
    return Outcome(
        "started",
        f"alarm {alarm} is in ALARM",
        reason,
        training_job_name=started.training_job_name,
        idempotency_key=key,
    )


def why_not_now(settings: Settings) -> str | None:
    """Why no retrain starts now: a job of this stack still runs (None: free)."""
    prefix = f"{settings.training_job_prefix}-"
    page = aws.sagemaker_quick().list_training_jobs(
        NameContains=prefix, StatusEquals="InProgress", MaxResults=10
    )
    running = [
        j["TrainingJobName"] for j in page["TrainingJobSummaries"] if j["TrainingJobName"].startswith(prefix)
    ]
    if running:
        return f"training job {running[0]} of this stack is still running; its model is judged first"
    return None


def recipe(package: deployment.Package, settings: Settings) -> TrainRequest:
    """The stack's ``RetrainRequest`` when set; else POST /train's request the serving model's job
    was started with (as far as its hyperparameters tell), defaults for a model no job of this
    stack trained."""
    if settings.retrain_request:
        try:
            return TrainRequest.model_validate_json(settings.retrain_request)
        except ValidationError as exc:
            raise ConfigurationError(f"RETRAIN_REQUEST is not a valid POST /train body: {exc}") from None
    job = package.metadata.get("training_job")
    if not job or not job.startswith(f"{settings.training_job_prefix}-"):
        return TrainRequest()
    desc = aws.sagemaker().describe_training_job(TrainingJobName=job)
    values: dict[str, Any] = {}
    for name, raw in (desc.get("HyperParameters") or {}).items():
        if name in RECIPE_FIELDS:
            try:
                values[name] = json.loads(raw)
            except ValueError:
                values[name] = raw
    values["instance_type"] = (desc.get("ResourceConfig") or {}).get("InstanceType")
    if isinstance(values.get("epochs"), float) and float(values["epochs"]).is_integer():
        values["epochs"] = int(values["epochs"])
    kept = {}
    for name, value in values.items():
        try:  # one field at a time: a value this API would refuse falls back to its default
            TrainRequest.model_validate({name: value})
        except ValidationError:
            continue
        kept[name] = value
    return TrainRequest.model_validate(kept)


def retrain_inputs(
    settings: Settings,
    package: deployment.Package,
    *,
    reason: RetrainReason,
    alarm: str,
    until: datetime,
    parent_dataset: str,
) -> training.ExtraInputs:
    """The feedback and recent files, the champion channel and the hyperparameters of the job."""
    bucket = settings.require("bucket_name")
    s3 = aws.s3()
    built = feedback_sets.build(
        s3,
        bucket,
        settings.require("endpoint_name"),
        until=until,
        max_share=settings.feedback_max_share,
        recent_share=settings.recent_holdout,
        new_since=package.feedback_until,
    )
    channels = {"champion": package.model_data}
    feedback_uri = feedback_sets.upload_rows(s3, bucket, built.feedback)
    recent_uri = feedback_sets.upload_rows(s3, bucket, built.recent)
    if feedback_uri:
        channels["feedback"] = feedback_uri
    if recent_uri:
        channels["recent"] = recent_uri
    record = {
        "retrain_reason": reason,
        "alarm": alarm,
        "parent_dataset": parent_dataset,
        "feedback_uri": feedback_uri,
        "recent_uri": recent_uri,
        "champion": {"version": package.version, "model_data": package.model_data},
        "trusted_labellers": list(settings.trusted_labellers),
        "feedback_max_share": settings.feedback_max_share,
        "recent_holdout": settings.recent_holdout,
        **built.record(),
    }
    body = (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    manifest_uri = feedback_sets.put_content_addressed(s3, bucket, body, ".json", "application/json")
    logger.info("feedback set built", **{k: v for k, v in record.items() if not isinstance(v, dict)})
    hyperparameters: dict[str, Any] = {
        training.RETRAIN_REASON: reason,
        "feedback_until": record["feedback_until"],
        # The dataset the job sees: the parent and the feedback files, named by the manifest's bytes.
        "dataset_version": hashlib.sha256(body).hexdigest()[:12],
        "parent_dataset": parent_dataset,
        "feedback_manifest": manifest_uri,
        "feedback_rows": json.dumps(built.per_labeller(built.feedback), separators=(",", ":"))[
            :_HYPERPARAMETER_MAX
        ],
        "champion_version": package.version,
    }
    if settings.trusted_labellers:
        hyperparameters["trusted_labellers"] = ",".join(settings.trusted_labellers)[:_HYPERPARAMETER_MAX]
    return training.ExtraInputs(channels=channels, hyperparameters=hyperparameters)
