"""Start SageMaker training jobs and report their status.

The CreateTrainingJob request is the one the SageMaker Hugging Face estimator would send: the HF
PyTorch training image runs ``train.py`` from ``s3://<bucket>/code/sourcedir.tar.gz`` (the
``sagemaker_program`` / ``sagemaker_submit_directory`` hyperparameters, JSON-encoded like every
hyperparameter), with the ``train`` and ``validation`` channels of the dataset the pointer
``s3://<bucket>/datasets/latest.json`` names. Missing prerequisites are the user's to create, so
they answer 409 naming what to run -- never a job that fails ten minutes later.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, get_args

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from botocore.exceptions import ClientError

from textclf_api import aws
from textclf_api import hyperparameters as hp
from textclf_api.errors import (
    ApiError,
    ConflictError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    PreconditionMissingError,
    QuotaExceededError,
    ResourceNotFoundError,
)
from textclf_api.logic.deploy_records import ALLOW_LABEL_CHANGE, deployment_of
from textclf_api.schemas import (
    GPUS_PER_INSTANCE,
    MAX_MAX_LENGTH,
    MIN_MAX_LENGTH,
    TRAINING_JOB_NAME_PATTERN,
    Deployment,
    RetrainReason,
    TrainRequest,
    TrainStartedResponse,
    TrainStatusResponse,
)
from textclf_api.settings import Settings, get_settings

logger = Logger(child=True)

# What model/train.py prints, one line per value: "METRIC <name>=<number>" (docs/DESIGN.md).
METRIC_NAMES: Final[tuple[str, ...]] = (
    "train_loss",
    "validation_loss",
    "validation_accuracy",
    "validation_macro_f1",
    "epoch",
    "lexical_accuracy",
    "blend_accuracy",
    "blend_weight",
    # Scored by the job on the STORY-disjoint test channel through the archive it wrote; the
    # deploy function gates on test_accuracy.
    "test_accuracy",
    "test_macro_f1",
    "baseline_test_accuracy",
    "baseline_test_macro_f1",
    # A retrain (model/retraining.py): challenger and champion scored in the same job on the same
    # rows -- the test channel, the recent feedback window and its trusted slice.
    "champion_test_accuracy",
    "recent_accuracy",
    "champion_recent_accuracy",
    "trusted_accuracy",
    "champion_trusted_accuracy",
)
METRIC_DEFINITIONS: Final[list[dict[str, str]]] = [
    {"Name": name, "Regex": f"METRIC {name}=([0-9.eE+-]+)"} for name in METRIC_NAMES
]
CHECKPOINT_LOCAL_PATH: Final = "/opt/ml/checkpoints"
#: The SageMaker Python SDK's HuggingFace estimator sends this hyperparameter for
#: ``distribution={"torch_distributed": {"enabled": True}}`` (``LAUNCH_TORCH_DISTRIBUTED_ENV_NAME``);
#: the training toolkit then starts the program with torchrun, one process per GPU on every host.
TORCHRUN_LAUNCHER: Final = "sagemaker_torch_distributed_enabled"
#: Sent beside it, as the SDK does (the toolkit reads it for its EFA settings).
INSTANCE_TYPE_HYPERPARAMETER: Final = "sagemaker_instance_type"
#: Dataset folders the job reads; train.py scores the archive it writes on "test".
CHANNELS: Final = ("train", "validation", "test")
_JOB_NAME_RE: Final = re.compile(TRAINING_JOB_NAME_PATTERN)
_MISSING_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})


def new_job_name(prefix: str, now: datetime | None = None, suffix: str | None = None) -> str:
    """``<prefix>-<YYYYmmdd-HHMMSS>-<6 hex>``: sortable, unique, at most 63 characters."""
    now = now or datetime.now(UTC)
    suffix = suffix or secrets.token_hex(3)
    name = f"{prefix}-{now:%Y%m%d-%H%M%S}-{suffix}"
    if len(name) > 63 or not _JOB_NAME_RE.match(name):
        raise ValueError(f"training job name {name!r} is not a valid SageMaker name")
    return name


#: Idempotency-Key values: what a client can generate (a UUID, a ULID, a build id).
IDEMPOTENCY_KEY_PATTERN: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: How long a key returns the job it started.
IDEMPOTENCY_TTL_SECONDS: Final = 24 * 3600


def start_training_once(
    request: TrainRequest,
    key: str | None,
    settings: Settings | None = None,
    lambda_context: Any = None,
    *,
    prepare: Prepare | None = None,
) -> TrainStartedResponse:
    """``start_training``, but a repeated ``Idempotency-Key`` with the same body returns the job the
    first request started (for 24 h) instead of a second GPU job; the same key with another body is
    refused (422), and one still being processed answers 409. ``prepare``: see ``start_training``
    (a retrain's inputs are built once, by the call that starts the job)."""
    settings = settings or get_settings()
    if key is None:
        return start_training(request, settings, prepare=prepare)
    if not IDEMPOTENCY_KEY_PATTERN.match(key):
        raise InvalidRequestError("the Idempotency-Key header must be 1-128 letters, digits or . _ : -")
    start = _idempotent_start(settings.require("idempotency_table"))
    if lambda_context is not None:
        start.config.register_lambda_context(lambda_context)
    try:
        result: TrainStartedResponse = start.call(
            # Only the fields the caller set: validated back, the others stay unset, so the
            # dataset's training defaults still fill them (a full dump would set every default).
            call={"key": key, "request": request.model_dump(mode="json", exclude_unset=True)},
            prepare=prepare,
        )
    except IdempotencyValidationError as exc:
        raise IdempotencyKeyReusedError(
            f"Idempotency-Key {key!r} was used in the last 24 h with another request body; "
            "send the same body to get that job back, or use a new key"
        ) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise ConflictError(
            f"a request with Idempotency-Key {key!r} is still being processed; retry in a few seconds",
            retry_after=2,
        ) from exc
    except IdempotencyPersistenceLayerError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        raise aws.translate(cause, "the idempotency table", settings.retry_after_seconds) from exc
    return result


@dataclass(frozen=True)
class _IdempotentStart:
    config: IdempotencyConfig
    call: Callable[..., TrainStartedResponse]


@lru_cache(maxsize=4)
def _idempotent_start(table: str) -> _IdempotentStart:
    """Powertools idempotency around ``start_training``, keyed by the header, validated on the body."""
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
    )
    store = DynamoDBPersistenceLayer(table_name=table, boto_config=aws.DYNAMODB_BUDGET.config())

    @idempotent_function(
        data_keyword_argument="call",
        persistence_store=store,
        config=config,
        output_serializer=PydanticSerializer(model=TrainStartedResponse),
    )
    def start(call: dict[str, Any], prepare: Prepare | None = None) -> TrainStartedResponse:
        # Only ``call`` is hashed and validated: ``prepare`` is how, not what.
        return start_training(TrainRequest.model_validate(call["request"]), prepare=prepare)

    return _IdempotentStart(config, start)


