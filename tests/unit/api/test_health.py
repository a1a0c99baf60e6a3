"""GET /health: 200 only when the endpoint is InService, 503 (same shape) otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from textclf_api import aws
from textclf_api.handlers import health as health_handler
from textclf_api.logic.health import check_health

from .conftest import ENDPOINT, REGION, ROLE_ARN, ApiResponse

Invoke = Callable[..., ApiResponse]


def create_endpoint(
    name: str = ENDPOINT, config: str | None = None, environment: dict[str, str] | None = None
) -> None:
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={
            "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/x:1",
            "ModelDataUrl": "s3://b/m",
            "Environment": environment or {},
        },
    )
    config = config or f"{name}-config"
    sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=config)


def test_in_service_endpoint_is_ok(moto: None, invoke: Invoke) -> None:
    create_endpoint()
    response = invoke(health_handler, "health")
    assert response.status == 200
    # Deployed by hand without TEXTCLF_MODEL_VERSION on its Model: nothing names a version.
    assert response.body == {
        "status": "ok",
        "endpoint": {"name": ENDPOINT, "status": "InService"},
        "model_version": None,
    }
    assert "retry-after" not in response.headers


def test_health_reports_the_version_the_deploy_loop_rolled_out(moto: None, invoke: Invoke) -> None:
    create_endpoint(config=f"{ENDPOINT}-v7-20250101-120000")
    response = invoke(health_handler, "health")
    assert (response.status, response.body["model_version"]) == (200, "7")


def test_health_reports_the_version_a_hand_deployed_model_answers_as(moto: None, invoke: Invoke) -> None:
    # The variable inference.py reports as model_version in every prediction.
    create_endpoint(environment={"TEXTCLF_MODEL_VERSION": "sha256:0123456789ab"})
    response = invoke(health_handler, "health")
    assert (response.status, response.body["model_version"]) == (200, "sha256:0123456789ab")


def test_a_version_that_cannot_be_read_leaves_health_as_it_is(
    moto: None, invoke: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    create_endpoint(environment={"TEXTCLF_MODEL_VERSION": "sha256:0123456789ab"})
    boto3.client("sagemaker", region_name=REGION).delete_model(ModelName=f"{ENDPOINT}-model")
    response = invoke(health_handler, "health")
    assert (response.status, response.body["model_version"]) == (200, None)
    assert any(r.getMessage() == "reading the served model's version failed" for r in caplog.records)


def test_missing_endpoint_is_503_not_found(moto: None, invoke: Invoke) -> None:
    create_endpoint("some-other-endpoint")
    response = invoke(health_handler, "health")
    assert response.status == 503
    assert response.body == {
        "status": "unavailable",
        "endpoint": {"name": ENDPOINT, "status": "NotFound"},
        "model_version": None,
    }
    assert response.headers["retry-after"] == "30"


def describe_reply(status: str) -> dict[str, Any]:
    return {
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
        "EndpointConfigName": "cfg",
        "EndpointStatus": status,
        "CreationTime": "2025-01-01T00:00:00Z",
        "LastModifiedTime": "2025-01-01T00:00:00Z",
    }


@pytest.mark.parametrize(
    "status", ["Creating", "Updating", "SystemUpdating", "RollingBack", "OutOfService", "Deleting", "Failed"]
)
def test_endpoint_not_in_service_is_503(status: str, invoke: Invoke) -> None:
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_response("describe_endpoint", describe_reply(status), {"EndpointName": ENDPOINT})
        response = invoke(health_handler, "health")
    assert response.status == 503
    assert response.body == {
        "status": "unavailable",
        "endpoint": {"name": ENDPOINT, "status": status},
        "model_version": None,
    }
    assert response.headers["retry-after"] == "30"


@pytest.mark.parametrize(
    ("code", "message", "state"),
    [
        # How SageMaker, its older API versions and the local stack say "no such endpoint".
        ("ValidationException", 'Could not find endpoint "arn:...:endpoint/textclf-test".', "NotFound"),
        ("ValidationError", "Endpoint textclf-test of account 123456789012 not found.", "NotFound"),
        ("ResourceNotFound", "Endpoint not found", "NotFound"),
        # A validation error about something else is not a missing endpoint.
        ("ValidationException", "1 validation error detected: Value at 'endpointName'", "Unknown"),
        ("AccessDeniedException", "not found in policy", "Unknown"),
    ],
)
def test_missing_endpoint_codes_and_other_errors(
    code: str, message: str, state: str, invoke: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_client_error("describe_endpoint", code, message, 400)
        response = invoke(health_handler, "health")
    assert (response.status, response.body["endpoint"]["status"]) == (503, state)
    # Only a failure to ask SageMaker is worth a warning; a missing endpoint is a state.
    warned = any(r.getMessage() == "DescribeEndpoint failed" for r in caplog.records)
    assert warned == (state == "Unknown")


def test_throttled_describe_is_503_unknown(invoke: Invoke) -> None:
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_client_error("describe_endpoint", "ThrottlingException", "Rate exceeded", 400)
        response = invoke(health_handler, "health")
    assert response.status == 503
    assert response.body["endpoint"] == {"name": ENDPOINT, "status": "Unknown"}


def test_timed_out_describe_is_503_unknown(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def timeout(**kwargs: Any) -> Any:
        raise ReadTimeoutError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com")

    monkeypatch.setattr(aws.sagemaker(), "describe_endpoint", timeout)
    response = invoke(health_handler, "health")
    assert response.status == 503
    assert response.body["endpoint"]["status"] == "Unknown"


def test_health_metric_reports_in_service(
    moto: None, invoke: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    create_endpoint()
    capsys.readouterr()
    invoke(health_handler, "health")
    assert '"EndpointInService":[1.0]' in capsys.readouterr().out


def test_check_health_is_a_plain_function(moto: None) -> None:
    create_endpoint()
    assert check_health().status == "ok"


def test_a_public_health_check_is_not_one_describe_per_request(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def describe(EndpointName: str) -> dict[str, Any]:  # noqa: N803 - boto3's keyword
        calls.append(EndpointName)
        return {"EndpointStatus": "InService", "EndpointConfigName": f"{ENDPOINT}-v3-20250101-120000"}

    monkeypatch.setattr(aws.sagemaker(), "describe_endpoint", describe)
    answers = [invoke(health_handler, "health") for _ in range(20)]
    assert [(a.status, a.body["model_version"]) for a in answers] == [(200, "3")] * 20
    assert calls == [ENDPOINT]  # one look, reused for HEALTH_CACHE_SECONDS


def test_the_health_cache_expires(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    from textclf_api.logic import health as logic

    states = iter(["InService", "Updating"])
    monkeypatch.setattr(aws.sagemaker(), "describe_endpoint", lambda **_: {"EndpointStatus": next(states)})
    clock = [100.0]
    monkeypatch.setattr(logic.time, "monotonic", lambda: clock[0])
    assert invoke(health_handler, "health").status == 200
    clock[0] += 4.9
    assert invoke(health_handler, "health").status == 200  # still the cached answer
    clock[0] += 0.2
    assert invoke(health_handler, "health").status == 503  # asked again after 5 s
