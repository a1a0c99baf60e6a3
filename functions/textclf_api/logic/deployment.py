"""The gated deploy loop: a finished training job reaches the endpoint by itself, or is refused.

Three EventBridge events drive it (template.yaml routes them to the deploy function):

- **SageMaker Training Job State Change** (this stack's jobs): the job is described (the event
  carries neither metrics nor the artefact), its label set must be the model now serving's (the
  champion's) unless the job was started with ``allow_label_change``, its ``test_accuracy`` is
  gated against ``GateMinAccuracy`` and against the champion's minus ``GateMaxDrop``, the
  model is registered in the Model Registry as Approved or Rejected with its figures and the
  reason, and an approved model is rolled out: a new Model and EndpointConfig, then CreateEndpoint,
  or UpdateEndpoint with blue/green traffic shifting and automatic rollback on the template's
  CloudWatch alarms.
- **SageMaker Model Package State Change** (this stack's group, Approved): approving an earlier
  version (``textclf models promote``) rolls it out again -- that is rollback.
- **SageMaker Endpoint State Change** (this stack's endpoint): a rollout settles. InService on
  the new config marks it ``deployed``; InService on another config means SageMaker rolled the
  update back; Failed marks it ``failed``. A rollout that waited for a busy endpoint starts here.

No invocation waits for SageMaker: each event does its calls and returns. Each training job has
one record in a DynamoDB table, claimed with a conditional write, so duplicate and out-of-order
events (SageMaker may send several per change) do nothing twice; statuses come from Describe
calls, not from the event. Model versions are Model Registry version numbers; the endpoint
config of a version is named ``<endpoint>-v<version>-<time>``, so "which version serves" is one
DescribeEndpoint away.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from textclf_api import aws
from textclf_api.logic import artifacts, authority, inference_image
from textclf_api.logic.deploy_records import (
    ALLOW_LABEL_CHANGE,
    MODEL_VERSION_ENV,
    Records,
    utc_now,
    version_of,
    versioned_name,
)
from textclf_api.logic.production import parse_time
from textclf_api.schemas import CAPTURE_PREFIX, SERVING_LABELS_KEY, RetrainReason
from textclf_api.settings import Settings, get_settings

logger = Logger(child=True)

TRAINING_EVENT: Final = "SageMaker Training Job State Change"
PACKAGE_EVENT: Final = "SageMaker Model Package State Change"
ENDPOINT_EVENT: Final = "SageMaker Endpoint State Change"
TERMINAL_JOB_STATES: Final = frozenset({"Completed", "Failed", "Stopped"})
BUSY_ENDPOINT_STATES: Final = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
VARIANT_NAME: Final = "AllTraffic"
#: Container environment of every model: never the Hub (and the version the model reports in its
#: answers, per release).
BASE_ENVIRONMENT: Final = {
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    "HF_HUB_OFFLINE": "1",
}
#: How the DLC's model server spends the cores, by endpoint type. Its handler takes one request
#: per call, so one worker's requests queue behind each other while its ONNX threads idle between
#: small calls; measured (docs/benchmarks.md, cloud level), one worker per vCPU with one ONNX
#: thread each served 1.9x the requests of one worker with two threads, at 0.6x the CPU per
#: request. Instances: multi-model-server's own default (a worker per vCPU, as no
#: SAGEMAKER_MODEL_SERVER_WORKERS is set) with one thread each. Serverless: one worker, one model
#: copy in the memory it has, using every core. textclf's own image ignores both: one process
#: batching across connections (textclf.serving.container).
SERVER_ENVIRONMENT: Final = {
    "RealTime": {"TEXTCLF_NUM_THREADS": "1"},
    "Serverless": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
}


def container_environment(endpoint_type: str) -> dict[str, str]:
    """The variables every model of an endpoint of ``endpoint_type`` starts with."""
    return BASE_ENVIRONMENT | SERVER_ENVIRONMENT[endpoint_type]


#: Figures of a job that go into its model package's metadata (strings there, at most 256 chars).
PACKAGE_METRICS: Final = (
    "test_accuracy",
    "test_macro_f1",
    "baseline_test_accuracy",
    "baseline_test_macro_f1",
    "validation_accuracy",
    "champion_test_accuracy",
    "recent_accuracy",
    "champion_recent_accuracy",
    "trusted_accuracy",
    "champion_trusted_accuracy",
)
#: Hyperparameters of a retrain (logic/retrain.py) kept in its package's metadata: why the version
#: exists and which feedback it saw (the monitor counts labels after ``feedback_until``).
PACKAGE_HYPERPARAMETERS: Final = ("retrain_reason", "feedback_until", "dataset_version", "feedback_manifest")
#: Metadata key of a version trained on labels of a labeller quarantined since: never rolled out
#: by the loop again.
QUARANTINED_KEY: Final = "quarantined_labellers"
#: How many labellers a refusal names (the package metadata keeps 256 characters of it).
_NAMED_LABELLERS: Final = 3


# --------------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Champion:
    """The approved version the endpoint serves now."""

    version: str
    test_accuracy: float | None
    #: None: registered before packages recorded their label set (not compared).
    labels: artifacts.LabelSet | None = None


@dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str


def gate(
    metrics: dict[str, float],
    champion: Champion | None,
    settings: Settings,
    *,
    labels: artifacts.LabelSet | None = None,
    allow_label_change: bool = False,
    influence: Mapping[str, artifacts.Influence] | None = None,
) -> Decision:
    """The champion's label set, in its order, unless ``allow_label_change``; then ``test_accuracy
    >= GateMinAccuracy`` and ``>= champion's - GateMaxDrop`` (fractions). A model allowed to
    change the label set is not held to the champion's accuracy: that measured another task.

    A retrain (its job scored the champion too) must also stay within GateMaxDrop of the champion
    on the same rows: the test split, the recent feedback window and its trusted slice
    (:func:`feedback_refusal`); a refusal names the labellers whose rows moved it (``influence``:
    each labeller's share of rows contradicting the champion's confident answers)."""
    accuracy = metrics.get("test_accuracy")
    if accuracy is None:
        return Decision(False, "the job reported no test_accuracy (was the test channel missing?)")
    changed = label_change(labels, champion)
    if changed and not allow_label_change:
        return Decision(False, f"{changed}; train with allow_label_change: true to replace the serving model")
    floor = settings.gate_min_accuracy
    if accuracy < floor:
        return Decision(False, f"test accuracy {accuracy:.4f} is below GateMinAccuracy {floor:.4f}")
    if changed and champion is not None:
        # Short: the package metadata keeps 256 characters of it.
        return Decision(
            True,
            f"test accuracy {accuracy:.4f} >= GateMinAccuracy {floor:.4f}; labels differ from version "
            f"{champion.version}'s, allowed by allow_label_change (accuracy not compared)",
        )
    refusal = feedback_refusal(metrics, settings.gate_max_drop, influence or {})
    if refusal is not None:
        return Decision(False, refusal)
    if champion is not None and champion.test_accuracy is not None:
        bar = champion.test_accuracy - settings.gate_max_drop
        if accuracy < bar:
            return Decision(
                False,
                f"test accuracy {accuracy:.4f} is below version {champion.version}'s "
                f"{champion.test_accuracy:.4f} minus GateMaxDrop {settings.gate_max_drop:.4f}",
            )
        return Decision(
            True,
            f"test accuracy {accuracy:.4f} >= GateMinAccuracy {floor:.4f} and within "
            f"{settings.gate_max_drop:.4f} of version {champion.version}'s {champion.test_accuracy:.4f}",
        )
    return Decision(
        True, f"test accuracy {accuracy:.4f} >= GateMinAccuracy {floor:.4f}; no model serving yet"
    )


#: (challenger metric, champion metric scored in the same job, what the rows are)
SAME_JOB_COMPARISONS: Final = (
    ("recent_accuracy", "champion_recent_accuracy", "recent feedback window"),
    ("trusted_accuracy", "champion_trusted_accuracy", "trusted slice"),
    ("test_accuracy", "champion_test_accuracy", "test split"),
)


def feedback_refusal(
    metrics: Mapping[str, float], max_drop: float, influence: Mapping[str, artifacts.Influence]
) -> str | None:
    """Why a retrain's challenger is refused against the champion scored in the same job (None:
    within GateMaxDrop everywhere, or the job scored no champion)."""
    for mine, theirs, rows in SAME_JOB_COMPARISONS:
        if mine not in metrics or theirs not in metrics:
            continue
        if metrics[mine] < metrics[theirs] - max_drop:
            reason = (
                f"{rows} accuracy {metrics[mine]:.4f} is below the champion's {metrics[theirs]:.4f} "
                f"minus GateMaxDrop {max_drop:.4f}"
            )
            return f"{reason}; {movers(influence)}" if influence else reason
    return None


def movers(influence: Mapping[str, artifacts.Influence]) -> str:
    """The labellers most at odds with the champion's confident answers, worst first: those at
    least half as much at odds as the worst (an honest labeller beside a poisoner is not named)."""
    ranked = sorted(influence.items(), key=lambda kv: (-kv[1].disagreement, -kv[1].rows, kv[0]))
    worst = ranked[0][1].disagreement
    ranked = [(name, i) for name, i in ranked if i.disagreement >= worst / 2]
    named = [
        f"{name} ({i.disagreement:.0%} of {i.confident} confident rows contradict the champion)"
        for name, i in ranked[:_NAMED_LABELLERS]
    ]
    return "labellers whose rows moved it: " + ", ".join(named)


def label_change(labels: artifacts.LabelSet | None, champion: Champion | None) -> str | None:
    """What differs between the challenger's label set and the champion's, naming both; None when
    they are the same or there is nothing to compare with (no model serving, or one registered
    before packages recorded their labels)."""
    if champion is None or champion.labels is None:
        return None
    serving = f"version {champion.version} serves labels {champion.labels.shown}"
    if labels is None:
        return f"{serving}, and this model's archive names no label set"
    if labels.sha256 == champion.labels.sha256:
        return None
    return f"the label set (or its order) changed: {serving}, this model has {labels.shown}"


def allows_label_change(job: Mapping[str, Any]) -> bool:
    """Whether the DescribeTrainingJob ``job`` was started with ``allow_label_change`` true."""
    # JSON-encoded like every hyperparameter: POST /train writes "true".
    return (job.get("HyperParameters") or {}).get(ALLOW_LABEL_CHANGE) == "true"


# --------------------------------------------------------------------------------------------
# Registry and endpoint reads
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    version: str
    arn: str
    status: str
    image: str
    model_data: str
    metadata: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None

    @property
    def test_accuracy(self) -> float | None:
        value = self.metadata.get("test_accuracy")
        return float(value) if value else None

    @property
    def feedback_until(self) -> datetime | None:
        """Until when its retrain took labels (None: no retrain made this version)."""
        value = self.metadata.get("feedback_until")
        return parse_time(value) if value else None

    @property
    def labels(self) -> artifacts.LabelSet | None:
        return artifacts.LabelSet.recorded(self.metadata)


# The registry reads take the SageMaker client as a parameter: the function's by default,
# ``textclf models`` passes its own.


def list_packages(settings: Settings, sagemaker: Any = None) -> list[Package]:
    """Every version in the stack's model package group, oldest first."""
    return [describe_package(arn, sagemaker) for arn in package_arns(settings, sagemaker)]


