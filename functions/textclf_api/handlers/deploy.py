"""The deploy function: EventBridge events of SageMaker in, gated rollouts out (logic/deployment.py).

It also serves the stack's ``Custom::EndpointTeardown`` resource: the endpoint is created by this
function, not by CloudFormation, so deleting the stack would otherwise leave it running (and
billing). On the resource's Delete, the endpoint is deleted.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from textclf_api.handlers.observability import logger, metrics
from textclf_api.logic.deployment import handle_event, teardown
from textclf_api.settings import get_settings

#: CloudFormation waits for the response document; an unanswered custom resource hangs the stack
#: for an hour, so the answer is sent even when the work failed.
_CFN_TIMEOUT_S = 10


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "RequestType" in event and "ResponseURL" in event:
        return custom_resource(event, context)
    outcome = handle_event(event)
    logger.info("event handled", **asdict(outcome))
    if outcome.action in ("deploying", "rejected", "deployed", "failed", "rolled_back"):
        metrics.add_metric(name=f"Deploy_{outcome.action}", unit="Count", value=1)
    return asdict(outcome)


def custom_resource(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """``Custom::EndpointTeardown``: nothing on Create/Update, delete the endpoint on Delete."""
    status, reason, done = "SUCCESS", "", []
    if event["RequestType"] == "Delete":
        try:
            done = teardown(get_settings().require("endpoint_name"))
        except Exception as exc:  # report it: a stack must not hang on a failed teardown
            logger.exception("endpoint teardown failed")
            status, reason = "FAILED", f"endpoint teardown failed: {type(exc).__name__}: {exc}"[:500]
    body = {
        "Status": status,
        "Reason": reason or f"see CloudWatch log stream {getattr(context, 'log_stream_name', '')}",
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"{event['LogicalResourceId']}-teardown",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": {"Done": "; ".join(done)},
    }
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=data, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=_CFN_TIMEOUT_S):
        pass
    return body
