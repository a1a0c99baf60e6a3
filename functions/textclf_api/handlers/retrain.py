"""The retrain function: a monitor alarm's change to ALARM in, at most one training job out
(logic/retrain.py)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from textclf_api.handlers.observability import logger, metrics
from textclf_api.logic.retrain import handle_event


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = handle_event(event, lambda_context=context)
    logger.info("alarm handled", **asdict(outcome))
    if outcome.action in ("started", "skipped"):
        metrics.add_metric(name=f"Retrain_{outcome.action}", unit="Count", value=1)
    return asdict(outcome)