def package_arns(settings: Settings, sagemaker: Any = None) -> list[str]:
    """ARNs of the group's versions, oldest first (``.../model-package/<group>/<version>``)."""
    group = settings.require("model_package_group")
    sm = sagemaker or aws.sagemaker()
    arns: list[str] = []
    kwargs: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Ascending",
    }
    while True:
        page = sm.list_model_packages(**kwargs)
        arns += [str(p["ModelPackageArn"]) for p in page.get("ModelPackageSummaryList", [])]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return arns


def describe_package(arn: str, sagemaker: Any = None) -> Package:
    desc = (sagemaker or aws.sagemaker()).describe_model_package(ModelPackageName=arn)
    container = (desc.get("InferenceSpecification") or {}).get("Containers", [{}])[0]
    return Package(
        version=str(desc.get("ModelPackageVersion") or arn.rsplit("/", 1)[-1]),
        arn=arn,
        status=str(desc.get("ModelApprovalStatus", "")),
        image=str(container.get("Image", "")),
        model_data=str(container.get("ModelDataUrl", "")),
        metadata=dict((desc.get("CustomerMetadataProperties") or {}).items()),
        created=desc.get("CreationTime"),
    )


def find_package(version: str, settings: Settings, sagemaker: Any = None) -> Package | None:
    # A versioned package's ARN ends with its version: one Describe, not one per version.
    arn = next((a for a in package_arns(settings, sagemaker) if a.rsplit("/", 1)[-1] == version), None)
    return describe_package(arn, sagemaker) if arn is not None else None


