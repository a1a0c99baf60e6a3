"""GET /health (200 when the SageMaker endpoint is InService, 503 otherwise) and GET / (the
playground page: public like /health, it holds no data; its calls carry the user's key)."""

# No `from __future__ import annotations`: powertools reads the route signatures at runtime.
from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from textclf_api.handlers.error_responses import RETRY_AFTER_HEADER
from textclf_api.handlers.observability import logger, metrics
from textclf_api.handlers.resolver import create_app, lambda_handler_for
from textclf_api.logic.health import check_health
from textclf_api.logic.page import playground
from textclf_api.schemas import HealthResponse
from textclf_api.settings import get_settings

router = APIGatewayRouter()


@router.get(
    "/health",
    summary="Endpoint health",
    tags=["health"],
    operation_id="health",
    responses={
        200: {
            "description": "The endpoint is InService.",
            "content": {"application/json": {"model": HealthResponse}},
        },
        503: {
            "description": "The endpoint is missing, creating, updating or failed (`status`: unavailable).",
            "content": {"application/json": {"model": HealthResponse}},
            "headers": RETRY_AFTER_HEADER,
        },
    },
)
def health_route() -> Response[HealthResponse]:
    health = check_health()
    healthy = health.status == "ok"
    # 1/0 per check: an alarm on its minimum catches an endpoint that stops being InService.
    metrics.add_metric(name="EndpointInService", unit=MetricUnit.Count, value=1 if healthy else 0)
    if not healthy:
        logger.warning("endpoint unavailable", endpoint=health.endpoint.name, state=health.endpoint.status)
    return Response(
        status_code=HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE,
        content_type=content_types.APPLICATION_JSON,
        body=health,
        headers={} if healthy else {"Retry-After": str(get_settings().retry_after_seconds)},
    )


@router.get("/", include_in_schema=False)
def playground_route() -> Response[str]:
    html, headers = playground()
    return Response(
        status_code=HTTPStatus.OK, content_type="text/html; charset=utf-8", body=html, headers=headers
    )


app = create_app(router)
lambda_handler = lambda_handler_for(app)
