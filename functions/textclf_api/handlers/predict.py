"""POST /predict (classify one headline or a batch of up to 64) and POST /explain (one headline,
with the tokens, attributions and n-grams behind the answer)."""

# No `from __future__ import annotations`: powertools reads the route signatures at runtime.
from collections import Counter
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from textclf_api.handlers.error_responses import error_responses
from textclf_api.handlers.observability import count_by, logger, metrics
from textclf_api.handlers.resolver import create_app, lambda_handler_for
from textclf_api.logic.predict import explain, predict
from textclf_api.openapi import API_KEY_AUTH
from textclf_api.schemas import ExplainRequest, ExplainResponse, PredictRequest, PredictResponse

router = APIGatewayRouter()


@router.post(
    "/predict",
    summary="Classify headlines",
    description="Send `text` (one headline) or `texts` (1-64 headlines); one prediction per input, in order.",
    tags=["predict"],
    operation_id="predict",
    security=API_KEY_AUTH,
    responses={
        200: {
            "description": "One prediction per input, in input order.",
            "content": {"application/json": {"model": PredictResponse}},
        }
    }
    | error_responses(400, 403, 413, 415, 422, 502, 503, 504),
)
def predict_route(request: Annotated[PredictRequest, Body()]) -> PredictResponse:
    result = predict(request)
    metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=result.endpoint_ms)
    counts: Counter[str] = Counter(p.label for p in result.response.predictions)
    # One metric per label the served model has, dimensioned by label, so dashboards can plot the
    # predicted mix; labels nothing was predicted as are not emitted (a zero is no data point).
    for label in result.response.labels:
        if counts[label]:
            count_by("Predictions", "Label", label, counts[label])
    logger.info(
        "predicted",
        texts=request.count(),
        endpoint_ms=round(result.endpoint_ms, 1),
        inference_id=result.inference_id,
    )
    return result.response


@router.post(
    "/explain",
    summary="Classify one headline and explain the answer",
    description="The prediction `/predict` gives for `text`, with the tokens the transformer saw, each "
    "token's occlusion attribution toward the label, and the lexical head's n-grams for and against it.",
    tags=["predict"],
    operation_id="explain",
    security=API_KEY_AUTH,
    responses={
        200: {
            "description": "The prediction and what it rests on.",
            "content": {"application/json": {"model": ExplainResponse}},
        }
    }
    | error_responses(400, 403, 413, 415, 422, 502, 503, 504),
)
def explain_route(request: Annotated[ExplainRequest, Body()]) -> ExplainResponse:
    result = explain(request)
    metrics.add_metric(name="ExplainLatency", unit=MetricUnit.Milliseconds, value=result.endpoint_ms)
    logger.info(
        "explained",
        tokens=len(result.response.tokens),
        endpoint_ms=round(result.endpoint_ms, 1),
        inference_id=result.inference_id,
    )
    return result.response


app = create_app(router)
lambda_handler = lambda_handler_for(app)
