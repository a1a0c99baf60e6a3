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
from textclf_api.handlers.observability import logger, metrics
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
    # Every answer names its job, a replayed Idempotency-Key's too (start_training, which logs a
    # new job's start, does not run for a replay): what the request is found by in the logs.
    logger.info(
        "training job answered", training_job_name=started.training_job_name, idempotency_key=idempotency_key
    )
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
def training_status_route(
    job_name: Annotated[str, Path(pattern=TRAINING_JOB_NAME_PATTERN, max_length=63)],
) -> TrainStatusResponse:
    logger.append_keys(training_job_name=job_name)  # on the request's lines, a 404's included
    return get_training_status(job_name)


app = create_app(router)
lambda_handler = lambda_handler_for(app)
