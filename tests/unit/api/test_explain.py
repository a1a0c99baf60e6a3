"""POST /explain (through the predict function) and GET / (the playground page)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from textclf_api import aws
from textclf_api.handlers import health as health_handler
from textclf_api.handlers import predict as predict_handler
from textclf_api.labels import LABELS

from .conftest import ApiResponse
from .test_predict import queue_endpoint_reply

Invoke = Callable[..., ApiResponse]


def explanation(label: str = "health") -> dict[str, Any]:
    return {
        "label": label,
        "score": 0.9,
        "scores": {name: 0.9 if name == label else 0.1 / 3 for name in LABELS},
        "model_version": "3",
        "answered_by": "transformer blended with the lexical head",
        "tokens": [
            {"text": "[CLS]", "special": True, "truncated": False},
            {"text": "e", "special": False, "truncated": False},
            {"text": "##bola", "special": False, "truncated": False},
            {"text": "[SEP]", "special": True, "truncated": False},
        ],
        "attributions": [0.0, 0.2, 1.4, 0.0],
        "attribution_method": "occlusion",
        "lexical": {"toward": [{"ngram": "ebola", "weight": 4.3}], "against": []},
    }


@pytest.fixture
def sent(record: Callable[[Any, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return record(aws.sagemaker_runtime(), "InvokeEndpoint")


def test_explain_asks_the_endpoint_for_an_explanation_and_returns_it(
    moto: None, invoke: Invoke, sent: list[dict[str, Any]]
) -> None:
    queue_endpoint_reply(explanation())
    response = invoke(predict_handler, "explain")
    assert response.status == 200, response.body
    assert response.body == explanation()
    (call,) = sent
    assert json.loads(call["Body"]) == {"inputs": "Ebola outbreak spreads in West Africa", "explain": True}


@pytest.mark.parametrize(
    "reply",
    [
        {**explanation(), "attributions": [0.0]},  # not one per token
        {**explanation(), "label": "sports"},  # not a label of the API
        {"predictions": []},  # a prediction, not an explanation
    ],
)
def test_an_explanation_that_does_not_fit_the_schema_is_a_502(moto: None, invoke: Invoke, reply: Any) -> None:
    queue_endpoint_reply(reply)
    response = invoke(predict_handler, "explain")
    assert response.status == 502, response.body
    assert response.body["message"] == "the model answered with an invalid explanation"


@pytest.mark.parametrize(
    ("event", "fragment"), [("explain_invalid_texts", "texts"), ("explain_invalid_blank_text", "blank")]
)
def test_bad_explain_requests_are_4xx_and_never_reach_the_endpoint(
    moto: None, invoke: Invoke, sent: list[dict[str, Any]], event: str, fragment: str
) -> None:
    response = invoke(predict_handler, event)
    assert response.status == 422, response.body
    assert fragment in response.body["message"]
    assert sent == []


def test_the_playground_page_is_html_locked_down_by_its_csp(invoke: Invoke) -> None:
    response = invoke(health_handler, "playground")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.body
    assert isinstance(html, str) and "<title>textclf playground</title>" in html
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    # Only the page's own inline script runs: its hash, no 'unsafe-inline'.
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]{44}';", policy) and "unsafe-inline" not in policy
    # The page calls the API relative to where it is served (a stage path in the cloud).
    assert "fetch(base + route" in html and "http://" not in html.split("<script>", 1)[1]
