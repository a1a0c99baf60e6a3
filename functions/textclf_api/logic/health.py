"""Endpoint health: is the SageMaker endpoint InService?"""

from __future__ import annotations

import time

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from textclf_api import aws
from textclf_api.logic.deploy_records import MODEL_VERSION_ENV, version_of
from textclf_api.schemas import EndpointHealth, HealthResponse
from textclf_api.settings import Settings, get_settings

IN_SERVICE = "InService"
NOT_FOUND = "NotFound"
UNKNOWN = "Unknown"

logger = Logger(child=True)

# GET /health is public: an anonymous caller must not turn each request into a DescribeEndpoint
# (SageMaker throttles control-plane calls per account). A warm function answers from its last
# look for ``health_cache_seconds``.
_cache: dict[str, tuple[float, HealthResponse]] = {}


def reset_cache() -> None:
    _cache.clear()


def check_health(settings: Settings | None = None) -> HealthResponse:
    """:func:`describe_health`, reused for ``health_cache_seconds``."""
    settings = settings or get_settings()
    name = settings.require("endpoint_name")
    now = time.monotonic()
    cached = _cache.get(name)
    if cached is not None and cached[0] > now:
        return cached[1]
    health = describe_health(settings)
    if settings.health_cache_seconds:
        _cache[name] = (now + settings.health_cache_seconds, health)
    return health


def describe_health(settings: Settings) -> HealthResponse:
    """``ok`` only when the endpoint is InService; any other state, or no answer, is ``unavailable``.

    It never raises for SageMaker failures: a health check that cannot ask SageMaker reports the
    endpoint as ``Unknown`` (503) -- a load balancer or monitor wants a status, not an error page.
    """
    name = settings.require("endpoint_name")
    version = None
    try:
        desc = aws.sagemaker().describe_endpoint(EndpointName=name)
        state = str(desc["EndpointStatus"])
        config = desc.get("EndpointConfigName")
    except ClientError as exc:
        missing = aws.error_code(exc) in {"ValidationException", "ValidationError", "ResourceNotFound"} and (
            "not find" in aws.error_message(exc).lower() or "not found" in aws.error_message(exc).lower()
        )
        state = NOT_FOUND if missing else UNKNOWN
        if not missing:
            logger.warning("DescribeEndpoint failed", error_code=aws.error_code(exc), endpoint=name)
    except Exception as exc:  # timeouts, connection errors: SageMaker could not be asked
        logger.warning("DescribeEndpoint failed", error=repr(exc), endpoint=name)
        state = UNKNOWN
    else:
        version = served_version(config)
    return HealthResponse(
        status="ok" if state == IN_SERVICE else "unavailable",
        endpoint=EndpointHealth(name=name, status=state),
        model_version=version,
    )


def served_version(config: str | None) -> str | None:
    """The version the endpoint's model answers as (the ``model_version`` of every prediction).

    Rollouts of the deploy loop name their config after the registry version (logic/deployment.py),
    so one DescribeEndpoint tells. Any other deployment (``textclf deploy``, the local stack's
    archive) is read where the model itself reads it: the Model's ``TEXTCLF_MODEL_VERSION``.
    None when neither says; a failure to look is logged, never turned into an unhealthy answer.
    """
    version = version_of(config)
    if version is not None or not config:
        return version
    sagemaker = aws.sagemaker()
    try:
        variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        model = sagemaker.describe_model(ModelName=variants[0]["ModelName"])
    except Exception as exc:  # a deleted config or model, throttling, timeouts
        logger.warning("reading the served model's version failed", error=repr(exc), config=config)
        return None
    environment = (model.get("PrimaryContainer") or {}).get("Environment") or {}
    return environment.get(MODEL_VERSION_ENV) or None