def check_capacity(settings: Settings) -> None:
    """429 while ``MaxConcurrentTrainingJobs`` of this stack's jobs run: each is a paid GPU."""
    prefix = f"{settings.training_job_prefix}-"
    running = 0
    kwargs: dict[str, Any] = {"NameContains": prefix, "StatusEquals": "InProgress", "MaxResults": 100}
    try:
        while True:
            page = aws.sagemaker_quick().list_training_jobs(**kwargs)
            running += sum(1 for j in page["TrainingJobSummaries"] if j["TrainingJobName"].startswith(prefix))
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    except Exception as exc:
        raise aws.translate(exc, "SageMaker ListTrainingJobs", settings.retry_after_seconds) from exc
    if running >= settings.max_concurrent_training_jobs:
        raise QuotaExceededError(
            f"{running} training jobs of this stack are running (MaxConcurrentTrainingJobs is "
            f"{settings.max_concurrent_training_jobs}); retry when one has finished",
            retry_after=settings.retry_after_seconds,
        )


@dataclass(frozen=True)
class ExtraInputs:
    """What a retrain adds to a job: channels beside the dataset's (name -> S3 URI of a prefix or
    one object) and hyperparameters (``retrain_reason``, ``feedback_until``, ...)."""

    channels: dict[str, str]
    hyperparameters: dict[str, Any]