def _version_number(arn: str) -> int:
    tail = arn.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def later_feedback_until(version: str, settings: Settings, sagemaker: Any = None) -> datetime | None:
    """The latest ``feedback_until`` among the versions registered after ``version`` (refused by
    the gate, rolling out, rolled back, awaiting approval): the labels a later retrain already
    took, whatever became of its model. None when no later version was a retrain."""
    after = int(version) if version.isdigit() else 0
    later = [a for a in package_arns(settings, sagemaker) if _version_number(a) > after]
    untils = [u for a in later if (u := describe_package(a, sagemaker).feedback_until) is not None]
    return max(untils, default=None)


def describe_endpoint(settings: Settings, sagemaker: Any = None) -> dict[str, Any] | None:
    """DescribeEndpoint of the stack's endpoint, or None when it does not exist."""
    sagemaker = sagemaker or aws.sagemaker()
    try:
        return dict(sagemaker.describe_endpoint(EndpointName=settings.require("endpoint_name")))
    except ClientError as exc:
        message = aws.error_message(exc).lower()
        if "could not find" in message or "not found" in message:
            return None
        raise


def serving_version(settings: Settings, sagemaker: Any = None) -> str | None:
    """The registry version the endpoint serves (None: no endpoint, or a config not made here)."""
    return version_of((describe_endpoint(settings, sagemaker) or {}).get("EndpointConfigName"))


def champion(settings: Settings) -> Champion | None:
    version = serving_version(settings)
    if version is None:
        return None
    package = find_package(version, settings)
    if package is None:
        return Champion(version, None)
    return Champion(version, package.test_accuracy, package.labels)


