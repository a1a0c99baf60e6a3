"""Classify headlines through the SageMaker endpoint.

The endpoint (``model/inference.py``) takes ``{"inputs": str | [str, ...]}`` and answers exactly the
API's 200 body, so its reply is validated with the same :class:`PredictResponse` the API documents:
a reply that does not fit (a label outside the set it reports, scores keyed otherwise, the wrong
count) is the model's fault and maps to 502, never passed on to clients.

No label set is compiled in here: the served model reports its own (``labels``, its ``id2label`` in
class-id order), so a model trained on other labels serves through the same code.

Every request gets an inference id (a uuid4 in hex), sent to InvokeEndpoint as ``InferenceId`` so
the endpoint's data capture records it; each prediction of the answer is named
``<inference id>-<index>`` (``prediction_id``), which is what POST /feedback takes.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Final, TypeVar

from botocore.exceptions import ClientError
from pydantic_core import from_json

from textclf_api import aws
from textclf_api.errors import ApiError, ModelFailedError, ServiceUnavailableError
from textclf_api.schemas import ExplainRequest, ExplainResponse, PredictRequest, PredictResponse
from textclf_api.settings import Settings, get_settings

Reply = TypeVar("Reply", PredictResponse, ExplainResponse)

# What clients call the endpoint: its name and account are internals.
ENDPOINT = "the model endpoint"


@dataclass(frozen=True)
class PredictResult:
    response: PredictResponse
    endpoint_ms: float
    inference_id: str = ""


@dataclass(frozen=True)
class ExplainResult:
    response: ExplainResponse
    endpoint_ms: float
    inference_id: str = ""


def new_inference_id() -> str:
    """One request's ``InferenceId`` (SageMaker allows 64 characters; this is 32)."""
    return uuid.uuid4().hex


def invoke(payload: dict[str, object], settings: Settings, inference_id: str) -> tuple[bytes, float]:
    """The endpoint's reply to ``payload`` and how long it took (ms); failures mapped to 4xx/5xx."""
    endpoint = settings.require("endpoint_name")
    started = time.perf_counter()
    try:
        reply = aws.sagemaker_runtime().invoke_endpoint(
            EndpointName=endpoint,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            InferenceId=inference_id,
        )
        body = aws.response_body(reply)
    except Exception as exc:  # boto3 raises ClientError / BotoCoreError subclasses; all are mapped
        raise _endpoint_failure(exc, endpoint, settings.retry_after_seconds) from exc
    return body, (time.perf_counter() - started) * 1000.0


def explain(request: ExplainRequest, settings: Settings | None = None) -> ExplainResult:
    """The endpoint's explanation of one headline (``inference.py``'s explain request), checked
    against the schema the API documents: a reply that does not fit is the model's fault (502)."""
    inference_id = new_inference_id()
    payload = {"inputs": request.text, "explain": True}
    body, endpoint_ms = invoke(payload, settings or get_settings(), inference_id)
    try:
        response = read_reply(body, ExplainResponse, inference_id)
    except ValueError as exc:  # not JSON, or pydantic's ValidationError (a ValueError)
        raise ModelFailedError("the model answered with an invalid explanation") from exc
    return ExplainResult(response=response, endpoint_ms=endpoint_ms, inference_id=inference_id)


def predict(request: PredictRequest, settings: Settings | None = None) -> PredictResult:
    inference_id = new_inference_id()
    body, endpoint_ms = invoke({"inputs": request.inputs()}, settings or get_settings(), inference_id)
    try:
        response = read_reply(body, PredictResponse, inference_id)
    except ValueError as exc:  # not JSON, or pydantic's ValidationError (a ValueError)
        raise ModelFailedError("the model answered with an invalid prediction response") from exc
    if len(response.predictions) != request.count():
        raise ModelFailedError("the model answered with the wrong number of predictions") from ValueError(
            f"{len(response.predictions)} predictions for {request.count()} texts"
        )
    return PredictResult(response=response, endpoint_ms=endpoint_ms, inference_id=inference_id)


def read_reply(body: bytes, model: type[Reply], inference_id: str) -> Reply:
    """The endpoint's JSON reply as ``model``, checked against the label set it reports, each
    prediction named ``<inference_id>-<index>`` (the endpoint does not name them).

    A reply from a model archived before replies carried ``labels`` is checked against its own
    scores' keys (the first answer's, in the order the model wrote them: class-id order) and
    answered with them as ``labels``. Raises ValueError (not JSON) or pydantic's ValidationError.
    """
    reply = from_json(body)
    _name_predictions(reply, model, inference_id)
    if isinstance(reply, dict) and "labels" not in reply:
        predictions = reply.get("predictions")
        first_prediction = predictions[0] if isinstance(predictions, list) and predictions else None
        first = reply if model is ExplainResponse else first_prediction
        scores = first.get("scores") if isinstance(first, dict) else None
        if isinstance(scores, dict):
            reply["labels"] = list(scores)
    return model.model_validate(reply)


def _name_predictions(
    reply: object, model: type[PredictResponse | ExplainResponse], inference_id: str
) -> None:
    if not isinstance(reply, dict):
        return  # not a reply; validation says so
    if model is ExplainResponse:
        reply["prediction_id"] = f"{inference_id}-0"
        return
    predictions = reply.get("predictions")
    for index, prediction in enumerate(predictions if isinstance(predictions, list) else []):
        if isinstance(prediction, dict):
            prediction["prediction_id"] = f"{inference_id}-{index}"


#: A model container's statuses that mean "full, retry later" (OriginalStatusCode of a ModelError).
SHED_STATUSES: Final = frozenset({429, 503})


def _endpoint_failure(exc: Exception, endpoint: str, retry_after: int) -> ApiError:
    if isinstance(exc, ClientError):
        code = aws.error_code(exc)
        if code == "ModelError" and exc.response.get("OriginalStatusCode") in SHED_STATUSES:
            # The container refused for load, not for the request: the DLC's model server answers
            # 503 once its job queue is full, and SageMaker passes that on as a ModelError.
            return ServiceUnavailableError(
                f"{ENDPOINT} is at capacity; try again later", retry_after=retry_after
            )
        if code == "ModelError":
            # The container raised (HTTP 424 from SageMaker): the request was valid, the model
            # failed. Its own text (OriginalMessage) is logged via the cause, not shown.
            return ModelFailedError("the model failed to classify the request")
        if code == "ModelNotReadyException":
            return ServiceUnavailableError(
                f"{ENDPOINT} is not ready yet; try again later", retry_after=retry_after
            )
        if (
            code in {"ValidationError", "ValidationException"}
            and "endpoint" in aws.error_message(exc).lower()
        ):
            # InvokeEndpoint's answer for an endpoint that does not exist or is not InService.
            return ServiceUnavailableError(
                f"{ENDPOINT} is not in service; try again later", retry_after=retry_after
            )
    return aws.translate(exc, ENDPOINT, retry_after)
