"""The local API Gateway's own failure paths, and the local stack's environment swap.

Handlers here are plain functions of this module, routed like template functions: what the
gateway does when one is too slow, raises, returns a malformed result, or gets a body Lambda
could not take -- API Gateway's answers, not a traceback.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from textclf.local import apigw
from textclf.local import template as tpl
from textclf.local.api import LocalApiGateway
from textclf.serving.net import bind_socket
from textclf.serving.servers import ServerThread

RELEASE = threading.Event()  # lets the slow handler end once the test has its answer


def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    identity = event["requestContext"]["identity"]
    body = json.dumps({"path": event["path"], "function": context.function_name})
    if identity.get("apiKeyId"):  # what API Gateway tells a keyed method's function
        body = json.dumps({**json.loads(body), "api_key_id": identity["apiKeyId"]})
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
    monkeypatch.delenv("TEXTCLF_API_KEY", raising=False)
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
        # No TEXTCLF_API_KEY: a key made for this start, shown in the banner and the state file.
        assert len(stack.api_key) >= 32
        assert stack.state()["api_key"] == stack.api_key
        assert stack.api_key in stack.banner()
        forbidden = httpx.post(f"{stack.api.url}/predict", json={"text": "x"}, timeout=30)  # type: ignore[union-attr]
        assert forbidden.status_code == 403
    finally:
        stack.stop()
    assert os.environ["BUCKET_NAME"] == "the-users-own-bucket"
    assert "AWS_ENDPOINT_URL_SAGEMAKER" not in os.environ
    assert "DEPLOYMENTS_TABLE" not in os.environ
    assert get_settings().bucket_name == "the-users-own-bucket"


# ------------------------------------------------------------------------------------------------
# Back-pressure, dropped work, API keys and Host names
# ------------------------------------------------------------------------------------------------

HELD = threading.Event()  # set: the held handler may return
HELD_RUNS: list[str] = []  # the request bodies the held handler ran
HELD_RUNNING = threading.Event()


def held(event: dict[str, Any], context: Any) -> dict[str, Any]:
    HELD_RUNS.append(str(event["body"]))
    HELD_RUNNING.set()
    HELD.wait(20)
    return ok(event, context)


@pytest.fixture
def guarded() -> Iterator[str]:
    keyed = route("POST", "/keyed", "ok")
    keyed = tpl.Route(**{**keyed.__dict__, "api_key_required": True})
    gateway = LocalApiGateway(
        [route("POST", "/held", "held", timeout_s=20), keyed],
        stage="test",
        region="us-east-1",
        api_keys={"s3cret": "predict-key-id", "l4bel": "labeller-key-id"},
        max_waiting=2,
    )
    gateway.warm_up()
    server = ServerThread(gateway.app, bind_socket("127.0.0.1", 0, what="API", flag="--port"), name="api")
    server.start()
    HELD.clear()
    HELD_RUNNING.clear()
    HELD_RUNS.clear()
    try:
        yield server.url
    finally:
        HELD.set()
        server.stop()


def _post_in_background(url: str, body: str, timeout: float, replies: list[Any]) -> threading.Thread:
    def send() -> None:
        try:
            replies.append(httpx.post(url, content=body, timeout=timeout))
        except httpx.TimeoutException as exc:
            replies.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_a_full_function_answers_503_with_retry_after_at_once(guarded: str) -> None:
    replies: list[Any] = []
    threads = [_post_in_background(f"{guarded}/held", "first", 30, replies)]
    assert HELD_RUNNING.wait(10)
    threads += [_post_in_background(f"{guarded}/held", f"waiting-{i}", 30, replies) for i in range(3)]
    deadline = time.monotonic() + 10
    while not replies and time.monotonic() < deadline:  # the one beyond max_waiting, at once
        time.sleep(0.05)
    (refused,) = replies
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert "at capacity" in refused.json()["message"]
    HELD.set()
    for thread in threads:
        thread.join(30)
    assert sorted(r.status_code for r in replies) == [200, 200, 200, 503]


def test_a_request_whose_client_left_is_dropped_not_run(guarded: str) -> None:
    replies: list[Any] = []
    first = _post_in_background(f"{guarded}/held", "first", 30, replies)
    assert HELD_RUNNING.wait(10)
    gone = _post_in_background(f"{guarded}/held", "gave-up", 0.5, replies)
    gone.join(10)
    assert isinstance(replies[-1], httpx.TimeoutException)  # the client left while waiting
    HELD.set()
    first.join(30)
    time.sleep(0.5)  # the waiting request's turn comes and goes
    assert HELD_RUNS == ["first"]


def test_a_route_that_requires_an_api_key_is_forbidden_without_it(guarded: str) -> None:
    for headers in ({}, {"x-api-key": "wrong"}):
        reply = httpx.post(f"{guarded}/keyed", content=b"{}", headers=headers, timeout=30)
        assert reply.status_code == 403 and reply.json() == {"message": "Forbidden"}
        assert reply.headers["x-amzn-ErrorType"] == "ForbiddenException"
    # Any key of the stack passes a keyed route, as in API Gateway; the function learns which one.
    for key, key_id in (("s3cret", "predict-key-id"), ("l4bel", "labeller-key-id")):
        reply = httpx.post(f"{guarded}/keyed", content=b"{}", headers={"x-api-key": key}, timeout=30)
        assert reply.status_code == 200 and reply.json()["api_key_id"] == key_id


def test_only_loopback_host_names_are_served(guarded: str) -> None:
    reply = httpx.post(f"{guarded}/keyed", content=b"{}", headers={"Host": "evil.example:3000"}, timeout=30)
    assert reply.status_code == 400
    port = guarded.rsplit(":", 1)[1]
    reply = httpx.post(
        f"{guarded}/keyed",
        content=b"{}",
        headers={"Host": f"localhost:{port}", "x-api-key": "s3cret"},
        timeout=30,
    )
    assert reply.status_code == 200


# ------------------------------------------------------------------------------------------------
# POST /feedback: the labeller key only, over real HTTP through the unchanged handler
# ------------------------------------------------------------------------------------------------


def test_feedback_takes_the_labeller_key_and_refuses_the_predict_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from textclf_api.logic import feedback
    from textclf_api.schemas import SERVING_LABELS_KEY

    from textclf.local.stack import LocalStack, StackOptions

    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("TEXTCLF_LABELLER_KEY", "labeller-secret")
    feedback.reset_cache()
    stack = LocalStack(
        StackOptions(
            endpoint_url="http://127.0.0.1:9", api_port=0, watch_interval_s=60, api_key="predict-secret"
        )
    )
    stack.start()
    try:
        assert stack.labeller_key == "labeller-secret" and stack.state()["labeller_key"] == "labeller-secret"
        assert "labeller-secret" in stack.banner()
        url = f"{stack.api.url}/feedback"  # type: ignore[union-attr]
        body = {"items": [{"prediction_id": "a" * 32 + "-0", "label": "health"}]}
        for headers, message in (
            ({}, "Forbidden"),  # API Gateway: no key
            ({"x-api-key": "wrong"}, "Forbidden"),
            ({"x-api-key": "predict-secret"}, "this API key may not send feedback"),  # the function
        ):
            refused = httpx.post(url, json=body, headers=headers, timeout=30)
            assert refused.status_code == 403, refused.text
            assert message in refused.json()["message"]
        # No model answers here, so no label set is known yet: the labeller is told to wait.
        labeller = {"x-api-key": "labeller-secret"}
        waiting = httpx.post(url, json=body, headers=labeller, timeout=30)
        assert waiting.status_code == 503 and "label set is not known" in waiting.json()["message"]
        s3 = stack.control_plane.client("s3")  # type: ignore[union-attr]
        record = {"labels": ["business", "health"], "model_version": "7"}
        s3.put_object(Bucket="textclf-local", Key=SERVING_LABELS_KEY, Body=json.dumps(record))
        feedback.reset_cache()
        accepted = httpx.post(url, json=body, headers=labeller, timeout=30)
        assert accepted.status_code == 200, accepted.text
        # The key's id, never its value, names the labeller.
        assert (
            accepted.json()["labeller"] == "local-LabellerApiKey" and accepted.json()["model_version"] == "7"
        )
        (obj,) = s3.list_objects_v2(Bucket="textclf-local", Prefix="ground-truth/")["Contents"]
        line = json.loads(s3.get_object(Bucket="textclf-local", Key=obj["Key"])["Body"].read())
        assert line["textclf"]["labeller"] == "local-LabellerApiKey"
        # The labeller key is a key of the stack: like API Gateway, /predict's check lets it pass.
        predicted = httpx.post(f"{stack.api.url}/predict", json={"text": "x"}, headers=labeller, timeout=30)  # type: ignore[union-attr]
        assert predicted.status_code != 403
    finally:
        stack.stop()
        feedback.reset_cache()


def test_the_local_stack_cannot_pretend_to_check_iam_on_feedback(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textclf.errors import UserError
    from textclf.local.stack import LocalStack, StackOptions

    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path))
    options = StackOptions(
        endpoint_url="http://127.0.0.1:9", api_port=0, parameters={"FeedbackAuth": "AWS_IAM"}
    )
    with pytest.raises(UserError, match="cannot check AWS_IAM signatures"):
        LocalStack(options).start()
    same = StackOptions(endpoint_url="http://127.0.0.1:9", api_port=0, api_key="k", labeller_key="k")
    with pytest.raises(UserError, match="must differ"):
        LocalStack(same).start()