# --------------------------------------------------------------------------------------------
# Event handling
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one event did (logged, returned by the handler, asserted by the tests)."""

    action: str
    training_job_name: str | None = None
    model_version: str | None = None
    reason: str = ""


def handle_event(event: dict[str, Any], settings: Settings | None = None) -> Outcome:
    settings = settings or get_settings()
    detail_type = str(event.get("detail-type", ""))
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return Outcome("ignored", reason=f"event {detail_type!r} has no detail object")
    if detail_type == TRAINING_EVENT:
        return on_training_job(detail, settings)
    if detail_type == PACKAGE_EVENT:
        return on_model_package(detail, settings)
    if detail_type == ENDPOINT_EVENT:
        return on_endpoint(detail, settings)
    return Outcome("ignored", reason=f"not an event this function handles: {detail_type!r}")


def on_training_job(detail: dict[str, Any], settings: Settings) -> Outcome:
    job = str(detail.get("TrainingJobName", ""))
    if not job.startswith(f"{settings.training_job_prefix}-"):
        return Outcome(
            "ignored", job, reason=f"not one of this stack's jobs ({settings.training_job_prefix}-*)"
        )
    # The event may be stale or repeated: the job's own description is the truth.
    desc = aws.sagemaker().describe_training_job(TrainingJobName=job)
    status = str(desc["TrainingJobStatus"])
    if status not in TERMINAL_JOB_STATES:
        return Outcome("ignored", job, reason=f"job is {status}; waiting for it to end")
    records = Records(settings.require("deployments_table"))
    if not records.claim(job):
        return Outcome("duplicate", job, reason="this job's model was already handled")
    if status != "Completed":
        reason = f"training job {status}: {desc.get('FailureReason') or 'no reason given'}"
        records.update(job, status="failed", reason=reason)
        return Outcome("failed", job, reason=reason)
    metrics = {str(m["MetricName"]): float(m["Value"]) for m in desc.get("FinalMetricDataList", [])}
    source = str((desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts", ""))
    try:
        artifact = artifacts.admit(source, settings.require("bucket_name"))
    except artifacts.ArtifactError as exc:
        reason = f"model artifact refused: {exc}"
        records.update(job, status="failed", reason=reason)
        return Outcome("failed", job, reason=reason)
    tainted = quarantined_labellers(desc, settings)
    if tainted:
        decision = Decision(False, f"trained on labels of quarantined labeller(s) {', '.join(tainted)}")
    else:
        decision = gate(
            metrics,
            champion(settings),
            settings,
            labels=artifact.labels,
            allow_label_change=allows_label_change(desc),
            influence=artifact.influence,
        )
    extra = {k: v for k, v in job_hyperparameters(desc).items() if k in PACKAGE_HYPERPARAMETERS}
    if tainted:
        extra[QUARANTINED_KEY] = ",".join(tainted)[:256]
    package = register(job, artifact, metrics, decision, settings, extra=extra)
    logger.info("gated", training_job_name=job, approved=decision.approved, reason=decision.reason)
    if not decision.approved:
        records.update(job, status="rejected", reason=decision.reason, model_version=package.version)
        if extra.get("retrain_reason"):
            # Its labels now count as tried (monitor.labels_since): the labels alarm's next
            # episode starts on labels that arrive after them.
            rearm_monitor_alarms(
                settings,
                f"version {package.version} was refused: labels count from its feedback window",
                only="labels",
            )
        return Outcome("rejected", job, package.version, decision.reason)
    records.update(job, model_version=package.version, reason=decision.reason)
    return start_roll_out(package, job, settings, records)


def job_hyperparameters(desc: Mapping[str, Any]) -> dict[str, str]:
    """A DescribeTrainingJob's hyperparameters, JSON-decoded where they are JSON strings."""
    out: dict[str, str] = {}
    for name, raw in (desc.get("HyperParameters") or {}).items():
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[str(name)] = value if isinstance(value, str) else json.dumps(value)
    return out


def quarantined_labellers(desc: Mapping[str, Any], settings: Settings) -> list[str]:
    """Labellers whose rows the job trained on (its ``feedback_rows``) and who are quarantined
    for labels received before its ``feedback_until`` (quarantined after the job started)."""
    hyper = job_hyperparameters(desc)
    try:
        rows = json.loads(hyper.get("feedback_rows") or "{}")
    except ValueError:
        rows = {}
    if not isinstance(rows, dict) or not rows or not hyper.get("feedback_until"):
        return []
    until = parse_time(hyper["feedback_until"])
    blocked = authority.read_quarantine(aws.s3(), settings.require("bucket_name"))
    return sorted(name for name in rows if name in blocked and blocked[name].since_before(until))


