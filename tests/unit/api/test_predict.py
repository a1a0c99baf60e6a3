"""POST /predict: the contract, driven with events/ files through the real handler and moto."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber
from moto.sagemakerruntime.models import sagemakerruntime_backends
from textclf_api import aws
from textclf_api.handlers import predict as predict_handler
from textclf_api.logic.predict import predict
from textclf_api.schemas import MAX_BODY_BYTES, MAX_TEXT_CHARS, PredictRequest

from textclf.labels import LABELS

from .conftest import (
    ACCOUNT,
    ENDPOINT,
    REGION,
    ApiResponse,
    FakeLambdaContext,
    load_event,
    with_body,
)

Invoke = Callable[..., ApiResponse]


def prediction(label: str, score: float, labels: Sequence[str] = LABELS) -> dict[str, Any]:
    rest = (1.0 - score) / (len(labels) - 1)
    return {
        "label": label,
        "score": score,
        "scores": {name: score if name == label else rest for name in labels},
    }


def answer(*predictions: dict[str, Any], labels: Sequence[str] = LABELS, **extra: Any) -> dict[str, Any]:
    """The endpoint's predict reply: the predictions and the served label set (class-id order)."""
    return {"predictions": list(predictions), "labels": list(labels), **extra}


def queue_endpoint_reply(body: Any, content_type: str = "application/json") -> None:
    """Queue what moto's InvokeEndpoint answers next (its endpoint-results queue)."""
    text = body if isinstance(body, str) else json.dumps(body)
    sagemakerruntime_backends[ACCOUNT][REGION].results_queue.append((text, content_type, "AllTraffic", ""))


