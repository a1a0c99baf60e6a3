"""POST /feedback: the right labels of earlier predictions, from labellers only (a separate authority)."""

# No `from __future__ import annotations`: powertools reads the route signatures at runtime.
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from textclf_api.handlers.error_responses import error_responses
from textclf_api.handlers.observability import logger, metrics
from textclf_api.handlers.resolver import create_app, lambda_handler_for
from textclf_api.logic.feedback import authorize, labeller_of, record_feedback
from textclf_api.openapi import API_KEY_AUTH, IAM_AUTH
from textclf_api.schemas import FeedbackRequest, FeedbackResponse
from textclf_api.settings import get_settings

router = APIGatewayRouter()


@router.post(
    "/feedback",
    summary="Send the right labels of earlier predictions",
    description="1-1,000 `{prediction_id, label}` items; each label must be one of the served model's "
    "`labels`. Ids the capture never saw are accepted; an id sent twice keeps its last label. Only "
    "labellers may call it: an IAM principal (FeedbackAuth AWS_IAM, the default) or a key of the "
    "labellers usage plan (FeedbackAuth API_KEY); a predict key is refused with 403. Each labeller may "
    "post at most FeedbackDailyCap items per UTC day: a request past it is refused whole (429, "
    "Retry-After until midnight UTC).",
    tags=["feedback"],
    operation_id="feedback",
    security=[*IAM_AUTH, *API_KEY_AUTH],
    responses={
        200: {
            "description": "Stored: one ground-truth line per distinct prediction id.",
            "content": {"application/json": {"model": FeedbackResponse}},
        }
    }
    | error_responses(400, 403, 413, 415, 422, 429, 502, 503, 504),
)
def feedback_route(request: Annotated[FeedbackRequest, Body()]) -> FeedbackResponse:
    labeller = labeller_of(router.current_event.raw_event, get_settings())
    response = record_feedback(request, labeller)
    metrics.add_metric(name="FeedbackLabels", unit=MetricUnit.Count, value=response.accepted)
    logger.info(
        "feedback stored",
        accepted=response.accepted,
        duplicates_in_request=response.duplicates_in_request,
        labeller=labeller,
    )
    return response


app = create_app(router)
lambda_handler = lambda_handler_for(app, authorize)
