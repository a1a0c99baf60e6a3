"""POST /explain (through the predict function) and GET / (the playground page)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from textclf_api import aws
from textclf_api.handlers import health as health_handler
from textclf_api.handlers import predict as predict_handler

from textclf.labels import LABELS

from .conftest import ApiResponse
from .test_predict import OTHER_LABEL_SETS, logged_failure, queue_endpoint_reply

Invoke = Callable[..., ApiResponse]


def explanation(label: str = "health", labels: Sequence[str] = LABELS) -> dict[str, Any]:
    return {
        "label": label,
        "score": 0.9,
        "scores": {name: 0.9 if name == label else 0.1 / (len(labels) - 1) for name in labels},
        "labels": list(labels),
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
    (call,) = sent
    assert response.body == explanation() | {"prediction_id": f"{call['InferenceId']}-0"}
    assert json.loads(call["Body"]) == {"inputs": "Ebola outbreak spreads in West Africa", "explain": True}


@pytest.mark.parametrize("labels", list(OTHER_LABEL_SETS.values()), ids=list(OTHER_LABEL_SETS))
def test_a_model_with_another_label_set_explains_through_unchanged(
    moto: None, invoke: Invoke, labels: list[str]
) -> None:
    queue_endpoint_reply(explanation(labels[-1], labels))
    response = invoke(predict_handler, "explain")
    assert response.status == 200, response.body
    assert {k: v for k, v in response.body.items() if k != "prediction_id"} == explanation(labels[-1], labels)


def test_an_older_explanation_without_labels_gets_them_from_its_scores(moto: None, invoke: Invoke) -> None:
    old = explanation("neutral", ["positive", "neutral", "negative"])
    del old["labels"]
    queue_endpoint_reply(old)
    response = invoke(predict_handler, "explain")
    assert response.status == 200, response.body
    assert response.body["labels"] == ["positive", "neutral", "negative"]


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ({**explanation(), "attributions": [0.0]}, "1 attributions for 4 tokens"),
        # Label and scores are checked against the set the reply reports.
        ({**explanation(), "label": "sports"}, "scores has no entry for the predicted label 'sports'"),
        (
            {**explanation(), "label": "sports", "scores": {**explanation()["scores"], "sports": 0.0}},
            "label 'sports' is not one of labels",
        ),
        ({**explanation(), "labels": ["health", "business"]}, "scores keys"),
        ({**explanation(), "labels": None}, "labels\n  Input should be a valid list"),
        ({"predictions": []}, "Field required"),  # a prediction, not an explanation
    ],
)
def test_an_explanation_that_does_not_fit_the_schema_is_a_502(
    moto: None, invoke: Invoke, reply: Any, fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue_endpoint_reply(reply)
    response = invoke(predict_handler, "explain")
    assert response.status == 502, response.body
    assert response.body["message"] == "the model answered with an invalid explanation"
    assert fragment in logged_failure(caplog, response.body["request_id"])["cause"]


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
