"""The one module that talks to boto3: clients with bounded time, and AWS errors mapped to API errors.

API Gateway gives a REST integration 29 s. Each client therefore has explicit connect/read timeouts
and at most one retry (botocore "standard" mode, jittered backoff below 1 s for the first retry),
so the worst case of every call is known in advance (``Budget.worst_case_seconds``) and the functions'
timeouts in ``template.yaml`` are set above the sum of their calls' budgets (a test checks that).
boto3 reads ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` / ``AWS_ENDPOINT_URL_SAGEMAKER`` /
``AWS_ENDPOINT_URL_S3`` itself, which is how the local stack points these clients at its servers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from textclf_api.errors import ApiError, ServiceUnavailableError, UpstreamError, UpstreamTimeoutError

if TYPE_CHECKING:  # the stubs are a dev dependency; the Lambda runtime never imports them
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient


@dataclass(frozen=True)
class Budget:
    connect_timeout: float
    read_timeout: float
    max_attempts: int

    def config(self) -> Config:
        return Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            tcp_keepalive=True,
            user_agent_extra="textclf-api",
        )

    def worst_case_seconds(self) -> float:
        # Every attempt may spend the full connect + read timeouts; standard-mode backoff before
        # retry n is at most 2**(n-1) s (random jitter times an exponential base).
        backoff = sum(2 ** (n - 1) for n in range(1, self.max_attempts))
        return self.max_attempts * (self.connect_timeout + self.read_timeout) + backoff


# Inference: a batch of 64 headlines takes well under a second on the endpoint; 9 s leaves room for
# a cold serverless endpoint without letting two attempts (21 s) reach API Gateway's 29 s.
RUNTIME_BUDGET: Final = Budget(connect_timeout=1.0, read_timeout=9.0, max_attempts=2)
# Control plane (DescribeEndpoint, Create/DescribeTrainingJob): answers in well under a second.
SAGEMAKER_BUDGET: Final = Budget(connect_timeout=1.0, read_timeout=3.0, max_attempts=2)
# S3: a tiny JSON pointer and a HEAD request. One attempt: POST /train makes six calls inside API
# Gateway's 29 s, and a client retrying with its Idempotency-Key is safe.
S3_BUDGET: Final = Budget(connect_timeout=1.0, read_timeout=2.0, max_attempts=1)
# A read whose failure only means "try again": ListTrainingJobs for the running-job cap.
QUICK_BUDGET: Final = Budget(connect_timeout=1.0, read_timeout=2.0, max_attempts=1)


@lru_cache(maxsize=1)
def _session() -> boto3.session.Session:
    # One session per process: it caches the loaded service models, so clients are cheap to remake.
    return boto3.session.Session()


# Clients are made on first use (not at import) and reused across warm invocations.
@lru_cache(maxsize=1)
def sagemaker_runtime() -> SageMakerRuntimeClient:
    return _session().client("sagemaker-runtime", config=RUNTIME_BUDGET.config())


@lru_cache(maxsize=1)
def sagemaker() -> SageMakerClient:
    return _session().client("sagemaker", config=SAGEMAKER_BUDGET.config())


@lru_cache(maxsize=1)
def sagemaker_quick() -> SageMakerClient:
    return _session().client("sagemaker", config=QUICK_BUDGET.config())


@lru_cache(maxsize=1)
def s3() -> S3Client:
    return _session().client("s3", config=S3_BUDGET.config())


# Model archives (hundreds of MB) read once by the deploy function to hash them: a socket read may
# wait longer than for a pointer, and the asynchronous function can afford a retry.
ARTIFACT_BUDGET: Final = Budget(connect_timeout=2.0, read_timeout=20.0, max_attempts=2)


@lru_cache(maxsize=1)
def artifact_s3() -> S3Client:
    return _session().client("s3", config=ARTIFACT_BUDGET.config())


# DynamoDB: single-item reads and conditional writes (deployment records, idempotency keys); one
# attempt for the same reason as S3.
DYNAMODB_BUDGET: Final = Budget(connect_timeout=1.0, read_timeout=2.0, max_attempts=1)


@lru_cache(maxsize=1)
def dynamodb() -> Any:
    return _session().client("dynamodb", config=DYNAMODB_BUDGET.config())


@lru_cache(maxsize=1)
def autoscaling() -> Any:
    return _session().client("application-autoscaling", config=SAGEMAKER_BUDGET.config())


@lru_cache(maxsize=1)
def cloudwatch() -> Any:
    # The monitor's PutMetricData (one call per run), with the control plane's budget.
    return _session().client("cloudwatch", config=SAGEMAKER_BUDGET.config())


@lru_cache(maxsize=1)
def ecr() -> Any:
    # DescribeImages of the stack's inference-image repository, once per rollout.
    return _session().client("ecr", config=SAGEMAKER_BUDGET.config())


def reset_clients(*, session: bool = False) -> None:
    """Forget cached clients (and with ``session``, the session and its credentials/config too).

    For tests and for the local stack after it changes endpoint URLs or credentials.
    """
    for factory in (
        sagemaker_runtime,
        sagemaker,
        sagemaker_quick,
        s3,
        artifact_s3,
        dynamodb,
        autoscaling,
        cloudwatch,
        ecr,
    ):
        factory.cache_clear()
    if session:
        _session.cache_clear()


# Error codes AWS uses for "slow down" across services; all mean: retry later.
THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        # DynamoDB's answer when a table's (or an on-demand table's burst) capacity is exceeded.
        "ProvisionedThroughputExceededException",
    }
)
UNAVAILABLE_CODES: Final = frozenset({"ServiceUnavailable", "ServiceUnavailableException"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def translate(exc: Exception, what: str, retry_after: int) -> ApiError:
    """Default mapping of a boto3 failure while doing ``what`` (e.g. "the model endpoint").

    Callers first handle the codes that mean something specific to their call (a missing endpoint,
    an unknown training job) and hand everything else here. Messages are fixed per kind: AWS's own
    text names accounts, ARNs and roles, so it goes to the log (``render_error`` logs the cause
    beside the request id the client sees), never into the response. Timeouts are checked before
    connection errors because ConnectTimeoutError is a subclass of EndpointConnectionError's base.
    A connection cut mid-reply (ResponseStreamingError: the headers came, the body did not) is the
    same transient failure as one closed before the reply, so both are a 503 the client may retry.
    """
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return UpstreamTimeoutError(f"{what} did not answer in time; try again")
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ResponseStreamingError):
        return ServiceUnavailableError(
            f"could not connect to {what}; try again later", retry_after=retry_after
        )
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in THROTTLING_CODES or http_status(exc) == 429:
            return ServiceUnavailableError(
                f"{what} is throttling requests; try again later", retry_after=retry_after
            )
        if code in UNAVAILABLE_CODES or http_status(exc) == 503:
            return ServiceUnavailableError(f"{what} is unavailable; try again later", retry_after=retry_after)
        if code in ACCESS_DENIED_CODES:
            return UpstreamError(f"{what} refused this function's credentials; an operator must fix its role")
    return UpstreamError(f"{what} failed; the request id above finds the cause in the function's log")


ACCESS_DENIED_CODES: Final = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def describe_failure(exc: BaseException | None) -> str | None:
    """What the log keeps of a failure the client saw only a fixed message for."""
    if exc is None:
        return None
    if isinstance(exc, ClientError):
        original = exc.response.get("OriginalMessage")  # a model container's own text (ModelError)
        return f"{error_code(exc)}: {error_message(exc)}" + (f" | model: {original}" if original else "")
    return f"{type(exc).__name__}: {exc}"


def response_body(response: dict[str, Any] | Any) -> bytes:
    """Read an InvokeEndpoint ``Body`` stream fully (botocore's StreamingBody)."""
    body = response["Body"]
    data: bytes = body.read()
    return data