@pytest.fixture
def sent(record: Callable[[Any, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The InvokeEndpoint calls the Lambda makes (recorded on its own client)."""
    return record(aws.sagemaker_runtime(), "InvokeEndpoint")


def payloads(calls: list[dict[str, Any]]) -> list[Any]:
    for call in calls:
        assert call["EndpointName"] == ENDPOINT
        assert call["ContentType"] == call["Accept"] == "application/json"
        assert re.fullmatch(r"[0-9a-f]{32}", call["InferenceId"])  # one new id per request
    return [json.loads(call["Body"]) for call in calls]


def unnamed(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the prediction ids the function adds (the endpoint's reply has none)."""
    predictions = [{k: v for k, v in p.items() if k != "prediction_id"} for p in body["predictions"]]
    return {**body, "predictions": predictions}


def test_single_text_is_sent_as_a_string_and_answered_with_one_prediction(
    moto: None, invoke: Invoke, sent: list[dict[str, Any]]
) -> None:
    queue_endpoint_reply(answer(prediction("business", 0.91)))
    event = load_event("predict_single")
    response = invoke(predict_handler, event)
    assert response.status == 200, response.body
    assert response.headers["content-type"].startswith("application/json")
    assert unnamed(response.body)["predictions"] == [prediction("business", 0.91)]
    assert payloads(sent) == [{"inputs": json.loads(event["body"])["text"]}]
    # The prediction is named by the request's InferenceId (what the endpoint's capture records).
    assert response.body["predictions"][0]["prediction_id"] == f"{sent[0]['InferenceId']}-0"


def test_batch_is_sent_as_a_list_and_answered_in_input_order(
    moto: None, invoke: Invoke, sent: list[dict[str, Any]]
) -> None:
    event = load_event("predict_batch")
    texts = json.loads(event["body"])["texts"]
    labels = ["business", "science_and_technology", "entertainment", "health"]
    assert len(texts) == len(labels)
    reply = answer(
        *(prediction(label, 0.8 + i / 100) for i, label in enumerate(labels)),
        model_version="3",  # the version that answered reaches the client unchanged
    )
    queue_endpoint_reply(reply)
    response = invoke(predict_handler, event)
    assert response.status == 200, response.body
    assert [p["label"] for p in response.body["predictions"]] == labels
    assert unnamed(response.body) == reply
    assert payloads(sent) == [{"inputs": texts}]
    ids = [p["prediction_id"] for p in response.body["predictions"]]
    assert ids == [f"{sent[0]['InferenceId']}-{i}" for i in range(len(texts))]  # index = input position


#: Label sets of models trained on other data: the API has no list of its own to check them against.
OTHER_LABEL_SETS = {
    "3 labels": ["negative", "neutral", "positive"],
    "12 labels": [f"clause_{i:02d}" for i in range(12)],
    "binary, non-ASCII": ["spam", "ham ✉"],
}


@pytest.mark.parametrize("labels", list(OTHER_LABEL_SETS.values()), ids=list(OTHER_LABEL_SETS))
def test_a_model_with_another_label_set_answers_through_unchanged(
    labels: list[str], moto: None, invoke: Invoke
) -> None:
    texts = ["first text", "second text", "third text"]
    reply = answer(*(prediction(labels[i % len(labels)], 0.6, labels) for i in range(3)), labels=labels)
    reply["model_version"] = "7"
    queue_endpoint_reply(reply)
    response = invoke(predict_handler, with_body(load_event("predict_batch"), {"texts": texts}))
    assert response.status == 200, response.body
    assert unnamed(response.body) == reply
    assert response.body["labels"] == labels  # the served set, in class-id order


def test_an_older_reply_without_labels_gets_them_from_its_scores(moto: None, invoke: Invoke) -> None:
    labels = ["positive", "neutral", "negative"]  # not sorted: the model's own class-id order
    old = {"predictions": [prediction("neutral", 0.8, labels)], "model_version": "2"}
    queue_endpoint_reply(old)
    response = invoke(predict_handler, "predict_single")
    assert response.status == 200, response.body
    assert unnamed(response.body) == {**old, "labels": labels}


def test_an_older_reply_is_still_checked_prediction_by_prediction(moto: None, invoke: Invoke) -> None:
    # Its labels come from the first prediction; the second scores another set: the model's fault.
    old = {"predictions": [prediction("health", 0.8), prediction("spam", 0.8, ["spam", "ham"])]}
    queue_endpoint_reply(old)
    response = invoke(predict_handler, with_body(load_event("predict_batch"), {"texts": ["a", "b"]}))
    assert response.status == 502, response.body
    assert response.body["error"] == "ModelError"


def test_a_one_element_batch_stays_a_list(moto: None, invoke: Invoke, sent: list[dict[str, Any]]) -> None:
    queue_endpoint_reply(answer(prediction("health", 0.7)))
    response = invoke(predict_handler, with_body(load_event("predict_single"), {"texts": ["Flu season"]}))
    assert response.status == 200
    assert payloads(sent) == [{"inputs": ["Flu season"]}]


@pytest.mark.parametrize(
    ("labels", "answers", "counted"),
    [
        (LABELS, ["health", "health", "business"], {"health": [2.0], "business": [1.0]}),
        # Another model's labels are counted by the names it answers with.
        (
            ["negative", "neutral", "positive"],
            ["positive", "neutral", "positive"],
            {"positive": [2.0], "neutral": [1.0]},
        ),
    ],
)
def test_metrics_count_predictions_per_label_and_endpoint_latency(  # noqa: PLR0917 - fixtures
    labels: Sequence[str],
    answers: list[str],
    counted: dict[str, list[float]],
    moto: None,
    invoke: Invoke,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue_endpoint_reply(answer(*(prediction(label, 0.8, labels) for label in answers), labels=labels))
    capsys.readouterr()
    response = invoke(predict_handler, with_body(load_event("predict_batch"), {"texts": ["a", "b", "c"]}))
    assert response.status == 200
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    per_label = {doc["Label"]: doc["Predictions"] for doc in emf if "Predictions" in doc and "Label" in doc}
    assert per_label == counted
    latency = [doc for doc in emf if "EndpointLatency" in doc]
    assert latency and latency[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "textclf"
    assert latency[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Milliseconds"


# Each bad request file, and a word its message must contain (the field or problem it names).
INVALID = {
    "predict_invalid_not_json": (400, "not valid JSON"),
    "predict_invalid_truncated_json": (400, "not valid JSON"),
    "predict_invalid_array_body": (422, "JSON object"),
    "predict_invalid_empty_object": (422, "exactly one of 'text'"),
    "predict_invalid_missing_body": (422, "body is required"),
    "predict_invalid_both_fields": (422, "exactly one of 'text'"),
    "predict_invalid_extra_field": (422, "language"),
    "predict_invalid_misspelt_field": (422, "txt"),
    "predict_invalid_wrong_type": (422, "text: Input should be a valid string"),
    "predict_invalid_texts_not_list": (422, "texts: Input should be a valid list"),
    "predict_invalid_texts_item_type": (422, "texts[1]"),
    "predict_invalid_blank_text": (422, "text: must not be blank"),
    "predict_invalid_empty_text": (422, "text: String should have at least 1 character"),
    "predict_invalid_blank_in_batch": (422, "texts[1]: must not be blank"),
    "predict_invalid_too_long": (422, f"at most {MAX_TEXT_CHARS} characters"),
    "predict_invalid_empty_batch": (422, "texts: List should have at least 1 item"),
    "predict_invalid_too_many": (422, "at most 64 items"),
    "predict_invalid_content_type": (415, "Content-Type must be application/json"),
}


def test_every_invalid_predict_event_is_listed_here() -> None:
    from .conftest import EVENTS

    assert {p.stem for p in EVENTS.glob("predict_invalid_*.json")} == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_bad_requests_get_a_4xx_naming_the_problem_and_never_reach_the_endpoint(
    name: str, moto: None, invoke: Invoke, sent: list[dict[str, Any]]
) -> None:
    status, fragment = INVALID[name]
    response = invoke(predict_handler, name)
    assert response.status == status, response.body
    assert fragment in response.body["message"], response.body
    assert response.body["request_id"] == load_event(name)["requestContext"]["requestId"]
    assert "Traceback" not in json.dumps(response.body)
    assert payloads(sent) == []


def test_validation_errors_list_every_bad_field() -> None:
    from textclf_api.handlers.resolver import precheck

    event = with_body(load_event("predict_single"), {"texts": ["ok", " ", "x" * (MAX_TEXT_CHARS + 1), 5]})
    assert precheck(event) is None
    response = predict_handler.lambda_handler(event, FakeLambdaContext())
    body = json.loads(response["body"])
    assert response["statusCode"] == 422
    assert [d["field"] for d in body["details"]] == ["texts[1]", "texts[2]", "texts[3]"]


def test_oversized_body_is_refused_with_413(moto: None, invoke: Invoke, sent: list[dict[str, Any]]) -> None:
    body = json.dumps({"text": "x" * (MAX_BODY_BYTES + 1)})
    response = invoke(predict_handler, with_body(load_event("predict_single"), body))
    assert response.status == 413
    assert str(MAX_BODY_BYTES) in response.body["message"]
    assert payloads(sent) == []  # refused before the endpoint was called


def test_largest_valid_text_fits_the_body_limit() -> None:
    # One text of MAX_TEXT_CHARS non-ASCII characters, escaped by json.dumps: the longest valid text.
    body = json.dumps({"text": "é" * MAX_TEXT_CHARS})
    assert len(body.encode()) <= MAX_BODY_BYTES
    # A full batch of headline-length texts fits too; a batch of long documents is bounded by the body.
    assert len(json.dumps({"texts": ["é" * 2000] * 64}).encode()) <= MAX_BODY_BYTES


def test_base64_bodies_are_decoded_and_bad_base64_is_a_400(
    moto: None, invoke: Invoke, sent: list[dict[str, Any]]
) -> None:
    queue_endpoint_reply(answer(prediction("entertainment", 0.6)))
    event = load_event("predict_single")
    event["body"] = base64.b64encode(b'{"text": "Oscars night"}').decode()
    event["isBase64Encoded"] = True
    assert invoke(predict_handler, event).status == 200
    event["body"] = "!!not base64!!"
    response = invoke(predict_handler, event)
    assert response.status == 400
    assert "base64" in response.body["message"]


def test_json_with_charset_is_accepted(moto: None, invoke: Invoke, sent: list[dict[str, Any]]) -> None:
    queue_endpoint_reply(answer(prediction("business", 0.6)))
    event = load_event("predict_single")
    event["headers"]["Content-Type"] = "application/json; charset=utf-8"
    event["multiValueHeaders"]["Content-Type"] = ["application/json; charset=utf-8"]
    assert invoke(predict_handler, event).status == 200


# ---------------------------------------------------------------- endpoint failures


@pytest.fixture
def stubber() -> Iterator[Stubber]:
    """A Stubber on the function's own runtime client, deactivated after the test."""
    with Stubber(aws.sagemaker_runtime()) as stub:
        yield stub


def client_error(stubber: Stubber, code: str, message: str, status: int, **extra: Any) -> None:
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message=message,
        http_status_code=status,
        response_meta={},
        modeled_fields=extra,
    )


def logged_failure(caplog: pytest.LogCaptureFixture, request_id: str) -> dict[str, Any]:
    """The fields of the structured "request failed" log record of ``request_id``."""
    for record in caplog.records:
        if record.getMessage() == "request failed" and getattr(record, "request_id", None) == request_id:
            return dict(record.__dict__)
    raise AssertionError(f"no 'request failed' log record for request {request_id}")


def test_model_error_is_a_502_whose_reason_is_logged_not_sent(
    invoke: Invoke, stubber: Stubber, caplog: pytest.LogCaptureFixture
) -> None:
    client_error(
        stubber,
        "ModelError",
        "Received client error (400) from primary",
        424,
        OriginalStatusCode=400,
        OriginalMessage="inputs must be a string or a list of strings",
        LogStreamArn="arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/x",
    )
    response = invoke(predict_handler, "predict_single")
    assert response.status == 502
    assert response.body["error"] == "ModelError"
    assert response.body["message"] == "the model failed to classify the request"
    assert "arn:" not in json.dumps(response.body)
    logged = logged_failure(caplog, response.body["request_id"])
    assert "inputs must be a string" in logged["cause"]
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("original", [503, 429])
def test_a_container_shedding_load_is_a_503_with_retry_after(
    original: int, invoke: Invoke, stubber: Stubber
) -> None:
    # What SageMaker answers when the DLC's model server's job queue is full (its 503).
    client_error(
        stubber,
        "ModelError",
        f"Received server error ({original}) from primary with message",
        424,
        OriginalStatusCode=original,
        OriginalMessage='{"code": 503, "type": "ServiceUnavailableException", "message": "Model queue full"}',
    )
    response = invoke(predict_handler, "predict_single")
    assert response.status == 503, response.body
    assert response.headers["retry-after"] == "30"
    assert response.body["message"] == "the model endpoint is at capacity; try again later"
    assert "queue" not in json.dumps(response.body)
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "message", "http", "says"),
    [
        ("ValidationError", f"Endpoint {ENDPOINT} of account {ACCOUNT} not found.", 400, "is not in service"),
        # SageMaker answers ModelNotReady with 429; its own branch says why (not "throttling").
        ("ModelNotReadyException", "Model is not ready", 429, "is not ready yet"),
        ("ThrottlingException", "Rate exceeded", 400, "is throttling requests"),
        ("ServiceUnavailable", "Service is unavailable", 503, "is unavailable; try again later"),
    ],
)
def test_missing_unready_or_throttled_endpoint_maps_to_503_with_retry_after(  # noqa: PLR0917 - fixtures
    code: str, message: str, http: int, says: str, invoke: Invoke, stubber: Stubber
) -> None:
    client_error(stubber, code, message, http)
    response = invoke(predict_handler, "predict_single")
    assert response.status == 503, response.body
    assert response.headers["retry-after"] == "30"
    assert response.body["message"].startswith(f"the model endpoint {says}")
    # Neither the endpoint's name nor the account reaches an anonymous caller.
    assert ENDPOINT not in response.body["message"]
    assert ACCOUNT not in response.body["message"]


@pytest.mark.parametrize(
    "exc",
    [
        ReadTimeoutError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com"),
        ConnectTimeoutError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com"),
    ],
)
def test_timeouts_map_to_504(exc: Exception, invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def raise_timeout(**kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(aws.sagemaker_runtime(), "invoke_endpoint", raise_timeout)
    response = invoke(predict_handler, "predict_single")
    assert response.status == 504
    assert response.body["error"] == "Timeout"
    assert "did not answer in time" in response.body["message"]


def test_unreachable_runtime_maps_to_503(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com")

    monkeypatch.setattr(aws.sagemaker_runtime(), "invoke_endpoint", refuse)
    response = invoke(predict_handler, "predict_single")
    assert response.status == 503
    assert "retry-after" in response.headers


def test_internal_failure_maps_to_502(
    invoke: Invoke, stubber: Stubber, caplog: pytest.LogCaptureFixture
) -> None:
    client_error(stubber, "InternalFailure", f"An internal error occurred for account {ACCOUNT}", 500)
    response = invoke(predict_handler, "predict_single")
    assert response.status == 502
    assert (
        response.body["message"]
        == "the model endpoint failed; the request id above finds the cause in the function's log"
    )
    assert logged_failure(caplog, response.body["request_id"])["cause"] == (
        f"InternalFailure: An internal error occurred for account {ACCOUNT}"
    )


NEWS = list(LABELS)
SPORTS_TOO = {**prediction("health", 0.5), "scores": {**prediction("health", 0.5)["scores"], "sports": 0.0}}


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("body", "expected value at line 1 column 1"),  # moto's default reply: not JSON at all
        # The label set the reply reports is what each prediction is checked against.
        (
            answer({"label": "sports", "score": 0.9, "scores": {"sports": 0.9}}),
            "'sports' is not one of labels",
        ),
        (answer({"label": "health", "score": 1.5, "scores": {"health": 1.5}}), "predictions.0.score"),
        (
            answer({"label": "health", "score": 0.5, "scores": {"business": 0.5}}),
            "predicted label",
        ),
        (
            answer(SPORTS_TOO),
            "scores keys ['business', 'entertainment', 'health', 'science_and_technology', ",
        ),
        (answer(prediction("health", 0.5, NEWS[1:])), "scores keys ['entertainment', 'health', 'science"),
        (answer(prediction("health", 0.5), labels=[*NEWS, "health"]), "name a label twice"),
        (answer(prediction("health", 0.5), labels=["health"]), "labels\n  List should have at least 2 items"),
        (
            {"predictions": [prediction("health", 0.5)], "labels": "health"},
            "labels\n  Input should be a valid list",
        ),
        # An older reply without labels is checked against its scores' keys: one key is no model.
        ({"predictions": [{"label": "sports", "score": 0.9, "scores": {"sports": 0.9}}]}, "at least 2 items"),
        (answer(), "0 predictions for 1 texts"),
        (answer(*[prediction("health", 0.5)] * 2), "2 predictions for 1 texts"),
        ({"result": "health"}, "predictions"),
        ({"predictions": {"0": prediction("health", 0.5)}}, "predictions\n  Input should be a valid list"),
    ],
)
def test_invalid_endpoint_replies_map_to_502_and_log_what_was_wrong(
    reply: Any, fragment: str, moto: None, invoke: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    if reply != "body":
        queue_endpoint_reply(reply)
    response = invoke(predict_handler, "predict_single")
    assert response.status == 502
    assert response.body["error"] == "ModelError"
    assert response.body["message"].startswith("the model answered with ")
    assert fragment in logged_failure(caplog, response.body["request_id"])["cause"]


def test_missing_endpoint_name_is_a_configuration_503(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textclf_api.settings import get_settings

    monkeypatch.delenv("ENDPOINT_NAME")
    get_settings.cache_clear()
    response = invoke(predict_handler, "predict_single")
    assert response.status == 503
    assert response.body["error"] == "ConfigurationError"
    assert "ENDPOINT_NAME" in response.body["message"]


def test_logic_can_be_called_directly(moto: None) -> None:
    queue_endpoint_reply(answer(prediction("science_and_technology", 0.99)))
    result = predict(PredictRequest(text="New chip doubles battery life"))
    assert result.response.predictions[0].label == "science_and_technology"
    assert result.endpoint_ms >= 0.0


def test_non_ascii_headlines_travel_as_utf8(moto: None, invoke: Invoke, sent: list[dict[str, Any]]) -> None:
    queue_endpoint_reply(answer(prediction("business", 0.9)))
    event = with_body(load_event("predict_single"), {"text": "Zürich stocks rise — € gains"})
    assert invoke(predict_handler, event).status == 200
    body = sent[0]["Body"]
    assert '"Zürich stocks rise — € gains"' in body  # not \\u escapes: what the client sent
    assert payloads(sent) == [{"inputs": "Zürich stocks rise — € gains"}]


def test_endpoint_latency_is_the_invoke_time_in_ms(
    moto: None, invoke: Invoke, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from textclf_api.logic import predict as logic

    clock = iter([10.0, 10.25])  # before and after InvokeEndpoint
    monkeypatch.setattr(logic.time, "perf_counter", lambda: next(clock))
    queue_endpoint_reply(answer(prediction("health", 0.9)))
    capsys.readouterr()
    assert invoke(predict_handler, "predict_single").status == 200
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"EndpointLatency"' in line]
    assert emf[0]["EndpointLatency"] == [250.0]


@pytest.mark.parametrize(
    "body",
    [{"texts": None}, {"text": None}, {"text": "a", "texts": None}, {"text": None, "texts": ["a"]}],
    ids=str,
)
def test_an_explicit_null_is_refused_as_the_schema_says(
    body: dict[str, Any], invoke: Invoke, sent: list[dict[str, Any]]
) -> None:
    response = invoke(predict_handler, with_body(load_event("predict_single"), body))
    assert response.status == 422, response.body
    assert "exactly one of 'text'" in response.body["message"]
    assert sent == []
