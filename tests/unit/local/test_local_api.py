"""The local API Gateway's own failure paths, and the local stack's environment swap.

Handlers here are plain functions of this module, routed like template functions: what the
gateway does when one is too slow, raises, returns a malformed result, or gets a body Lambda
could not take -- API Gateway's answers, not a traceback.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from textclf.local import apigw
from textclf.local import template as tpl
from textclf.local.api import LocalApiGateway
from textclf.local.net import bind_socket
from textclf.local.servers import ServerThread

RELEASE = threading.Event()  # lets the slow handler end once the test has its answer


def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = json.dumps({"path": event["path"], "function": context.function_name})
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": body}


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    RELEASE.wait(30)
    return ok(event, context)


def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("a bug in the handler")


def malformed(event: dict[str, Any], context: Any) -> Any:
    return {"body": "no status code"}


def route(method: str, path: str, handler: str, timeout_s: float = 5) -> tpl.Route:
    return tpl.Route(
        method=method,
        path=path,
        function=handler.title() + "Function",
        handler=f"{__name__}.{handler}",
        timeout_s=timeout_s,
        memory_mb=128,
        auth=None,
        pattern=tpl._path_regex(path),
    )


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    routes = [
        route("POST", "/ok", "ok"),
        route("GET", "/slow", "slow", timeout_s=1),
        route("GET", "/broken", "broken"),
        route("GET", "/malformed", "malformed"),
    ]
    gateway = LocalApiGateway(routes, stage="test", region="us-east-1")
    gateway.warm_up()
    server = ServerThread(gateway.app, bind_socket("127.0.0.1", 0, what="API", flag="--port"), name="api")
    server.start()
    try:
        yield server.url
    finally:
        RELEASE.set()
        server.stop()


def test_a_handler_past_its_timeout_is_a_504(api: str) -> None:
    RELEASE.clear()
    reply = httpx.get(f"{api}/slow", timeout=30)
    RELEASE.set()
    assert reply.status_code == 504
    assert reply.json()["message"] == "Endpoint request timed out"


@pytest.mark.parametrize("path", ["/broken", "/malformed"])
def test_a_raising_or_malformed_handler_is_a_502(api: str, path: str) -> None:
    reply = httpx.get(f"{api}{path}", timeout=30)
    assert reply.status_code == 502
    assert reply.json()["message"] == "Internal server error"
    assert "a bug in the handler" not in reply.text


def test_a_body_lambda_cannot_take_is_a_413(api: str) -> None:
    big = b"x" * (apigw.MAX_LAMBDA_PAYLOAD_BYTES + 1)
    reply = httpx.post(f"{api}/ok", content=big, timeout=30)
    assert reply.status_code == 413 and reply.json()["message"] == "Request Too Long"
    fine = httpx.post(f"{api}/ok", content=b"{}", timeout=30)
    assert fine.status_code == 200 and fine.json() == {"path": "/ok", "function": "OkFunction"}


def test_unknown_routes_are_api_gateways_403(api: str) -> None:
    for method, path in (("GET", "/ok"), ("GET", "/nowhere")):
        reply = httpx.request(method, f"{api}{path}", timeout=30)
        assert reply.status_code == 403 and reply.json()["message"] == "Missing Authentication Token"


def test_the_stack_swaps_the_environment_in_and_restores_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The functions see the template's environment aimed at the local servers while the stack
    runs (settings and clients rebuilt from it); afterwards the process has its own back."""
    from textclf_api import aws
    from textclf_api.settings import get_settings

    from textclf.local.stack import LocalStack, StackOptions

    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("BUCKET_NAME", "the-users-own-bucket")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER", raising=False)
    before_client = aws.s3()
    # An endpoint that is not there: nothing loads a model; the stack still starts.
    stack = LocalStack(StackOptions(endpoint_url="http://127.0.0.1:9", api_port=0, watch_interval_s=60))
    stack.start()
    try:
        assert os.environ["BUCKET_NAME"] == "textclf-local"
        assert os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] == stack.sagemaker_server.url  # type: ignore[union-attr]
        assert os.environ["AWS_ENDPOINT_URL_S3"] == stack.control_plane.url  # type: ignore[union-attr]
        assert os.environ["DEPLOYMENTS_TABLE"] == "textclf-local-deployments-table"
        assert get_settings().bucket_name == "textclf-local"  # the cache was rebuilt
        assert aws.s3() is not before_client
        assert aws.s3().meta.endpoint_url == stack.control_plane.url  # type: ignore[union-attr]
    finally:
        stack.stop()
    assert os.environ["BUCKET_NAME"] == "the-users-own-bucket"
    assert "AWS_ENDPOINT_URL_SAGEMAKER" not in os.environ
    assert "DEPLOYMENTS_TABLE" not in os.environ
    assert get_settings().bucket_name == "the-users-own-bucket"
