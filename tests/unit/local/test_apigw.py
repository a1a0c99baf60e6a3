"""The API Gateway adapter: events shaped like events/*.json, routes and env from template.yaml."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from textclf_api.logic.inference_image import repository_parts

from textclf import config
from textclf.errors import UserError
from textclf.local import apigw
from textclf.local import template as tpl

EVENTS = sorted((config.REPO_ROOT / "events").glob("*.json"))
TEMPLATE = config.REPO_ROOT / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return tpl.load_template(TEMPLATE)


@pytest.fixture(scope="module")
def local() -> tpl.LocalResources:
    return tpl.LocalResources(
        region="us-east-1",
        account_id="123456789012",
        bucket_name="local-bucket",
        role_arn="arn:aws:iam::123456789012:role/local-role",
        parameters={"EndpointName": "local-endpoint"},
    )


def _keys(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a nested dict (lists and scalars are leaves)."""
    if not isinstance(value, dict):
        return set()
    out: set[str] = set()
    for key, child in value.items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        # Header and parameter maps hold request data, not structure.
        if key not in {"headers", "multiValueHeaders", "pathParameters", "queryStringParameters"}:
            out |= _keys(child, path)
    return out


def _replay(event: dict[str, Any], routes: list[tpl.Route], stage: str) -> dict[str, Any]:
    """Rebuild ``event`` from the HTTP request it describes, as the local API does."""
    found = apigw.find_route(routes, event["httpMethod"], event["path"])
    assert found is not None, f"no route for {event['httpMethod']} {event['path']}"
    route, params = found
    headers = [(k, v) for k, values in (event["multiValueHeaders"] or {}).items() for v in values]
    query = [(k, v) for k, values in (event["multiValueQueryStringParameters"] or {}).items() for v in values]
    raw = event["body"]
    body = b"" if raw is None else (base64.b64decode(raw) if event["isBase64Encoded"] else raw.encode())
    return apigw.build_event(
        route=route,
        path_parameters=params,
        method=event["httpMethod"],
        path=event["path"],
        headers=headers,
        query=query,
        body=body,
        stage=stage,
        source_ip=event["requestContext"]["identity"]["sourceIp"],
        request_id=event["requestContext"]["requestId"],
    )


@pytest.mark.parametrize("path", EVENTS, ids=[p.stem for p in EVENTS])
def test_events_are_rebuilt_with_the_same_shape_and_request_data(
    path: Path, template: dict[str, Any], local: tpl.LocalResources
) -> None:
    recorded = json.loads(path.read_text(encoding="utf-8"))
    rebuilt = _replay(recorded, tpl.routes(template), tpl.stage_name(template, local))

    assert _keys(rebuilt) == _keys(recorded)
    for key in (
        "resource",
        "path",
        "httpMethod",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "body",
        "isBase64Encoded",
    ):
        assert rebuilt[key] == recorded[key], key
    context, want = rebuilt["requestContext"], recorded["requestContext"]
    for key in ("resourcePath", "httpMethod", "path", "stage", "protocol", "requestId", "accountId"):
        assert context[key] == want[key], key
    assert context["identity"]["sourceIp"] == want["identity"]["sourceIp"]
    assert context["identity"]["userAgent"] == want["identity"]["userAgent"]


def test_routes_are_the_templates_api_events(template: dict[str, Any]) -> None:
    routes = {(r.method, r.path): r for r in tpl.routes(template)}
    assert set(routes) == {
        ("POST", "/predict"),
        ("POST", "/explain"),
        ("GET", "/health"),
        ("GET", "/"),
        ("POST", "/train"),
        ("GET", "/train/{job_name}"),
        ("POST", "/batch"),
        ("GET", "/batch/{job_name}"),
        ("POST", "/feedback"),
        ("GET", "/monitor"),
    }
    assert routes[("POST", "/feedback")].handler == "textclf_api.handlers.feedback.lambda_handler"
    assert routes[("POST", "/predict")].handler == "textclf_api.handlers.predict.lambda_handler"
    assert routes[("POST", "/explain")].function == routes[("POST", "/predict")].function
    assert routes[("GET", "/")].function == routes[("GET", "/health")].function
    assert routes[("GET", "/train/{job_name}")].function == routes[("POST", "/train")].function
    # Timeouts come from the functions (Globals otherwise) and stay under API Gateway's 29 s; the
    # monitor's 300 s are its scheduled runs' (its route reads one object).
    assert all(0 < r.timeout_s < 29 for r in routes.values() if r.function != "MonitorFunction")
    assert routes[("GET", "/monitor")].timeout_s == 300


def test_find_route_matches_path_parameters_and_refuses_other_methods(template: dict[str, Any]) -> None:
    routes = tpl.routes(template)
    found = apigw.find_route(routes, "GET", "/train/textclf-1")
    assert (
        found is not None and found[0].path == "/train/{job_name}" and found[1] == {"job_name": "textclf-1"}
    )
    assert apigw.find_route(routes, "GET", "/predict") is None
    assert apigw.find_route(routes, "GET", "/train/a/b") is None
    assert apigw.find_route(routes, "POST", "/nowhere") is None


