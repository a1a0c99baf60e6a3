"""events/: real API Gateway REST proxy events for every route, usable by `sam local invoke -e`."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import EVENTS

# API Gateway REST (payload 1.0) proxy event keys.
PROXY_KEYS = {
    "resource",
    "path",
    "httpMethod",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "body",
    "isBase64Encoded",
}
ROUTES = {
    ("POST", "/predict"),
    ("GET", "/health"),
    ("POST", "/train"),
    ("GET", "/train/{job_name}"),
    ("POST", "/batch"),
    ("GET", "/batch/{job_name}"),
    ("POST", "/explain"),
    ("POST", "/feedback"),
    ("GET", "/monitor"),
    ("GET", "/"),
}
FILES = sorted(EVENTS.glob("*.json"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_event_is_a_rest_proxy_event(path: object) -> None:
    event = json.loads(EVENTS.joinpath(str(path)).read_text())
    assert set(event) == PROXY_KEYS
    context = event["requestContext"]
    assert (event["httpMethod"], event["resource"]) in ROUTES
    assert context["httpMethod"] == event["httpMethod"]
    assert context["resourcePath"] == event["resource"]
    assert context["path"] == f"/{context['stage']}{event['path']}"
    assert re.fullmatch(r"[0-9a-f-]{36}", context["requestId"])
    assert event["body"] is None or isinstance(event["body"], str)
    assert {k: [v] for k, v in event["headers"].items()} == event["multiValueHeaders"]
    if "{job_name}" in event["resource"]:
        assert event["path"] == event["resource"].replace("{job_name}", event["pathParameters"]["job_name"])
    if event["resource"].startswith(("/train", "/batch", "/feedback")):
        # AWS_IAM routes (/feedback by default): API Gateway passes the signed caller's identity.
        assert context["identity"]["userArn"].startswith("arn:aws:iam::")
        assert event["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 ")


def test_request_ids_are_unique() -> None:
    ids = [json.loads(p.read_text())["requestContext"]["requestId"] for p in FILES]
    assert len(ids) == len(set(ids))


def test_every_route_has_good_and_bad_events() -> None:
    by_route: dict[tuple[str, str], set[str]] = {}
    for path in FILES:
        event = json.loads(path.read_text())
        by_route.setdefault((event["httpMethod"], event["resource"]), set()).add(path.stem)
    assert set(by_route) == ROUTES
    assert {"predict_single", "predict_batch"} <= by_route[("POST", "/predict")]
    assert any("invalid" in n for n in by_route[("POST", "/predict")])
    assert any("invalid" in n for n in by_route[("POST", "/train")])
    assert any("invalid" in n or "unknown" in n for n in by_route[("GET", "/train/{job_name}")])
    assert {"feedback", "feedback_duplicates"} <= by_route[("POST", "/feedback")]
    assert sum("invalid" in n for n in by_route[("POST", "/feedback")]) >= 5


def test_demo_can_tell_good_predict_events_from_bad_ones() -> None:
    # The demo sends every events/predict*.json; the bad ones carry "invalid" in their names.
    names = {p.stem for p in EVENTS.glob("predict*.json")}
    assert {n for n in names if "invalid" not in n} == {"predict_single", "predict_batch"}