def register(
    job: str,
    artifact: artifacts.Artifact,
    metrics: dict[str, float],
    decision: Decision,
    settings: Settings,
    *,
    extra: Mapping[str, str] | None = None,
) -> Package:
    """A model package for the job's admitted archive, Approved or Rejected, with its figures, its
    SHA-256, the reason and ``extra`` (a retrain's reason and feedback window)."""
    image = settings.require("inference_image_uri")
    metadata: dict[str, str] = {name: f"{metrics[name]:.6f}" for name in PACKAGE_METRICS if name in metrics}
    metadata |= {"training_job": job, "gate": decision.reason[:256], **artifact.metadata()}
    metadata |= {k: str(v)[:256] for k, v in (extra or {}).items()}
    arn = aws.sagemaker().create_model_package(
        ModelPackageGroupName=settings.require("model_package_group"),
        ModelPackageDescription=f"textclf model trained by {job}",
        InferenceSpecification={
            "Containers": [{"Image": image, "ModelDataUrl": artifact.uri}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus="Approved" if decision.approved else "Rejected",
        CustomerMetadataProperties=metadata,
        # A retried call after a timeout returns the same package instead of a second one.
        ClientToken=job,
    )["ModelPackageArn"]
    return describe_package(str(arn))


def on_model_package(detail: dict[str, Any], settings: Settings) -> Outcome:
    if detail.get("ModelPackageGroupName") != settings.require("model_package_group"):
        return Outcome("ignored", reason="another model package group")
    arn = str(detail.get("ModelPackageArn", ""))
    package = describe_package(arn)
    if package.status != "Approved":
        return Outcome("ignored", model_version=package.version, reason=f"package is {package.status}")
    if package.metadata.get(QUARANTINED_KEY):
        return Outcome(
            "ignored",
            model_version=package.version,
            reason=f"trained on labels of quarantined labeller(s) {package.metadata[QUARANTINED_KEY]}; "
            "the loop does not roll it out",
        )
    if serving_version(settings) == package.version:
        return Outcome("ignored", model_version=package.version, reason="this version already serves")
    # A package registered by hand has no job: its version names its record.
    job = package.metadata.get("training_job") or f"package-v{package.version}"
    records = Records(settings.require("deployments_table"))
    record = records.get(job)
    if record is not None and record["status"] in ("pending", "deploying"):
        # The training-job event of this model registers and rolls it out itself.
        return Outcome("duplicate", job, package.version, f"already {record['status']}")
    if record is None:
        records.claim(job)
    return start_roll_out(package, job, settings, records)


def start_roll_out(package: Package, job: str, settings: Settings, records: Records) -> Outcome:
    """:func:`roll_out`, with a failure to start recorded on the job (a retried event would find the
    job handled and do nothing): the operator sees why, and approving the version again retries."""
    try:
        return roll_out(package, job, settings, records)
    except Exception as exc:
        logger.exception("rollout could not start", training_job_name=job, model_version=package.version)
        reason = (
            f"rollout of version {package.version} could not start ({type(exc).__name__}: {exc}); "
            f"fix the cause, then `textclf models promote {package.version}` retries it"
        )[:1000]
        records.update(job, status="failed", reason=reason, model_version=package.version)
        return Outcome("failed", job, package.version, reason)


def roll_out(
    package: Package, job: str, settings: Settings, records: Records, clients: Clients | None = None
) -> Outcome:
    """:func:`change_endpoint` to ``package``, recorded on the job (queued when the endpoint is busy)."""
    name = versioned_name(settings.require("endpoint_name"), package.version)
    # The package records the DLC; the model runs the image InferenceServer picks now.
    served = inference_image.served_image(settings, package.image)
    release = Release(
        image=served.uri,
        model_data=package.model_data,
        admission=package.metadata,
        environment={MODEL_VERSION_ENV: package.version},
    )
    change = change_endpoint(release, name, settings, clients or Clients.of_function())
    if change.action == "queued":
        reason = f"waiting for the endpoint ({change.state}); rolled out when it is InService"
        records.update(job, status="pending", reason=reason, model_version=package.version, queued="1")
        return Outcome("queued", job, package.version, reason)
    how = (
        "creating the endpoint"
        if change.action == "created"
        else f"updating the endpoint from {change.previous_config}"
    )
    if served.fallback:
        logger.warning(served.fallback, training_job_name=job, model_version=package.version)
        how = f"{how}; {served.fallback}"
    records.update(
        job,
        status="deploying",
        model_version=package.version,
        endpoint_config_name=name,
        reason=how,
        # Kept for the settled record's reason: GET /train/{job} says which server answers.
        image_fallback=served.fallback,
        queued="",
    )
    logger.info(
        "rollout started", training_job_name=job, model_version=package.version, config=name, image=served.uri
    )
    return Outcome("deploying", job, package.version, how)


# --------------------------------------------------------------------------------------------
# One rollout: the SageMaker calls of the deploy function and of `textclf deploy`
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clients:
    """The boto3 clients a rollout calls: the function's own, or ``textclf deploy``'s session's."""

    sagemaker: Any
    s3: Any

    @classmethod
    def of_function(cls) -> Clients:
        return cls(sagemaker=aws.sagemaker(), s3=aws.s3())


@dataclass(frozen=True)
class Release:
    """What one rollout serves: the image, the admitted archive with what its admission recorded
    (``artifacts.Artifact.metadata()``: sha256, offline) and container variables beyond the base."""

    image: str
    model_data: str
    admission: dict[str, str]
    environment: dict[str, str] = field(default_factory=dict)
    #: Where admitted archives live in their bucket (the stack's ``models/``; ``textclf deploy --upload-to``).
    admitted_prefix: str = artifacts.MODELS_PREFIX


@dataclass(frozen=True)
class Change:
    """What :func:`change_endpoint` asked SageMaker for."""

    action: Literal["queued", "created", "updated"]
    state: str  # the endpoint's status before ("" when there was none)
    previous_config: str | None = None


class EndpointFailedError(Exception):
    """The endpoint is Failed and the caller asked not to replace it."""


def change_endpoint(
    release: Release,
    name: str,
    settings: Settings,
    clients: Clients,
    *,
    replace_failed: bool = True,
    echo: Callable[[str], None] = lambda _: None,
) -> Change:
    """New Model + EndpointConfig ``name`` for ``release``; create or update the endpoint (no waiting).

    Nothing is created while the endpoint is busy (``queued``). A Failed endpoint cannot be updated:
    it is replaced, or with ``replace_failed=False`` :class:`EndpointFailedError` says so. Raises
    :class:`artifacts.ArtifactError` unless the archive is the admitted bytes.
    """
    endpoint_name = settings.require("endpoint_name")
    endpoint = describe_endpoint(settings, clients.sagemaker)
    state = str((endpoint or {}).get("EndpointStatus", ""))
    if state in BUSY_ENDPOINT_STATES:
        return Change("queued", state)
    if state == "Failed" and not replace_failed:
        raise EndpointFailedError(str((endpoint or {}).get("FailureReason") or "no reason given"))
    # The archive is code the container runs: only the bytes admitted and recorded are served.
    artifacts.verify(release.model_data, release.admission, s3=clients.s3, prefix=release.admitted_prefix)
    sm = clients.sagemaker
    isolated = network_isolation(release.admission, settings)
    echo(
        f"CreateModel {name}: image {release.image}, model data {release.model_data} "
        f"(sha256 verified, network isolation {'on' if isolated else 'off'})"
    )
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=settings.require("sagemaker_role_arn"),
        PrimaryContainer={
            "Image": release.image,
            "ModelDataUrl": release.model_data,
            "Environment": container_environment(settings.endpoint_type) | release.environment,
        },
        EnableNetworkIsolation=isolated,
    )
    variant: Any = production_variant(name, settings)
    capture = data_capture_config(settings)
    echo(f"CreateEndpointConfig {name}: {_fleet(variant)}, {_capture(capture)}")
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[variant],
        **({"DataCaptureConfig": capture} if capture else {}),
    )
    if endpoint is None or state == "Failed":
        if state == "Failed":
            # A Failed endpoint cannot be updated; it is replaced.
            echo(f"DeleteEndpoint {endpoint_name} (Failed)")
            sm.delete_endpoint(EndpointName=endpoint_name)
        echo(f"CreateEndpoint {endpoint_name}")
        sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=name)
        return Change("created", state)
    previous = endpoint.get("EndpointConfigName")
    update: dict[str, Any] = {"EndpointName": endpoint_name, "EndpointConfigName": name}
    if settings.endpoint_type == "RealTime":
        update["DeploymentConfig"] = deployment_config(settings)
        # Keep the instance count autoscaling chose; only the model changes.
        update["RetainAllVariantProperties"] = (
            settings.endpoint_max_instances > settings.endpoint_min_instances
        )
    echo(f"UpdateEndpoint {endpoint_name} (was {previous})")
    sm.update_endpoint(**update)
    return Change("updated", state, previous)


