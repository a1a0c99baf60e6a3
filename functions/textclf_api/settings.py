"""Environment configuration of the Lambda functions: the one place that reads ``os.environ``.

``template.yaml`` sets every variable; the local stack (``textclf serve``) and the tests set them
too. Each field of :class:`Settings` names its variable (the alias), its default and its check;
a blank variable counts as unset. A bad value is a :class:`ConfigurationError` (503) naming the
variable, never a pydantic traceback. Values are read once per process (``get_settings`` is cached)
-- call ``get_settings.cache_clear()`` after changing the environment.

Plain pydantic rather than pydantic-settings: the functions already ship pydantic, and reading
one flat mapping of strings is all they need.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from textclf_api.errors import ConfigurationError
from textclf_api.schemas import (
    BASE_MODELS,
    GPU_INSTANCE_TYPES,
    JOB_PREFIX_REGEX,
    MAX_BATCH_INSTANCE_COUNT,
    MAX_TRAINING_INSTANCE_COUNT,
)

# Job names are "<prefix>-<YYYYmmdd-HHMMSS>-<6 hex>" (23 characters after the prefix) and SageMaker
# allows 63, so the prefix may use 40. Lower case because SageMaker lower-cases names in ARNs, and
# the trigger function's IAM policy matches the ARN "training-job/<prefix>-*".
TRAINING_JOB_PREFIX_PATTERN: Final = re.compile(rf"^{JOB_PREFIX_REGEX}$")
#: The template's EndpointType values: a real-time endpoint on instances, or serverless inference.
ENDPOINT_TYPES: Final = ("RealTime", "Serverless")
#: The template's FeedbackAuth values: who may post ground truth (never open: it trains models).
FEEDBACK_AUTHS: Final = ("AWS_IAM", "API_KEY")
#: The template's InferenceServer values: the HF DLC's model server, or textclf's own image
#: (docker/Dockerfile). The default is template.yaml's default too (a test keeps them equal) and
#: what ``textclf bench --levels cloud`` runs unless asked for another.
INFERENCE_SERVERS: Final = ("dlc", "textclf")
DEFAULT_INFERENCE_SERVER: Final = "textclf"
#: SageMaker: MaxRuntimeInSeconds up to 28 days, and a spot job's MaxWaitTime at most as long.
MAX_TRAINING_SECONDS: Final = 28 * 24 * 3600
MAX_ENDPOINT_INSTANCES: Final = 100


def _check(test: Callable[[Any], bool], problem: str) -> AfterValidator:
    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _between(low: int, high: int) -> AfterValidator:
    return _check(lambda value: low <= value <= high, f"is outside {low}..{high}")


def _one_of(choices: tuple[str, ...]) -> AfterValidator:
    return _check(lambda value: value in choices, f"is not one of {', '.join(choices)}")


def _split_list(value: Any) -> Any:
    return (
        tuple(item.strip() for item in value.split(",") if item.strip()) if isinstance(value, str) else value
    )


def _var(name: str, default: Any = None) -> Any:
    """A field read from the environment variable ``name``."""
    return Field(default, alias=name)


Fraction = Annotated[float, _check(lambda value: 0.0 <= value <= 1.0, "is outside 0..1 (a fraction)")]
#: An S3 key (no leading slash) and a key prefix (no slash at either end).
S3Key = Annotated[str, AfterValidator(lambda value: value.lstrip("/"))]
S3Prefix = Annotated[str, AfterValidator(lambda value: value.strip("/"))]


#: Fields whose lower bound is another field: (that field, the upper bound).
_FLOORS: Final = {
    "training_max_wait_seconds": ("training_max_runtime_seconds", MAX_TRAINING_SECONDS),
    "endpoint_max_instances": ("endpoint_min_instances", MAX_ENDPOINT_INSTANCES),
}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, validate_by_name=True, extra="ignore")

    endpoint_name: str | None = _var("ENDPOINT_NAME")
    bucket_name: str | None = _var("BUCKET_NAME")
    sagemaker_role_arn: str | None = _var("SAGEMAKER_ROLE_ARN")
    training_image_uri: str | None = _var("TRAINING_IMAGE_URI")
    training_instance_type: Annotated[str, _one_of(GPU_INSTANCE_TYPES)] = _var(
        "TRAINING_INSTANCE_TYPE", "ml.g5.xlarge"
    )
    base_model: Annotated[str, _one_of(BASE_MODELS)] = _var("BASE_MODEL", BASE_MODELS[0])
    training_job_prefix: Annotated[
        str,
        _check(
            lambda value: TRAINING_JOB_PREFIX_PATTERN.match(value) is not None,
            "must be 1-40 lower-case letters, digits or hyphens",
        ),
    ] = _var("TRAINING_JOB_PREFIX", "textclf")
    dataset_pointer_key: S3Key = _var("DATASET_POINTER_KEY", "datasets/latest.json")
    source_bundle_key: S3Key = _var("SOURCE_BUNDLE_KEY", "code/sourcedir.tar.gz")
    training_output_prefix: S3Prefix = _var("TRAINING_OUTPUT_PREFIX", "training-output")
    checkpoint_prefix: S3Prefix = _var("CHECKPOINT_PREFIX", "checkpoints")
    training_max_runtime_seconds: Annotated[int, _between(60, MAX_TRAINING_SECONDS)] = _var(
        "TRAINING_MAX_RUNTIME_SECONDS", 4 * 3600
    )
    # A spot job's MaxWaitTime must cover its MaxRuntime (_at_least_its_floor); by default twice it.
    training_max_wait_seconds: Annotated[int, _between(60, MAX_TRAINING_SECONDS)] = Field(
        alias="TRAINING_MAX_WAIT_SECONDS",
        default_factory=lambda data: 2 * data.get("training_max_runtime_seconds", 0),
    )
    training_volume_size_gb: Annotated[int, _between(1, 16384)] = _var("TRAINING_VOLUME_SIZE_GB", 30)
    retry_after_seconds: Annotated[int, _between(1, 3600)] = _var("RETRY_AFTER_SECONDS", 30)
    #: GET /health reuses its last DescribeEndpoint answer this long (0: ask every time).
    health_cache_seconds: Annotated[int, _between(0, 300)] = _var("HEALTH_CACHE_SECONDS", 5)
    # The gated deploy loop (logic/deployment.py).
    model_package_group: str | None = _var("MODEL_PACKAGE_GROUP")
    deployments_table: str | None = _var("DEPLOYMENTS_TABLE")
    idempotency_table: str | None = _var("IDEMPOTENCY_TABLE")
    #: The HF inference DLC: serverless endpoints, InferenceServer=dlc, the fallback while the
    #: stack's repository holds no textclf image, and the image model packages record.
    inference_image_uri: str | None = _var("INFERENCE_IMAGE_URI")
    #: Which server real-time endpoints run (logic/inference_image.py picks the image at rollout):
    #: textclf's image from INFERENCE_SERVER_IMAGE_URI as given, else the newest image in the
    #: stack's INFERENCE_REPOSITORY_URI, pinned by digest.
    inference_server: Annotated[str, _one_of(INFERENCE_SERVERS)] = _var(
        "INFERENCE_SERVER", DEFAULT_INFERENCE_SERVER
    )
    inference_server_image_uri: str | None = _var("INFERENCE_SERVER_IMAGE_URI")
    inference_repository_uri: str | None = _var("INFERENCE_REPOSITORY_URI")
    gate_min_accuracy: Fraction = _var("GATE_MIN_ACCURACY", 0.85)
    gate_max_drop: Fraction = _var("GATE_MAX_DROP", 0.005)
    endpoint_type: Annotated[str, _one_of(ENDPOINT_TYPES)] = _var("ENDPOINT_TYPE", "RealTime")
    endpoint_instance_type: str = _var("ENDPOINT_INSTANCE_TYPE", "ml.m5.large")
    endpoint_min_instances: Annotated[int, _between(1, MAX_ENDPOINT_INSTANCES)] = _var(
        "ENDPOINT_MIN_INSTANCES", 1
    )
    # At least the minimum (_at_least_its_floor); by default equal to it.
    endpoint_max_instances: Annotated[int, _between(1, MAX_ENDPOINT_INSTANCES)] = Field(
        alias="ENDPOINT_MAX_INSTANCES", default_factory=lambda data: data.get("endpoint_min_instances", 1)
    )
    autoscaling_target_invocations: Annotated[int, _between(1, 1_000_000)] = _var(
        "AUTOSCALING_TARGET_INVOCATIONS", 1000
    )
    # SageMaker serverless: 1024-6144 MB in 1 GB steps, concurrency 1-200.
    serverless_memory_mb: Annotated[int, _between(1024, 6144)] = _var("SERVERLESS_MEMORY_MB", 3072)
    serverless_max_concurrency: Annotated[int, _between(1, 200)] = _var("SERVERLESS_MAX_CONCURRENCY", 10)
    #: Comma-separated CloudWatch alarm names in the environment.
    rollback_alarms: Annotated[tuple[str, ...], BeforeValidator(_split_list)] = _var("ROLLBACK_ALARMS", ())
    canary_wait_seconds: Annotated[int, _between(0, 3600)] = _var("CANARY_WAIT_SECONDS", 300)
    #: Share of a real-time endpoint's invocations its data capture records (0: no capture).
    capture_sampling_percent: Annotated[int, _between(0, 100)] = _var("CAPTURE_SAMPLING_PERCENT", 100)
    #: POST /feedback: the authority that admits labellers, and with API_KEY the ids of the keys
    #: that are labellers' (API Gateway accepts a key of any usage plan on the stage).
    feedback_auth: Annotated[str, _one_of(FEEDBACK_AUTHS)] = _var("FEEDBACK_AUTH", "AWS_IAM")
    labeller_api_key_ids: Annotated[tuple[str, ...], BeforeValidator(_split_list)] = _var(
        "LABELLER_API_KEY_IDS", ()
    )
    #: How long a warm feedback function reuses the served label set it read (0: read every time).
    served_labels_cache_seconds: Annotated[int, _between(0, 300)] = _var("SERVED_LABELS_CACHE_SECONDS", 30)
    #: Per-labeller, per-UTC-day cap on feedback items, counted in FEEDBACK_COUNTS_TABLE.
    feedback_counts_table: str | None = _var("FEEDBACK_COUNTS_TABLE")
    feedback_daily_cap: Annotated[int, _between(1, 10_000_000)] = _var("FEEDBACK_DAILY_CAP", 5000)
    # Retraining on feedback (logic/feedback_sets.py): one labeller's largest share of the new
    # rows, the newest share held out as the recent window, and the labellers whose recent rows
    # form the gate's trusted slice.
    feedback_max_share: Fraction = _var("FEEDBACK_MAX_SHARE", 0.5)
    recent_holdout: Fraction = _var("RECENT_HOLDOUT", 0.2)
    trusted_labellers: Annotated[tuple[str, ...], BeforeValidator(_split_list)] = _var(
        "TRUSTED_LABELLERS", ()
    )
    #: A retrain's POST /train body (JSON); unset: the serving model's job's recipe.
    retrain_request: str | None = _var("RETRAIN_REQUEST")
    #: The monitor (logic/monitor.py): the stack it publishes metrics for (its alarms are named
    #: ``<stack>-drift`` and so on), the window each run
    #: reads, how far back a window's labels may find their predictions, and the joined labels a
    #: window needs before its live accuracy is published (the accuracy alarm's floor).
    stack_name: str = _var("STACK_NAME", "textclf")
    monitor_window_minutes: Annotated[int, _between(1, 7 * 24 * 60)] = _var("MONITOR_WINDOW_MINUTES", 60)
    monitor_lookback_hours: Annotated[int, _between(0, 30 * 24)] = _var("MONITOR_LOOKBACK_HOURS", 24)
    monitor_min_labels: Annotated[int, _between(1, 1_000_000)] = _var("MONITOR_MIN_LABELS", 200)
    max_concurrent_training_jobs: Annotated[int, _between(1, 100)] = _var("MAX_CONCURRENT_TRAINING_JOBS", 2)
    max_training_instance_count: Annotated[int, _between(1, MAX_TRAINING_INSTANCE_COUNT)] = _var(
        "MAX_TRAINING_INSTANCE_COUNT", 1
    )
    max_batch_instance_count: Annotated[int, _between(1, MAX_BATCH_INSTANCE_COUNT)] = _var(
        "MAX_BATCH_INSTANCE_COUNT", 1
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings ``env`` (default ``os.environ``) describes; blank variables are unset."""
        env = os.environ if env is None else env
        names = {field.alias for field in cls.model_fields.values()}
        values = {name: value.strip() for name, value in env.items() if name in names and value.strip()}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            # A field whose default depends on an invalid one reports that too; name only the cause.
            errors = [e for e in exc.errors() if e["type"] != "default_factory_not_called"]
            raise ConfigurationError("; ".join(_describe(error) for error in errors)) from None

    @field_validator("training_max_wait_seconds", "endpoint_max_instances")
    @classmethod
    def _at_least_its_floor(cls, value: int, info: ValidationInfo) -> int:
        floor_field, high = _FLOORS[str(info.field_name)]
        floor = info.data.get(floor_field)  # absent when that field was invalid itself
        if floor is not None and value < floor:
            alias = cls.model_fields[floor_field].alias
            raise ValueError(f"is outside {floor}..{high} (it may not be below {alias})")
        return value

    def require(self, attribute: str) -> str:
        """The value of a setting a route cannot work without; a clear 503 when it is unset."""
        value = getattr(self, attribute)
        if not value:
            raise ConfigurationError(f"environment variable {attribute.upper()} is not set")
        return str(value)


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as the operator should read it: the variable, its value, the problem."""
    name = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind.startswith("int_"):
        problem = "is not an integer"
    elif kind.startswith("float_"):
        problem = "is not a number"
    elif kind == "value_error":
        problem = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        problem = error["msg"]
    return f"environment variable {name}={error['input']!r} {problem}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
