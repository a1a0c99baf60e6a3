"""The error catalogue: what each error status means and how an error becomes a response.

Every function answers errors the same way: a JSON ``ErrorResponse`` whose message names the
problem, the status the ``ApiError`` carries, ``Retry-After`` where retrying helps -- and never a
stack trace. The same table documents the statuses in the OpenAPI document (``error_responses``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from textclf_api import aws
from textclf_api.errors import ApiError
from textclf_api.handlers.observability import count_by, logger, metrics
from textclf_api.schemas import MAX_BODY_BYTES, ErrorDetail, ErrorResponse, error_body

#: What each error status means, as the OpenAPI document states it.
STATUS_DESCRIPTIONS: Final = {
    400: "The body is not valid JSON.",
    403: "No API key, or not one of the stack's (`x-api-key`), or no SigV4 signature: answered by API "
    "Gateway; on POST /feedback also a caller who is not a labeller (a predict key).",
    404: "Not found.",
    409: "A prerequisite is missing (the message names the command that creates it).",
    413: f"The body is larger than {MAX_BODY_BYTES} bytes.",
    415: "Content-Type is not application/json.",
    422: "The request does not match the schema; `details` names each bad field.",
    429: "A SageMaker quota is exhausted.",
    502: "The model or an AWS service failed.",
    503: "The endpoint is missing/not in service, or AWS is throttling; see Retry-After.",
    504: "The endpoint did not answer in time.",
}
ERROR_CONTENT: dict[str, Any] = {"application/json": {"model": ErrorResponse}}
RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}


def error_responses(*statuses: int) -> dict[int, Any]:
    """The OpenAPI ``responses`` entries of ``statuses``, for a route's ``responses=``."""
    result: dict[int, Any] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": STATUS_DESCRIPTIONS[status], "content": ERROR_CONTENT}
        if status in {429, 503}:
            entry["headers"] = RETRY_AFTER_HEADER
        result[status] = entry
    return result


def record_error(kind: str) -> None:
    """Count a failed request: ``Errors`` in total, and ``Errors`` by ``ErrorType`` (a bounded set)."""
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
    count_by("Errors", "ErrorType", kind)


def render_error(err: ApiError, request_id: str | None, details: list[ErrorDetail] | None = None) -> Response:
    status = int(err.status)
    log = logger.error if status >= 500 else logger.info
    # The cause (an AWS error message, the container's text) is for operators: it names accounts,
    # roles and internals, so it is logged with the request id and never sent.
    log(
        "request failed",
        status=status,
        error=err.error,
        detail=err.message,
        cause=aws.describe_failure(err.__cause__),
        request_id=request_id,
    )
    record_error(err.error)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(err.message, err.error, details, request_id),
        headers=err.headers(),
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "texts", 3)`` -> ``texts[3]``; ``("path", "job_name")`` -> ``job_name``."""
    parts = list(loc)
    if parts and parts[0] in {"body", "path", "query", "header"} and len(parts) > 1:
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg") or error.get("type") or "invalid")
    # pydantic prefixes messages of custom validators; the field name already says where.
    return msg.removeprefix("Value error, ")


def validation_details(errors: list[Any]) -> list[ErrorDetail]:
    """pydantic's validation errors as ``{field, message}`` pairs a caller can act on."""
    details = []
    for error in errors:
        field = _field(error.get("loc", ()))
        if field == "body" and error.get("type") == "missing":
            details.append(ErrorDetail(field=field, message="a JSON request body is required"))
        else:
            details.append(ErrorDetail(field=field, message=_message(error)))
    return details
