"""Environment configuration of the Lambda functions: the one place that reads ``os.environ``.

``template.yaml`` sets every variable; the local stack (``textclf serve``) and the tests set them
too. Values are read once per process (``get_settings`` is cached) -- call
``get_settings.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from textclf_api.errors import ConfigurationError
from textclf_api.schemas import (
    BASE_MODELS,
    GPU_INSTANCE_TYPES,
    MAX_BATCH_INSTANCE_COUNT,
    MAX_TRAINING_INSTANCE_COUNT,
)

# Job names are "<prefix>-<YYYYmmdd-HHMMSS>-<6 hex>" (23 characters after the prefix) and SageMaker
# allows 63, so the prefix may use 40. Lower case because SageMaker lower-cases names in ARNs, and
# the trigger function's IAM policy matches the ARN "training-job/<prefix>-*".
TRAINING_JOB_PREFIX_PATTERN: Final = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,39}$")
#: The template's EndpointType values: a real-time endpoint on instances, or serverless inference.
ENDPOINT_TYPES: Final = ("RealTime", "Serverless")


@dataclass(frozen=True)
class Settings:
    endpoint_name: str | None
    bucket_name: str | None
    sagemaker_role_arn: str | None
    training_image_uri: str | None
    training_instance_type: str
    base_model: str
    training_job_prefix: str
    dataset_pointer_key: str
    source_bundle_key: str
    training_output_prefix: str
    checkpoint_prefix: str
    training_max_runtime_seconds: int
    training_max_wait_seconds: int
    training_volume_size_gb: int
    retry_after_seconds: int
    #: GET /health reuses its last DescribeEndpoint answer this long (0: ask every time).
    health_cache_seconds: int = 5
    # The gated deploy loop (logic/deployment.py).
    model_package_group: str | None = None
    deployments_table: str | None = None
    idempotency_table: str | None = None
    inference_image_uri: str | None = None
    gate_min_accuracy: float = 0.85
    gate_max_drop: float = 0.005
    endpoint_type: str = "RealTime"
    endpoint_instance_type: str = "ml.m5.large"
    endpoint_min_instances: int = 1
    endpoint_max_instances: int = 1
    autoscaling_target_invocations: int = 1000
    serverless_memory_mb: int = 3072
    serverless_max_concurrency: int = 10
    rollback_alarms: tuple[str, ...] = ()
    canary_wait_seconds: int = 300
    max_concurrent_training_jobs: int = 2
    max_training_instance_count: int = 1
    max_batch_instance_count: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def text(name: str, default: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigurationError(f"environment variable {name}={raw!r} is not an integer") from None
            if not low <= value <= high:
                raise ConfigurationError(f"environment variable {name}={value} is outside {low}..{high}")
            return value

        instance_type = text("TRAINING_INSTANCE_TYPE", "ml.g5.xlarge") or ""
        if instance_type not in GPU_INSTANCE_TYPES:
            raise ConfigurationError(
                f"TRAINING_INSTANCE_TYPE={instance_type!r} is not one of {', '.join(GPU_INSTANCE_TYPES)}"
            )
        base_model = text("BASE_MODEL", BASE_MODELS[0]) or ""
        if base_model not in BASE_MODELS:
            raise ConfigurationError(f"BASE_MODEL={base_model!r} is not one of {', '.join(BASE_MODELS)}")
        prefix = text("TRAINING_JOB_PREFIX", "textclf") or ""
        if not TRAINING_JOB_PREFIX_PATTERN.match(prefix):
            raise ConfigurationError(
                f"TRAINING_JOB_PREFIX={prefix!r} must be 1-40 lower-case letters, digits or hyphens"
            )

        def fraction(name: str, default: float) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigurationError(f"environment variable {name}={raw!r} is not a number") from None
            if not 0.0 <= value <= 1.0:
                raise ConfigurationError(f"environment variable {name}={value} is outside 0..1 (a fraction)")
            return value

        endpoint_type = text("ENDPOINT_TYPE", "RealTime") or ""
        if endpoint_type not in ENDPOINT_TYPES:
            raise ConfigurationError(
                f"ENDPOINT_TYPE={endpoint_type!r} is not one of {', '.join(ENDPOINT_TYPES)}"
            )
        min_instances = integer("ENDPOINT_MIN_INSTANCES", 1, 1, 100)
        # SageMaker: MaxRuntimeInSeconds up to 28 days; spot MaxWaitTime must be >= MaxRuntime.
        max_runtime = integer("TRAINING_MAX_RUNTIME_SECONDS", 4 * 3600, 60, 28 * 24 * 3600)
        max_wait = integer("TRAINING_MAX_WAIT_SECONDS", 2 * max_runtime, max_runtime, 28 * 24 * 3600)
        return cls(
            endpoint_name=text("ENDPOINT_NAME"),
            bucket_name=text("BUCKET_NAME"),
            sagemaker_role_arn=text("SAGEMAKER_ROLE_ARN"),
            training_image_uri=text("TRAINING_IMAGE_URI"),
            training_instance_type=instance_type,
            base_model=base_model,
            training_job_prefix=prefix,
            dataset_pointer_key=(text("DATASET_POINTER_KEY", "datasets/latest.json") or "").lstrip("/"),
            source_bundle_key=(text("SOURCE_BUNDLE_KEY", "code/sourcedir.tar.gz") or "").lstrip("/"),
            training_output_prefix=(text("TRAINING_OUTPUT_PREFIX", "training-output") or "").strip("/"),
            checkpoint_prefix=(text("CHECKPOINT_PREFIX", "checkpoints") or "").strip("/"),
            training_max_runtime_seconds=max_runtime,
            training_max_wait_seconds=max_wait,
            training_volume_size_gb=integer("TRAINING_VOLUME_SIZE_GB", 30, 1, 16384),
            retry_after_seconds=integer("RETRY_AFTER_SECONDS", 30, 1, 3600),
            health_cache_seconds=integer("HEALTH_CACHE_SECONDS", 5, 0, 300),
            model_package_group=text("MODEL_PACKAGE_GROUP"),
            deployments_table=text("DEPLOYMENTS_TABLE"),
            idempotency_table=text("IDEMPOTENCY_TABLE"),
            inference_image_uri=text("INFERENCE_IMAGE_URI"),
            gate_min_accuracy=fraction("GATE_MIN_ACCURACY", 0.85),
            gate_max_drop=fraction("GATE_MAX_DROP", 0.005),
            endpoint_type=endpoint_type,
            endpoint_instance_type=text("ENDPOINT_INSTANCE_TYPE", "ml.m5.large") or "",
            endpoint_min_instances=min_instances,
            endpoint_max_instances=integer("ENDPOINT_MAX_INSTANCES", min_instances, min_instances, 100),
            autoscaling_target_invocations=integer("AUTOSCALING_TARGET_INVOCATIONS", 1000, 1, 1_000_000),
            # SageMaker serverless: 1024-6144 MB in 1 GB steps, concurrency 1-200.
            serverless_memory_mb=integer("SERVERLESS_MEMORY_MB", 3072, 1024, 6144),
            serverless_max_concurrency=integer("SERVERLESS_MAX_CONCURRENCY", 10, 1, 200),
            rollback_alarms=tuple(a.strip() for a in (text("ROLLBACK_ALARMS") or "").split(",") if a.strip()),
            canary_wait_seconds=integer("CANARY_WAIT_SECONDS", 300, 0, 3600),
            max_concurrent_training_jobs=integer("MAX_CONCURRENT_TRAINING_JOBS", 2, 1, 100),
            max_training_instance_count=integer(
                "MAX_TRAINING_INSTANCE_COUNT", 1, 1, MAX_TRAINING_INSTANCE_COUNT
            ),
            max_batch_instance_count=integer("MAX_BATCH_INSTANCE_COUNT", 1, 1, MAX_BATCH_INSTANCE_COUNT),
        )

    def require(self, attribute: str) -> str:
        """The value of a setting a route cannot work without; a clear 503 when it is unset."""
        value = getattr(self, attribute)
        if not value:
            raise ConfigurationError(f"environment variable {attribute.upper()} is not set")
        return str(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