def _fleet(variant: dict[str, Any]) -> str:
    serverless = variant.get("ServerlessConfig")
    if serverless:
        return f"serverless, {serverless['MemorySizeInMB']} MB, concurrency {serverless['MaxConcurrency']}"
    return f"{variant['InitialInstanceCount']} x {variant['InstanceType']}"


def _capture(capture: dict[str, Any] | None) -> str:
    if capture is None:
        return "no data capture"
    return f"capturing {capture['InitialSamplingPercentage']}% to {capture['DestinationS3Uri']}"


def data_capture_config(settings: Settings) -> dict[str, Any] | None:
    """The endpoint config's DataCaptureConfig: requests and replies of a real-time endpoint to
    ``s3://<bucket>/capture/`` (JSON kept as text), sampled at CaptureSamplingPercent. None when
    that is 0, for serverless endpoints (SageMaker has no capture there), and without a bucket
    (``textclf deploy`` by hand)."""
    percent = settings.capture_sampling_percent
    if percent == 0 or settings.endpoint_type == "Serverless" or not settings.bucket_name:
        return None
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": percent,
        "DestinationS3Uri": f"s3://{settings.bucket_name}/{CAPTURE_PREFIX}",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }


def network_isolation(admission: dict[str, str], settings: Settings) -> bool:
    """Isolate the container from the network unless it must pip-install at start (requirements
    not vendored) or the endpoint is serverless (which does not support isolation)."""
    return admission.get(artifacts.OFFLINE_KEY) == "true" and settings.endpoint_type != "Serverless"


