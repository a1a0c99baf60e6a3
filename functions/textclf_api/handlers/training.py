"""POST /train (start a SageMaker training job) and GET /train/{job_name} (its status).

Both routes require IAM (SigV4) auth at API Gateway: starting GPU jobs costs money.
"""

# No `from __future__ import annotations`: powertools reads the route signatures at runtime.
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from textclf_api.handlers.error_responses import error_responses
from textclf_api.handlers.observability import metrics, tracer
from textclf_api.handlers.resolver import accepted, accepted_responses, create_app, lambda_handler_for
from textclf_api.logic.training import get_training_status, start_training_once
from textclf_api.openapi import IAM_AUTH
from textclf_api.schemas import (
    TRAINING_JOB_NAME_PATTERN,
    TrainRequest,
    TrainStartedResponse,
    TrainStatusResponse,
)

router = APIGatewayRouter()


@router.post(
    "/train",
    summary="Start a training job",
    description="Starts a SageMaker training job on the latest dataset. Requires IAM (SigV4) auth.",
    tags=["training"],
    operation_id="startTraining",
    status_code=HTTPStatus.ACCEPTED,
    security=IAM_AUTH,
    responses=accepted_responses(TrainStartedResponse, 400, 409, 413, 415, 422, 429, 502, 503, 504),
)
@tracer.capture_method
def start_training_route(
    request: Annotated[TrainRequest | None, Body()] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="The same key and body within 24 h return the job the first request started.",
        ),
    ] = None,
) -> Response[TrainStartedResponse]:
    started = start_training_once(
        request or TrainRequest(), idempotency_key, lambda_context=app.lambda_context
    )
    metrics.add_metric(name="TrainingJobsStarted", unit=MetricUnit.Count, value=1)
    tracer.put_annotation(key="training_job_name", value=started.training_job_name)
    return accepted(started, f"/train/{started.training_job_name}")


@router.get(
    "/train/<job_name>",
    summary="Status of a training job",
    tags=["training"],
    operation_id="getTrainingJob",
    security=IAM_AUTH,
    responses={
        200: {
            "description": "Status, final metrics and model artefact of the job.",
            "content": {"application/json": {"model": TrainStatusResponse}},
        }
    }
    | error_responses(404, 422, 502, 503, 504),
)
@tracer.capture_method
def training_status_route(
    job_name: Annotated[str, Path(pattern=TRAINING_JOB_NAME_PATTERN, max_length=63)],
) -> TrainStatusResponse:
    return get_training_status(job_name)


app = create_app(router)
lambda_handler = lambda_handler_for(app)