def test_function_environment_resolves_every_reference(
    template: dict[str, Any], local: tpl.LocalResources
) -> None:
    for route in tpl.routes(template):
        env = tpl.function_environment(template, route.function, local)
        assert env["ENDPOINT_NAME"] == "local-endpoint"
        assert env["POWERTOOLS_SERVICE_NAME"]
        # A reference without a local counterpart would read "local-<LogicalId>".
        assert not [v for v in env.values() if re.search(r"local-[A-Z]", v)], env
    training = next(r.function for r in tpl.routes(template) if r.path == "/train")
    env = tpl.function_environment(template, training, local)
    assert env["BUCKET_NAME"] == "local-bucket"
    assert env["SAGEMAKER_ROLE_ARN"] == local.role_arn
    # Fn::If on a condition, Fn::Sub with a FindInMap variable: the DLC image in the region.
    assert env["TRAINING_IMAGE_URI"].startswith(
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:"
    )
    # The deploy function's repository of textclf's image: a name moto's ECR answers for.
    deploy = tpl.function_environment(template, "DeployFunction", local)
    registry, name = repository_parts(deploy["INFERENCE_REPOSITORY_URI"])
    assert (registry, name) == (local.account_id, "textclf-local-inference-repository")
    assert deploy["INFERENCE_REPOSITORY_URI"] == f"{registry}.dkr.ecr.{local.region}.amazonaws.com/{name}"


def test_proxy_results_map_to_http_like_api_gateway() -> None:
    result = {
        "statusCode": 202,
        "headers": {"Content-Type": "application/json", "Location": "/train/x"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "Location": ["/ignored"]},
        "body": '{"ok": true}',
        "isBase64Encoded": False,
    }
    response = apigw.http_response(result)
    assert response is not None
    assert response.status == 202
    assert ("Location", "/train/x") in response.headers and ("Location", "/ignored") not in response.headers
    assert [v for k, v in response.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert response.body == b'{"ok": true}'

    binary = apigw.http_response(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
    )
    assert binary is not None and binary.body == b"\x00\xff"

    for malformed in (None, "text", {"body": "no status"}, {"statusCode": "abc"}, {"statusCode": 999}):
        assert apigw.http_response(malformed) is None


def test_gateway_errors_take_the_templates_gateway_response_shape(template: dict[str, Any]) -> None:
    responses = tpl.gateway_responses(template)
    error = apigw.gateway_error("MISSING_AUTHENTICATION_TOKEN", request_id="req-1", responses=responses)
    assert error.status == 403
    body = json.loads(error.body)
    assert body["message"] == "Missing Authentication Token"
    assert "DEFAULT_4XX" in responses  # template.yaml customises API Gateway's own errors
    assert body == {
        "message": "Missing Authentication Token",
        "error": "MISSING_AUTHENTICATION_TOKEN",
        "request_id": "req-1",
    }
    too_large = apigw.gateway_error("REQUEST_TOO_LARGE", request_id="req-2", responses=responses)
    assert too_large.status == 413 and json.loads(too_large.body)["message"] == "Request Too Long"
    # Without customisation: API Gateway's own default body.
    plain = apigw.gateway_error("INTEGRATION_TIMEOUT", request_id="req-3")
    assert plain.status == 504 and json.loads(plain.body) == {"message": "Endpoint request timed out"}


def test_binary_bodies_are_passed_base64_encoded(template: dict[str, Any]) -> None:
    route = next(r for r in tpl.routes(template) if r.path == "/predict")
    event = apigw.build_event(
        route=route,
        path_parameters={},
        method="POST",
        path="/predict",
        headers=[("Content-Type", "application/octet-stream")],
        query=[("a", "1"), ("a", "2")],
        body=b"\xff\xfe",
        stage="prod",
        source_ip="127.0.0.1",
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe"
    assert event["queryStringParameters"] == {"a": "2"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert event["pathParameters"] is None


def test_lambda_context_counts_down(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 100.25, 103.0])  # created, asked 250 ms later, asked after the deadline
    monkeypatch.setattr(apigw.time, "monotonic", lambda: next(clock))
    context = apigw.LambdaContext(
        function_name="F", timeout_s=2, memory_mb=256, region="us-east-1", request_id="r"
    )
    assert context.get_remaining_time_in_millis() == 1750
    assert context.get_remaining_time_in_millis() == 0
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:F"


def test_parameter_overrides_are_checked_against_the_template() -> None:
    from textclf.cli_args import key_values

    template = tpl.load_template(config.REPO_ROOT / "template.yaml")
    overrides = key_values(["GateMinAccuracy=0.9", "EndpointType=Serverless"], "--parameter-overrides")
    tpl.check_parameters(template, overrides)  # declared, allowed, in range
    for bad, message in (
        ({"NoSuchParameter": "1"}, "has no parameter 'NoSuchParameter'"),
        ({"EndpointType": "Batch"}, "'Batch' is not one of ['RealTime', 'Serverless']"),
        ({"GateMinAccuracy": "1.5"}, "GateMinAccuracy=1.5 is outside 0..1"),
        ({"GateMaxDrop": "half"}, "'half' is not a number"),
    ):
        with pytest.raises(UserError, match=re.escape(message)):
            tpl.check_parameters(template, bad)
    with pytest.raises(UserError, match=re.escape("takes KEY=VALUE pairs, got 'GateMinAccuracy'")):
        key_values(["GateMinAccuracy"], "--parameter-overrides")
    assert key_values(["A=b=c"], "--env") == {"A": "b=c"}