#: Builds a job's extra inputs from the dataset it trains on, once capacity is known to be free.
Prepare = Callable[[str], ExtraInputs]


def start_training(
    request: TrainRequest,
    settings: Settings | None = None,
    *,
    job_name: str | None = None,
    prepare: Prepare | None = None,
) -> TrainStartedResponse:
    """Start one job; ``prepare`` (a retrain's) is called with the dataset URI after the checks,
    so nothing is built for a job that is refused."""
    settings = settings or get_settings()
    bucket = settings.require("bucket_name")
    settings.require("sagemaker_role_arn")
    settings.require("training_image_uri")
    if request.instance_count > settings.max_training_instance_count:
        raise InvalidRequestError(
            f"instance_count {request.instance_count} is above this stack's MaxTrainingInstanceCount "
            f"({settings.max_training_instance_count})"
        )
    dataset = read_dataset_pointer(settings, bucket)
    dataset_uri = dataset.uri
    check_capacity(settings)
    source_uri = check_source_bundle(settings, bucket)
    extra = prepare(dataset_uri) if prepare is not None else None
    job_name = job_name or new_job_name(settings.training_job_prefix)
    job = build_training_job_request(
        request,
        settings,
        job_name=job_name,
        dataset_uri=dataset_uri,
        source_uri=source_uri,
        region=aws.sagemaker().meta.region_name,
        default_max_length=dataset.max_length,
        extra=extra,
        dataset_defaults=dataset.hyperparameters,
    )
    client = aws.sagemaker()
    what = "SageMaker CreateTrainingJob"
    try:
        arn = client.create_training_job(**job)["TrainingJobArn"]
    except ClientError as exc:
        code = aws.error_code(exc)
        if code == "ResourceLimitExceeded":
            raise QuotaExceededError(
                f"SageMaker training quota reached for {job['ResourceConfig']['InstanceType']}; "
                "wait for running jobs or request a quota increase",
                retry_after=settings.retry_after_seconds,
            ) from exc
        if code == "ResourceInUse":
            # Only our own retry of a timed-out attempt can own this freshly generated name: that
            # attempt created the job, so report it instead of failing.
            arn = _describe(job_name, settings)["TrainingJobArn"]
        else:
            raise aws.translate(exc, what, settings.retry_after_seconds) from exc
    except Exception as exc:
        raise aws.translate(exc, what, settings.retry_after_seconds) from exc
    processes = training_processes(job)
    logger.info(
        "training job started", training_job_name=job_name, dataset_uri=dataset_uri, processes=processes
    )
    return TrainStartedResponse(
        training_job_name=job_name,
        training_job_arn=str(arn),
        status="InProgress",
        dataset_uri=dataset_uri,
        processes=processes,
        effective_batch_size=int(json.loads(job["HyperParameters"]["batch_size"])) * processes,
    )


def training_processes(job: dict[str, Any]) -> int:
    """Processes a CreateTrainingJob request trains with: one per GPU on every instance."""
    resources = job["ResourceConfig"]
    return int(resources["InstanceCount"]) * GPUS_PER_INSTANCE[str(resources["InstanceType"])]


