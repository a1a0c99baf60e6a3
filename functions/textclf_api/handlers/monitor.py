"""The monitor function: a run per EventBridge schedule (or direct invocation: `textclf monitor
--run-now`), and the API's GET /monitor, the latest report, IAM-only (logic/monitor.py)."""

# No `from __future__ import annotations`: powertools reads the route signatures at runtime.
from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.utilities.typing import LambdaContext

from textclf_api.errors import ResourceNotFoundError
from textclf_api.handlers.error_responses import error_responses
from textclf_api.handlers.observability import logger, metrics
from textclf_api.handlers.resolver import create_app, lambda_handler_for
from textclf_api.logic import monitor
from textclf_api.openapi import IAM_AUTH
from textclf_api.schemas import MonitorReport

router = APIGatewayRouter()

_REPORT = {
    "description": "The monitor's report of one window.",
    "content": {"application/json": {"model": MonitorReport}},
}


@router.get(
    "/monitor",
    summary="The latest monitor report",
    description="Drift of the predicted labels against the serving model's baseline, confidence, "
    "novelty, live accuracy on labellers' feedback and per-labeller agreement, for the last window "
    "the scheduled monitor read. Requires IAM (SigV4) auth.",
    tags=["monitoring"],
    operation_id="getMonitorReport",
    security=IAM_AUTH,
    responses={200: _REPORT} | error_responses(404, 502, 503, 504),
)
def latest_report_route() -> MonitorReport:
    report = monitor.latest()
    if report is None:
        raise ResourceNotFoundError(
            "no monitor report yet: the monitor runs on the MonitorSchedule "
            "(`textclf monitor --run-now` runs it now)"
        )
    return report


def _run() -> MonitorReport:
    report = monitor.run()
    logger.info("monitor run", window_end=report.window.end.isoformat(), metrics=report.metrics)
    return report


app = create_app(router)
_api_handler = lambda_handler_for(app)


@logger.inject_lambda_context
@metrics.log_metrics
def _scheduled(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _run().model_dump(mode="json")


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway's proxy events go to the route; anything else (the schedule's Scheduled Event,
    `textclf monitor --run-now`'s invocation) is a run, which may take minutes: not behind the API."""
    if "httpMethod" in event:
        return _api_handler(event, context)
    return _scheduled(event, context)