def production_variant(model_name: str, settings: Settings) -> dict[str, Any]:
    variant: dict[str, Any] = {"VariantName": VARIANT_NAME, "ModelName": model_name}
    if settings.endpoint_type == "Serverless":
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": settings.serverless_memory_mb,
            "MaxConcurrency": settings.serverless_max_concurrency,
        }
    else:
        variant |= {
            "InstanceType": settings.endpoint_instance_type,
            "InitialInstanceCount": settings.endpoint_min_instances,
            "InitialVariantWeight": 1.0,
        }
    return variant


def deployment_config(settings: Settings) -> dict[str, Any]:
    """Blue/green with guardrails: canary on fleets of 2+ instances (a canary may hold at most half of
    them), all at once on one instance; rollback when a template alarm fires during the bake time."""
    if settings.endpoint_min_instances >= 2:
        routing: dict[str, Any] = {
            "Type": "CANARY",
            "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
            "WaitIntervalInSeconds": settings.canary_wait_seconds,
        }
    else:
        routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": settings.canary_wait_seconds,
            "MaximumExecutionTimeoutInSeconds": 3600,
        }
    }
    if settings.rollback_alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in settings.rollback_alarms]}
    return config


def on_endpoint(detail: dict[str, Any], settings: Settings) -> Outcome:
    if detail.get("EndpointName") != settings.require("endpoint_name"):
        return Outcome("ignored", reason="another endpoint")
    endpoint = describe_endpoint(settings)
    records = Records(settings.require("deployments_table"))
    if endpoint is None:
        return Outcome("ignored", reason="the endpoint does not exist (deleted)")
    state = str(endpoint.get("EndpointStatus"))
    serving = str(endpoint.get("EndpointConfigName", ""))
    if state in BUSY_ENDPOINT_STATES:
        return Outcome("ignored", reason=f"endpoint {state}")
    settled: Outcome = Outcome("ignored", reason=f"endpoint {state} on {serving}")
    for record in records.jobs("deploying"):
        job = record["training_job_name"]
        verdict = rollout_result(endpoint, record.get("endpoint_config_name", ""))
        if verdict is None:
            continue
        reason = verdict.reason
        if verdict.status == "deployed" and record.get("image_fallback"):
            reason = f"{reason}; {record['image_fallback']}"
        records.update(job, status=verdict.status, reason=reason)
        if verdict.status == "deployed":
            _mark_superseded(records, job, record.get("model_version", ""))
            version = record.get("model_version", "")
            rearm_monitor_alarms(settings, f"version {version} now serves: the monitor judges it afresh")
        settled = Outcome(verdict.status, job, record.get("model_version"), reason)
    if state == "InService":
        publish_serving_labels(endpoint, settings)
        scale(settings)
        queued = sorted(
            (r for r in records.jobs("pending") if r.get("queued") == "1" and r.get("model_version")),
            key=lambda r: int(r["model_version"]),
        )
        if queued:
            package = find_package(queued[-1]["model_version"], settings)
            if package is not None and package.status == "Approved":
                return start_roll_out(package, queued[-1]["training_job_name"], settings, records)
    return settled


def rearm_monitor_alarms(settings: Settings, why: str, only: RetrainReason | None = None) -> list[str]:
    """Set the monitor's alarms that are in ALARM (``only`` the one giving that reason) back to OK;
    returns them.

    CloudWatch sends an event only when an alarm changes state, and a retrain starts on that
    event. An alarm still breaching when the retrained model takes over (labels kept arriving
    while it trained, so "labels since training" is already past RetrainAfterLabels) would stay in
    ALARM and start nothing again. Back at OK, the next monitor run judges afresh: still
    breaching, it changes to ALARM and starts the next episode. After a refused retrain only the
    labels alarm is re-armed: its count restarts after the refused job's labels, so it fires again
    only on new evidence; drift or low accuracy the refused model could not mend waits for one."""
    from textclf_api.logic.retrain import alarm_reasons  # only on a verdict: not in every import

    names = [name for name, reason in alarm_reasons(settings).items() if only is None or reason == only]
    cloudwatch = aws.cloudwatch()
    try:
        alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
        rearmed = [str(a["AlarmName"]) for a in alarms if a.get("StateValue") == "ALARM"]
        for name in rearmed:
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason=why[:1023])
    except ClientError as exc:
        # The verdict is recorded already; a missed re-arm only delays the next retrain.
        logger.warning("monitor alarms not re-armed", error=str(exc), why=why)
        return []
    if rearmed:
        logger.info("monitor alarms re-armed", alarms=rearmed, why=why)
    return rearmed


