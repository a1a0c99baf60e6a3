"""What every handler shares: observability objects, the resolver factory and error rendering.

Each Lambda function builds its own ``APIGatewayRestResolver`` from its ``Router`` (so it only
carries its routes), but all of them render errors the same way: a JSON ``ErrorResponse`` whose
message names the problem, the right status, ``Retry-After`` where retrying helps -- and never a
stack trace. Requests that cannot be valid (not JSON, not an object, too large, wrong media type)
are answered before powertools parses them: its body handling would otherwise accept a JSON array
by taking its first element, and turn a malformed multipart header into an unhandled exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import warnings
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from textclf_api import aws, jsonbody
from textclf_api.errors import (
    ApiError,
    BadRequestError,
    InvalidRequestError,
    PayloadTooLargeError,
    ResourceNotFoundError,
    UnsupportedMediaTypeError,
)
from textclf_api.schemas import MAX_BODY_BYTES, ErrorDetail, ErrorResponse, error_body

# Service name, namespace and log level come from POWERTOOLS_SERVICE_NAME,
# POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_LOG_LEVEL (template.yaml Globals). The defaults equal
# the template's values so that a process importing the handlers before setting its environment
# (the local stack, the tests) still emits valid EMF instead of failing on a missing namespace.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "textclf-api"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "textclf"
# Some requests have nothing to count (GET /train/{job_name}, or a health check that failed before
# measuring); powertools would log a warning for each such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON_TYPES = ("application/json",)

# OpenAPI descriptions of the error statuses, shared by the routes' ``responses=``.
ERROR_CONTENT: dict[str, Any] = {"application/json": {"model": ErrorResponse}}
RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}


def accepted_responses(model: type[BaseModel], *errors: int) -> dict[int, Any]:
    """OpenAPI of a route that starts a job: 202 with the job and ``Location`` to poll, and ``errors``."""
    started = {
        202: {
            "description": "The job was created; poll `Location` for its status.",
            "content": {"application/json": {"model": model}},
            "headers": {
                "Location": {"description": "GET this for the job's status.", "schema": {"type": "string"}}
            },
        }
    }
    return started | error_responses(*errors)


def accepted(body: BaseModel, location: str) -> Response[Any]:
    """202 with the started job and where to poll it."""
    return Response(
        status_code=HTTPStatus.ACCEPTED,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Location": location},
    )


def error_responses(*statuses: int) -> dict[int, Any]:
    descriptions = {
        400: "The body is not valid JSON.",
        403: "No API key, or not one of the stack's (`x-api-key`); answered by API Gateway.",
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
    result: dict[int, Any] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": descriptions[status], "content": ERROR_CONTENT}
        if status in {429, 503}:
            entry["headers"] = RETRY_AFTER_HEADER
        result[status] = entry
    return result


def _request_id(event: Mapping[str, Any] | None) -> str | None:
    context = (event or {}).get("requestContext") or {}
    value = context.get("requestId") if isinstance(context, Mapping) else None
    return str(value) if value else None


def record_error(kind: str) -> None:
    """Count a failed request: ``Errors`` in total, and ``Errors`` by ``ErrorType`` (a bounded set)."""
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1)
    with single_metric(name="Errors", unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name="ErrorType", value=kind)


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
    details = []
    for error in errors:
        field = _field(error.get("loc", ()))
        if field == "body" and error.get("type") == "missing":
            details.append(ErrorDetail(field=field, message="a JSON request body is required"))
        else:
            details.append(ErrorDetail(field=field, message=_message(error)))
    return details


def create_app(*routers: APIGatewayRouter) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)

    def current_request_id() -> str | None:
        try:
            return _request_id(app.current_event.raw_event)
        except AttributeError:  # no event bound (exception before resolve)
            return None

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return render_error(BadRequestError("the request body is not valid JSON"), current_request_id())
        details = validation_details(errors)
        summary = "; ".join(f"{d.field}: {d.message}" for d in details[:5])
        return render_error(InvalidRequestError(f"invalid request: {summary}"), current_request_id(), details)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(exc: RequestUnsupportedContentType) -> Response:
        return render_error(
            UnsupportedMediaTypeError("Content-Type must be application/json"), current_request_id()
        )

    @app.exception_handler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return render_error(exc, current_request_id())

    @app.not_found
    def _not_found(exc: NotFoundError) -> Response:
        event = app.current_event
        return render_error(
            ResourceNotFoundError(f"no route {event.http_method} {event.path}"), current_request_id()
        )

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # A bug, not a request problem: log the traceback for us, show the caller only an id.
        logger.exception("unhandled error")
        record_error("InternalError")
        request_id = current_request_id()
        return Response(
            status_code=HTTPStatus.INTERNAL_SERVER_ERROR,
            content_type=content_types.APPLICATION_JSON,
            body=error_body(f"internal error (request id {request_id})", "InternalError", None, request_id),
        )

    return app


def _header(event: Mapping[str, Any], name: str) -> str | None:
    for source in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for key, value in source.items():
            if key.lower() == name:
                if isinstance(value, list):
                    return str(value[0]) if value else None
                return str(value) if value is not None else None
    return None


def precheck(event: Mapping[str, Any]) -> ApiError | None:
    """Refuse bodies no route could accept, before powertools parses them."""
    if str(event.get("httpMethod", "")).upper() not in _BODY_METHODS:
        return None
    raw = event.get("body")
    if raw is None or raw == "":
        return None  # the route decides whether a body is required
    if not isinstance(raw, str):
        return BadRequestError("the request body must be a JSON document")
    content_type = _header(event, "content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type and not (media_type in _JSON_TYPES or media_type.endswith("+json")):
        return UnsupportedMediaTypeError(
            f"Content-Type must be application/json, not {media_type!r} "
            "(curl: -H 'Content-Type: application/json')"
        )
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return BadRequestError("the request body is marked base64 but is not valid base64")
    else:
        data = raw.encode("utf-8", errors="surrogatepass")
    if len(data) > MAX_BODY_BYTES:
        return PayloadTooLargeError(f"the request body is {len(data)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        document = jsonbody.loads(data)
    except jsonbody.JsonBodyError as exc:
        return BadRequestError(str(exc))
    if not isinstance(document, dict):
        return InvalidRequestError(f"the request body must be a JSON object, not {_json_type(document)}")
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"


def handle(app: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Resolve ``event`` with ``app`` after :func:`precheck`; the body of every ``lambda_handler``."""
    problem = precheck(event)
    if problem is not None:
        response = render_error(problem, _request_id(event))
        return {
            "statusCode": response.status_code,
            "headers": {**{k: str(v) for k, v in response.headers.items()}},
            "multiValueHeaders": {},
            "body": json.dumps(response.body, separators=(",", ":")),
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)
