"""Fixtures for the API tests: environment, moto, the events/ files and a handler driver."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws
from textclf_api import aws
from textclf_api.handlers.observability import logger
from textclf_api.logic import feedback, health
from textclf_api.schemas import SERVING_LABELS_KEY
from textclf_api.settings import get_settings

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"
REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "textclf-test-artifacts"
ENDPOINT = "textclf-test"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/textclf-sagemaker"
IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:"
    "2.9.0-transformers5.3.0-gpu-py312-cu130-ubuntu22.04"
)
DATASET_URI = f"s3://{BUCKET}/datasets/0123456789ab/"
#: serving/labels.json as the deploy function writes it for the news model, version 3.
SERVING_LABELS = {
    "endpoint_config": f"{ENDPOINT}-v3-20250101-120000",
    "model_version": "3",
    "model_data": f"s3://{BUCKET}/models/0123456789abcdef/model.tar.gz",
    "labels": ["business", "science_and_technology", "entertainment", "health"],
    "published_at": "2025-01-01T12:00:00+00:00",
}


@dataclass
class FakeLambdaContext:
    function_name: str = "textclf-test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:textclf-test-function"
    aws_request_id: str = "6f6c2f0e-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/textclf-test-function"
    log_stream_name: str = "2025/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: Any
    raw: dict[str, Any]


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def with_body(event: dict[str, Any], body: Any) -> dict[str, Any]:
    """A copy of ``event`` with ``body`` (JSON-encoded unless it is a str or None)."""
    event = json.loads(json.dumps(event))
    event["body"] = body if body is None or isinstance(body, str) else json.dumps(body)
    return event


@pytest.fixture(autouse=True)
def api_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment template.yaml gives the functions, with fake credentials."""
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_SAGEMAKER",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_SERVICE_NAME": "textclf-api",
        "POWERTOOLS_METRICS_NAMESPACE": "textclf",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "ENDPOINT_NAME": ENDPOINT,
        "BUCKET_NAME": BUCKET,
        "SAGEMAKER_ROLE_ARN": ROLE_ARN,
        "TRAINING_IMAGE_URI": IMAGE,
        "TRAINING_INSTANCE_TYPE": "ml.g5.xlarge",
        "BASE_MODEL": "distilbert-base-uncased",
        "TRAINING_JOB_PREFIX": "textclf",
        "TRAINING_MAX_RUNTIME_SECONDS": "14400",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    health.reset_cache()  # each test sees its own endpoint state
    feedback.reset_cache()  # ... and its own served label set
    yield
    get_settings.cache_clear()
    health.reset_cache()
    feedback.reset_cache()


@pytest.fixture
def moto() -> Iterator[None]:
    # The functions' cached clients are reused across tests (making one costs ~0.3 s): moto hooks
    # botocore itself, so a client made before the mock started is served by it all the same.
    with mock_aws():
        yield


@pytest.fixture
def invoke() -> Callable[..., ApiResponse]:
    """Drive a handler module's ``lambda_handler`` with an event (dict or events/ file name)."""

    def _invoke(module: ModuleType, event: dict[str, Any] | str) -> ApiResponse:
        if isinstance(event, str):
            event = load_event(event)
        raw = module.lambda_handler(event, FakeLambdaContext())
        assert set(raw) >= {"statusCode", "body"}, raw
        headers = {k.lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
        for key, values in (raw.get("multiValueHeaders") or {}).items():
            headers.setdefault(key.lower(), str(values[0]))
        body = raw["body"]
        if headers.get("content-type", "").startswith("application/json") and body:
            body = json.loads(body)
        return ApiResponse(status=int(raw["statusCode"]), headers=headers, body=body, raw=raw)

    return _invoke


Logged = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Logged:
    """The functions' JSON log lines since the last call (their handler bound its stream at import)."""
    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)

    def _read() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        stream.seek(0)
        stream.truncate()
        return lines

    return _read


@pytest.fixture
def bucket(moto: None) -> Any:
    """The artifact bucket with a dataset pointer and a source bundle, as `textclf` leaves it."""
    s3 = aws.s3()
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(
        Bucket=BUCKET,
        Key="datasets/latest.json",
        Body=json.dumps({"uri": DATASET_URI, "sha256": "0" * 64, "created": "2025-01-01T00:00:00Z"}),
    )
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=b"\x1f\x8b fake tarball")
    # What the deploy function records once a model serves (POST /feedback checks labels with it).
    s3.put_object(Bucket=BUCKET, Key=SERVING_LABELS_KEY, Body=json.dumps(SERVING_LABELS))
    return s3


class CallRecorder:
    """Records the parameters of every ``operation`` call made with ``client`` (before it is sent)."""

    def __init__(self, client: Any, operation: str) -> None:
        self.calls: list[dict[str, Any]] = []
        service = client.meta.service_model.service_id.hyphenize()
        self._events = client.meta.events
        self._name = f"provide-client-params.{service}.{operation}"
        self._events.register(self._name, self._capture)

    def _capture(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls.append(json.loads(json.dumps(params, default=_jsonable)))

    def close(self) -> None:
        self._events.unregister(self._name, self._capture)


def _jsonable(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture
def record() -> Iterator[Callable[[Any, str], list[dict[str, Any]]]]:
    """``record(client, "CreateTrainingJob")`` -> the list its calls are appended to (until teardown)."""
    recorders: list[CallRecorder] = []

    def _record(client: Any, operation: str) -> list[dict[str, Any]]:
        recorders.append(CallRecorder(client, operation))
        return recorders[-1].calls

    yield _record
    for recorder in recorders:
        recorder.close()
