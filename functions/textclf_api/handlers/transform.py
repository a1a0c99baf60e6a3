"""POST /batch (score a JSON Lines file with SageMaker Batch Transform) and GET /batch/{job_name}.

Both routes require IAM (SigV4) auth at API Gateway: a transform job runs paid instances.
"""

# No `from __future__ import annotations`: powertools reads the route signatures at runtime.
from http import HTTPStatus
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from textclf_api.handlers.error_responses import error_responses
from textclf_api.handlers.observability import logger, metrics
from textclf_api.handlers.resolver import accepted, accepted_responses, create_app, lambda_handler_for
from textclf_api.logic.transform import get_transform_status, start_transform
from textclf_api.openapi import IAM_AUTH
from textclf_api.schemas import (
    TRAINING_JOB_NAME_PATTERN,
    BatchRequest,
    BatchStartedResponse,
    BatchStatusResponse,
)

router = APIGatewayRouter()


@router.post(
    "/batch",
    summary="Score a file with Batch Transform",
    description="Starts a SageMaker Batch Transform job over JSON Lines in the stack's bucket with the "
    "model the endpoint serves. Requires IAM (SigV4) auth.",
    tags=["batch"],
    operation_id="startBatch",
    status_code=HTTPStatus.ACCEPTED,
    security=IAM_AUTH,
    responses=accepted_responses(BatchStartedResponse, 400, 409, 413, 415, 422, 429, 502, 503, 504),
)
def start_transform_route(request: Annotated[BatchRequest, Body()]) -> Response[BatchStartedResponse]:
    started = start_transform(request)
    metrics.add_metric(name="BatchJobsStarted", unit=MetricUnit.Count, value=1)
    return accepted(started, f"/batch/{started.transform_job_name}")


@router.get(
    "/batch/<job_name>",
    summary="Status of a batch job",
    tags=["batch"],
    operation_id="getBatchJob",
    security=IAM_AUTH,
    responses={
        200: {
            "description": "Status, instances and output prefix of the job.",
            "content": {"application/json": {"model": BatchStatusResponse}},
        }
    }
    | error_responses(404, 422, 502, 503, 504),
)
def transform_status_route(
    job_name: Annotated[str, Path(pattern=TRAINING_JOB_NAME_PATTERN, max_length=63)],
) -> BatchStatusResponse:
    logger.append_keys(transform_job_name=job_name)  # on the request's lines, a 404's included
    return get_transform_status(job_name)


app = create_app(router)
lambda_handler = lambda_handler_for(app)
