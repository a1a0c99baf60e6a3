"""Contract-wide guarantees: every event gets a JSON answer, bad input is 4xx, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from textclf_api.handlers import feedback, health, predict, training, transform
from textclf_api.handlers.resolver import precheck

from .conftest import EVENTS, ApiResponse, load_event, with_body

Invoke = Callable[..., ApiResponse]


def handler_for(event: dict[str, Any]) -> ModuleType:
    resource = event["resource"]
    if resource.startswith("/batch"):
        return transform
    if resource == "/feedback":
        return feedback
    return training if resource.startswith("/train") else health if resource in ("/health", "/") else predict


@pytest.mark.parametrize("name", sorted(p.stem for p in EVENTS.glob("*.json")))
def test_every_event_gets_a_json_answer_and_never_a_500(name: str, bucket: Any, invoke: Invoke) -> None:
    event = load_event(name)
    response = invoke(handler_for(event), event)
    assert response.status != 500
    if name == "playground":  # the one HTML route (test_explain.py checks it)
        assert response.status == 200 and response.headers["content-type"].startswith("text/html")
        return
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.body, dict)
    text = json.dumps(response.body)
    assert "Traceback" not in text and 'File "' not in text
    if "invalid" in name:
        assert 400 <= response.status < 500
        assert response.body["message"]


JUNK_BODIES = [
    "",
    "null",
    "true",
    "1e999",
    '"just a string"',
    "[]",
    "{",
    "{}}",
    '{"text": "a", "text": 5}',
    '{"text": {"nested": "object"}}',
    '{"texts": [[["deep"]]]}',
    '{"texts": {"0": "a"}}',
    '{"text": "\\ud800"}',
    "\x00\x01\x02",
    '{"text": "' + "a" * 5000 + '"}',
    '{"texts": ' + json.dumps(["a"] * 1000) + "}",
    '{"__proto__": {"x": 1}}',
]


@pytest.mark.parametrize("body", JUNK_BODIES, ids=range(len(JUNK_BODIES)))
@pytest.mark.parametrize("route", ["predict_single", "train"])
def test_junk_bodies_get_4xx(body: str, route: str, bucket: Any, invoke: Invoke) -> None:
    event = with_body(load_event(route), body)
    response = invoke(handler_for(event), event)
    if route == "train" and body == "":
        # An empty body means "all defaults": the job starts.
        assert response.status == 202, response.body
        return
    if body == '{"__proto__": {"x": 1}}':
        # Not a prototype to pollute: an unknown field, refused by name.
        assert response.status == 422, response.body
        assert "__proto__" in response.body["message"]
        return
    assert 400 <= response.status < 500, (body[:50], response.body)
    assert response.body["message"]


def test_unknown_route_is_a_json_404(invoke: Invoke) -> None:
    event = load_event("health")
    event["path"] = event["resource"] = "/nope"
    response = invoke(health, event)
    assert response.status == 404
    assert "/nope" in response.body["message"]


def test_get_requests_skip_the_body_precheck() -> None:
    assert precheck(with_body(load_event("health"), "not json")) is None


def test_a_bug_is_a_generic_500_without_details(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    # Not a request problem: the caller gets a request id and no internals; the log gets the trace.
    def broken() -> Any:
        raise KeyError("secret internal detail")

    monkeypatch.setattr(health, "check_health", broken)
    response = invoke(health, "health")
    assert response.status == 500
    assert "secret" not in json.dumps(response.body)
    assert response.body["request_id"] == load_event("health")["requestContext"]["requestId"]
