"""Hostile bodies: every one is a 4xx with a message, in the API and in the model container alike.

One table drives the predict handler (its pre-check, through the real powertools resolver) and
``model/inference.py``'s ``input_fn``; both parsers must also agree on which bodies are JSON they
accept, so a body the API passes on is one the endpoint reads the same way. The same table runs
over real HTTP against the local stack in ``tests/integration/test_attacks.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from textclf_api import jsonbody
from textclf_api.handlers import predict as predict_handler

from tests.helpers.hostile import HOSTILE_BODIES, VALID_ODD_BODIES, HostileBody, leaks
from textclf import config
from textclf.packaging.runtime import load_inference_module

from .conftest import load_event
from .test_predict import Invoke, prediction, queue_endpoint_reply

#: What POST /predict may answer, from the published document (not from the handler's code).
PREDICT_RESPONSES = json.loads((config.REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))[
    "paths"
]["/predict"]["post"]["responses"]
ERROR_OF_STATUS = {400: "BadRequest", 413: "PayloadTooLarge", 422: "ValidationError"}


def _event(body: HostileBody) -> dict[str, Any]:
    event = load_event("predict_single")
    event["body"], event["isBase64Encoded"] = body.event_body()
    event["headers"] = {**(event.get("headers") or {}), "Content-Type": body.content_type}
    event["multiValueHeaders"] = None
    return event


@pytest.fixture(scope="module")
def inference() -> Any:
    return load_inference_module(config.model_code_dir() / "inference.py")


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=[b.name for b in HOSTILE_BODIES])
def test_the_api_answers_every_hostile_body_with_a_4xx_and_a_message(
    body: HostileBody, invoke: Invoke, moto: None
) -> None:
    response = invoke(predict_handler, _event(body))
    # The one status docs/openapi.json gives for what is wrong with this body, not just any 4xx.
    assert response.status == body.status, (response.status, response.body)
    assert str(body.status) in PREDICT_RESPONSES
    assert response.body["error"] == ERROR_OF_STATUS[body.status]
    assert isinstance(response.body, dict) and len(response.body["message"]) > 10
    assert response.body["error"] != "InternalError"
    assert leaks(json.dumps(response.body)) == []


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=[b.name for b in HOSTILE_BODIES])
def test_the_model_container_refuses_every_hostile_body_with_a_payload_error(
    body: HostileBody, inference: Any
) -> None:
    with pytest.raises(ValueError) as refused:  # PayloadError: the toolkit answers 400
        texts = inference.input_fn(body.raw, body.content_type)
        inference.validate_texts(texts)
    assert type(refused.value).__name__ == "PayloadError"
    assert leaks(str(refused.value)) == []


@pytest.mark.parametrize("body", VALID_ODD_BODIES, ids=[b.name for b in VALID_ODD_BODIES])
def test_odd_but_valid_headlines_are_classified(body: HostileBody, invoke: Invoke, moto: None) -> None:
    queue_endpoint_reply({"predictions": [prediction("business", 0.9)]})
    response = invoke(predict_handler, _event(body))
    assert response.status == 200, response.body


@pytest.mark.parametrize("body", HOSTILE_BODIES + VALID_ODD_BODIES, ids=lambda b: b.name)
def test_the_api_and_the_container_read_json_the_same_way(body: HostileBody, inference: Any) -> None:
    try:
        jsonbody.loads(body.raw)
        api_reads = True
    except jsonbody.JsonBodyError:
        api_reads = False
    try:
        inference.parse_json(body.raw)
        container_reads = True
    except ValueError:
        container_reads = False
    assert api_reads == container_reads


def test_depth_is_measured_without_recursion_and_outside_strings() -> None:
    assert jsonbody.nesting_depth('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == 1
    assert jsonbody.nesting_depth('{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == 1
    assert jsonbody.nesting_depth("[" * 100_000) == jsonbody.MAX_DEPTH + 1  # stops counting
    assert jsonbody.nesting_depth("[[[]]]" + "[]" * 40) == 3
    assert jsonbody.loads(b'{"texts": [["x"]]}') == {"texts": [["x"]]}


def test_the_leak_check_finds_internals_but_not_request_ids() -> None:
    # A request id's last UUID group can be 12 decimal digits: not an account id.
    assert leaks('{"message": "x", "request_id": "9cb4478e-fe68-4d4d-82a5-229466954609"}') == []
    assert "account id" in leaks("Endpoint textclf of account 123456789012 not found.")
    assert {"account id", "ARN"} <= set(
        leaks("User: arn:aws:iam::123456789012:role/textclf is not authorized")
    )
    assert "traceback" in leaks(
        'Traceback (most recent call last):\n  File "/opt/ml/model/code/inference.py", line 3'
    )
    assert "Python exception name" in leaks("RecursionError: maximum recursion depth exceeded")