def publish_serving_labels(
    endpoint: dict[str, Any], settings: Settings, sagemaker: Any = None, s3: Any = None
) -> dict[str, Any]:
    """Record what the InService ``endpoint`` (its DescribeEndpoint) serves -- the label set kept
    beside its model's archive, and the version -- at ``serving/labels.json``, where POST
    /feedback reads it in one call. Whatever put the model there (a rollout of this loop, a
    rollback, ``textclf deploy``), the config it serves names the archive. ``labels`` is null for
    an archive admitted before label files existed: feedback then waits for a model that has one.
    The clients default to the function's; the local stack passes its own for its first model."""
    sm = sagemaker or aws.sagemaker()
    s3 = s3 or aws.s3()
    config = str(endpoint["EndpointConfigName"])
    variant = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
    container = sm.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
    model_data = str(container.get("ModelDataUrl", ""))
    try:
        labels = artifacts.recorded_labels(s3, model_data)
    except ClientError as exc:  # another bucket this function may not read (a hand deploy)
        logger.warning("the served model's labels cannot be read", model_data=model_data, error=str(exc))
        labels = None
    record = {
        "endpoint_config": config,
        "model_version": (container.get("Environment") or {}).get(MODEL_VERSION_ENV) or version_of(config),
        "model_data": model_data,
        "labels": labels,
        "published_at": utc_now(),
    }
    s3.put_object(
        Bucket=settings.require("bucket_name"),
        Key=SERVING_LABELS_KEY,
        Body=json.dumps(record, ensure_ascii=False).encode("utf-8"),
        ContentType="application/json",
    )
    logger.info(
        "serving labels recorded", endpoint_config=config, labels=None if labels is None else len(labels)
    )
    return record


@dataclass(frozen=True)
class Result:
    status: Literal["deployed", "rolled_back", "failed"]
    reason: str


def rollout_result(endpoint: dict[str, Any], config_name: str) -> Result | None:
    """How the rollout to ``config_name`` ended, read from the endpoint's DescribeEndpoint; None while
    it has not (busy, or a state no rollout ends in). SageMaker rolls a failed update back: the
    endpoint returns to InService on the *old* config with a FailureReason."""
    state = str(endpoint.get("EndpointStatus"))
    serving = str(endpoint.get("EndpointConfigName", ""))
    failure = str(endpoint.get("FailureReason") or "") or "no reason given"
    if state == "InService" and config_name == serving:
        return Result("deployed", f"serving on {serving}")
    if state == "InService":
        rolled = "alarm" in failure.lower()
        reason = f"rollout of {config_name} ended; the endpoint serves {serving}: {failure}"
        return Result("rolled_back" if rolled else "failed", reason)
    if state == "Failed":
        return Result("failed", f"the endpoint failed: {failure}")
    return None


def _mark_superseded(records: Records, job: str, version: str) -> None:
    """A newer version replacing an older one leaves it ``deployed`` (it served); an older version
    coming back (a promote) marks the newer ones that served ``rolled_back``."""
    if not version.isdigit():
        return
    for record in records.jobs("deployed"):
        other = record.get("model_version", "")
        if record["training_job_name"] != job and other.isdigit() and int(other) > int(version):
            records.update(
                record["training_job_name"],
                status="rolled_back",
                reason=f"version {version} was promoted back",
            )


def scale(settings: Settings) -> None:
    """Target tracking on invocations per instance between the template's min and max instances."""
    if (
        settings.endpoint_type != "RealTime"
        or settings.endpoint_max_instances <= settings.endpoint_min_instances
    ):
        return
    resource = f"endpoint/{settings.require('endpoint_name')}/variant/{VARIANT_NAME}"
    client = aws.autoscaling()
    client.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        MinCapacity=settings.endpoint_min_instances,
        MaxCapacity=settings.endpoint_max_instances,
    )
    client.put_scaling_policy(
        PolicyName=f"{settings.require('endpoint_name')}-invocations",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(settings.autoscaling_target_invocations),
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
    )


def teardown(endpoint_name: str, sagemaker: Any = None, autoscaling: Any = None) -> list[str]:
    """Stop the endpoint's billing: deregister autoscaling and delete the endpoint. Models, configs
    and the registry stay (they cost nothing), so a later promote brings a version back.

    The clients default to the function's; ``textclf teardown`` passes its own.
    """
    sagemaker = sagemaker or aws.sagemaker()
    autoscaling = autoscaling or aws.autoscaling()
    done: list[str] = []
    try:
        autoscaling.deregister_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}",
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        )
        done.append("deregistered autoscaling")
    except ClientError as exc:
        if aws.error_code(exc) not in ("ObjectNotFoundException", "ValidationException"):
            raise
    try:
        sagemaker.delete_endpoint(EndpointName=endpoint_name)
        done.append(f"deleted endpoint {endpoint_name}")
    except ClientError as exc:
        message = aws.error_message(exc).lower()
        if "could not find" not in message and "not found" not in message:
            raise
    return done