@dataclass(frozen=True)
class DatasetPointer:
    """``datasets/latest.json``: where the channels are and the defaults the dataset carries."""

    uri: str
    max_length: int | None = None
    #: Further train.py hyperparameters (a training budget: epochs, max_train_samples, ...) its
    #: jobs take unless the request sets them; ``textclf serve --train-default`` writes them locally.
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def read_dataset_pointer(settings: Settings, bucket: str) -> DatasetPointer:
    """The dataset prefix ``s3://<bucket>/datasets/<sha12>/`` and its training defaults."""
    key = settings.dataset_pointer_key
    pointer = f"s3://{bucket}/{key}"
    datasets_prefix = key.rsplit("/", 1)[0] if "/" in key else ""
    hint = f"run `textclf data --s3-uri s3://{bucket}/{datasets_prefix}` to upload the dataset"
    try:
        obj = aws.s3().get_object(Bucket=bucket, Key=key)
        raw = obj["Body"].read()
    except ClientError as exc:
        if aws.error_code(exc) in _MISSING_CODES:
            raise PreconditionMissingError(f"no dataset: {pointer} does not exist; {hint}") from exc
        raise aws.translate(exc, f"reading {pointer}", settings.retry_after_seconds) from exc
    except Exception as exc:
        raise aws.translate(exc, f"reading {pointer}", settings.retry_after_seconds) from exc
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise PreconditionMissingError(f"the dataset pointer {pointer} is not valid JSON; {hint}") from exc
    uri = document.get("uri") if isinstance(document, dict) else None
    # The SageMaker role may only read this bucket, so a dataset elsewhere would fail inside the job.
    if not isinstance(uri, str) or not re.fullmatch(rf"s3://{re.escape(bucket)}/\S+/", uri):
        raise PreconditionMissingError(
            f'the dataset pointer {pointer} must hold {{"uri": "s3://{bucket}/.../"}} '
            f"(a prefix in this bucket ending in '/'); {hint}"
        )
    defaults = document.get("training_defaults") or {}
    if not isinstance(defaults, dict):
        raise PreconditionMissingError(f"training_defaults in {pointer} must be an object; {hint}")
    max_length = defaults.get("max_length")
    bounds = f"{MIN_MAX_LENGTH}..{MAX_MAX_LENGTH}"
    if max_length is not None and not (
        isinstance(max_length, int) and MIN_MAX_LENGTH <= max_length <= MAX_MAX_LENGTH
    ):
        raise PreconditionMissingError(
            f"training_defaults.max_length in {pointer} must be an integer in {bounds}; {hint}"
        )
    return DatasetPointer(uri=uri, max_length=max_length, hyperparameters=pointer_hyperparameters(defaults))


#: training_defaults keys that are not train.py hyperparameters, or not the dataset's to choose.
_NOT_POINTER_HYPERPARAMETERS: Final = frozenset({"labels", "max_length", "base_model"})


def pointer_hyperparameters(defaults: dict[str, Any]) -> dict[str, Any]:
    """The train.py hyperparameters among a pointer's ``training_defaults``, each checked against
    its type and bounds (hyperparameters.py); other keys are the dataset's own facts."""
    chosen: dict[str, Any] = {}
    for name, value in defaults.items():
        spec = hp.BY_NAME.get(name)
        if spec is None or name in _NOT_POINTER_HYPERPARAMETERS:
            continue
        fits = isinstance(value, spec.type) and not isinstance(value, bool)
        if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
            fits = True
        kind = {int: "an integer", float: "a number"}.get(spec.type, "a string")
        problem = spec.problem(value) if fits else f"--{name} must be {kind}"
        if problem is not None:
            raise PreconditionMissingError(
                f"the dataset pointer's training_defaults.{name}={value!r}: {problem}"
            )
        chosen[name] = value
    return chosen


def check_source_bundle(settings: Settings, bucket: str) -> str:
    key = settings.source_bundle_key
    uri = f"s3://{bucket}/{key}"
    try:
        aws.s3().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if aws.error_code(exc) in _MISSING_CODES:
            raise PreconditionMissingError(
                f"no training code: {uri} does not exist; upload it with "
                f"`textclf upload-source --s3-uri {uri}`"
            ) from exc
        raise aws.translate(exc, f"reading {uri}", settings.retry_after_seconds) from exc
    except Exception as exc:
        raise aws.translate(exc, f"reading {uri}", settings.retry_after_seconds) from exc
    return uri


