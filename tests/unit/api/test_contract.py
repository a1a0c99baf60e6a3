"""Contract-wide guarantees: every event gets a JSON answer, bad input is 4xx, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from textclf_api import schemas
from textclf_api.handlers import feedback, health, predict, training, transform
from textclf_api.handlers.resolver import precheck
from textclf_api.schemas import MAX_TEXT_CHARS

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
    '{"text": "' + "a" * (MAX_TEXT_CHARS + 1) + '"}',
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


# Runs in a fresh interpreter: imports every handler module, prints the API models already built.
_BUILT_AT_IMPORT = """
import json
import pydantic
import textclf_api.handlers.deploy, textclf_api.handlers.health, textclf_api.handlers.predict
import textclf_api.handlers.training, textclf_api.handlers.transform
from textclf_api import schemas
models = [v for v in vars(schemas).values() if isinstance(v, type) and issubclass(v, pydantic.BaseModel)]
print(json.dumps({m.__name__: m.__pydantic_complete__ for m in models if m.__module__ == schemas.__name__}))
"""


def test_no_api_model_is_built_at_import() -> None:
    """A cold start builds only the models its first request uses (``defer_build``): importing the
    handlers builds none, nor does registering their routes."""
    done = subprocess.run(
        [sys.executable, "-c", _BUILT_AT_IMPORT], capture_output=True, text=True, timeout=120, check=True
    )
    built = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(built) >= 15, built  # every model of schemas.py was seen
    assert not [name for name, complete in built.items() if complete]
    # ... and the first use builds one all the same.
    assert schemas.PredictRequest.model_validate({"text": "a headline"}).count() == 1


def test_only_the_deploy_function_imports_the_deploy_loop() -> None:
    """The API functions read versions and records from ``deploy_records``; the loop's gate,
    registry and rollout code (and ``artifacts``) would cost each of their cold starts ~10 ms."""
    code = (
        "import sys\n"
        "import textclf_api.handlers.health, textclf_api.handlers.predict\n"
        "import textclf_api.handlers.training, textclf_api.handlers.transform\n"
        "print(sorted(m for m in sys.modules if m.startswith('textclf_api.logic.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = done.stdout.strip().splitlines()[-1]
    assert "deploy_records" in loaded
    assert "textclf_api.logic.deployment'" not in loaded and "artifacts" not in loaded, loaded