def build_training_job_request(
    request: TrainRequest,
    settings: Settings,
    *,
    job_name: str,
    dataset_uri: str,
    source_uri: str,
    region: str,
    default_max_length: int | None = None,
    extra: ExtraInputs | None = None,
    dataset_defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The CreateTrainingJob parameters (plain data: the tests compare it field by field).

    ``default_max_length``: the dataset pointer's EDA choice, used when the request has none;
    ``dataset_defaults``: its other hyperparameters (:func:`pointer_hyperparameters`), likewise.
    ``extra``: a retrain's channels and hyperparameters.
    """
    bucket = settings.require("bucket_name")
    instance_type = request.instance_type or settings.training_instance_type
    defaults = dataset_defaults or {}
    given = request.model_fields_set
    hyperparameters: dict[str, Any] = {
        **defaults,
        **{
            name: getattr(request, name)
            for name in ("epochs", "learning_rate", "batch_size")
            if name in given or name not in defaults
        },
        "base_model": request.base_model or settings.base_model,
    }
    # Omitted: the dataset's EDA choice (pointer), else train.py's own default; all rows are used.
    max_length = request.max_length if request.max_length is not None else default_max_length
    if max_length is not None:
        hyperparameters["max_length"] = max_length
    if request.max_train_samples is not None:
        hyperparameters["max_train_samples"] = request.max_train_samples
    if request.truncation is not None:
        hyperparameters["truncation"] = request.truncation
    if request.allow_label_change:
        # For the deploy gate, which reads it back from DescribeTrainingJob (train.py ignores it).
        hyperparameters[ALLOW_LABEL_CHANGE] = True
    if extra is not None:
        hyperparameters |= extra.hyperparameters
    # The HF estimator's framework hyperparameters: the training toolkit downloads and unpacks the
    # submit directory and runs the program from it. Every value is JSON-encoded, as the SDK does.
    hyperparameters |= {
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": source_uri,
        "sagemaker_container_log_level": 20,
        "sagemaker_job_name": job_name,
        "sagemaker_region": region,
    }
    if request.instance_count * GPUS_PER_INSTANCE[instance_type] > 1:
        # Several GPUs: torchrun starts one train.py per GPU on each instance (data-parallel).
        hyperparameters |= {TORCHRUN_LAUNCHER: True, INSTANCE_TYPE_HYPERPARAMETER: instance_type}

    def channel(name: str, uri: str | None = None) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    # A prefix, or one object's key (S3Prefix matches it: the file lands in the channel).
                    "S3Uri": uri or f"{dataset_uri}{name}/",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "CompressionType": "None",
            "InputMode": "File",
        }

    stopping: dict[str, int] = {"MaxRuntimeInSeconds": settings.training_max_runtime_seconds}
    job: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.require("training_image_uri"),
            "TrainingInputMode": "File",
            "MetricDefinitions": [dict(m) for m in METRIC_DEFINITIONS],
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "RoleArn": settings.require("sagemaker_role_arn"),
        "HyperParameters": {key: json.dumps(value) for key, value in hyperparameters.items()},
        "InputDataConfig": [channel(name) for name in CHANNELS]
        + [channel(name, uri) for name, uri in (extra.channels if extra else {}).items()],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/{settings.training_output_prefix}/"},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": request.instance_count,
            "VolumeSizeInGB": settings.training_volume_size_gb,
        },
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": request.use_spot,
        "Tags": [
            {"Key": "textclf:dataset", "Value": dataset_uri},
            {"Key": "textclf:base-model", "Value": str(hyperparameters["base_model"])},
        ],
    }
    if request.use_spot:
        # Spot capacity can be reclaimed: train.py saves to and resumes from /opt/ml/checkpoints,
        # which SageMaker syncs with this S3 prefix. MaxWaitTime covers waiting for capacity + running.
        stopping["MaxWaitTimeInSeconds"] = settings.training_max_wait_seconds
        job["CheckpointConfig"] = {
            "S3Uri": f"s3://{bucket}/{settings.checkpoint_prefix}/{job_name}/",
            "LocalPath": CHECKPOINT_LOCAL_PATH,
        }
    return job


def get_training_status(job_name: str, settings: Settings | None = None) -> TrainStatusResponse:
    settings = settings or get_settings()
    prefix = settings.training_job_prefix
    # The trigger function may only describe jobs under its prefix (IAM); anything else is, for
    # this API, simply not one of its jobs.
    if not _JOB_NAME_RE.match(job_name) or not job_name.startswith(f"{prefix}-"):
        raise ResourceNotFoundError(
            f"no training job named {job_name!r} was started by this API (its names start '{prefix}-')"
        )
    job = _describe(job_name, settings)
    metrics = {
        str(m["MetricName"]): float(m["Value"])
        for m in job.get("FinalMetricDataList", [])
        if "MetricName" in m and "Value" in m
    }
    billable = job.get("BillableTimeInSeconds")
    deployment = _deployment(job_name, str(job["TrainingJobStatus"]), settings)
    return TrainStatusResponse(
        training_job_name=str(job["TrainingJobName"]),
        training_job_arn=str(job["TrainingJobArn"]),
        status=str(job["TrainingJobStatus"]),
        secondary_status=job.get("SecondaryStatus"),
        failure_reason=job.get("FailureReason"),
        metrics=metrics,
        model_artifact_uri=(job.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        instance_type=(job.get("ResourceConfig") or {}).get("InstanceType"),
        instance_count=(job.get("ResourceConfig") or {}).get("InstanceCount"),
        use_spot=bool(job.get("EnableManagedSpotTraining", False)),
        created_at=job.get("CreationTime"),
        started_at=job.get("TrainingStartTime"),
        ended_at=job.get("TrainingEndTime"),
        billable_seconds=int(billable) if billable is not None else None,
        reason=reason_of(job),
        deployment=deployment,
    )


#: The hyperparameter that says why a job exists; absent: started by hand (POST /train).
RETRAIN_REASON: Final = "retrain_reason"


def reason_of(job: Mapping[str, Any]) -> RetrainReason:
    """Why the DescribeTrainingJob ``job`` was started (manual when it does not say)."""
    raw = (job.get("HyperParameters") or {}).get(RETRAIN_REASON)
    try:
        value = json.loads(raw) if raw else "manual"
    except ValueError:
        value = raw
    reasons: tuple[RetrainReason, ...] = get_args(RetrainReason)
    return next((reason for reason in reasons if reason == value), "manual")


def _deployment(job_name: str, status: str, settings: Settings) -> Deployment | None:
    """The deploy loop's record of the job; ``pending`` until the deploy function has seen it."""
    if not settings.deployments_table:
        return None  # a stack without the loop
    try:
        found = deployment_of(job_name, settings)
    except ClientError as exc:
        raise aws.translate(exc, "reading the deployment record", settings.retry_after_seconds) from exc
    except Exception as exc:
        raise aws.translate(exc, "reading the deployment record", settings.retry_after_seconds) from exc
    if found is not None:
        return found
    waiting = "the job is still running" if status == "InProgress" else "waiting for the deploy function"
    return Deployment(status="pending", reason=waiting)


def _describe(job_name: str, settings: Settings) -> dict[str, Any]:
    what = f"SageMaker DescribeTrainingJob({job_name})"
    try:
        return dict(aws.sagemaker().describe_training_job(TrainingJobName=job_name))
    except ClientError as exc:
        message = aws.error_message(exc).lower()
        if aws.error_code(exc) in {"ValidationException", "ResourceNotFound"} and (
            "not found" in message or "not find" in message or "does not exist" in message
        ):
            raise ResourceNotFoundError(f"no training job named {job_name!r}") from exc
        raise aws.translate(exc, what, settings.retry_after_seconds) from exc
    except ApiError:
        raise
    except Exception as exc:
        raise aws.translate(exc, what, settings.retry_after_seconds) from exc
