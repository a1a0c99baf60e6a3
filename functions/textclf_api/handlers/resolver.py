"""The resolver factory: each function's ``APIGatewayRestResolver``, its error handlers, and the
check every request passes before powertools sees it.

Each Lambda function builds its own resolver from its ``Router`` (so it only carries its routes),
with the same exception handlers (``error_responses.render_error``). Requests that cannot be valid
(not JSON, not an object, too large, wrong media type) are answered before powertools parses them:
its body handling would otherwise accept a JSON array by taking its first element, and turn a
malformed multipart header into an unhandled exception.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from textclf_api import jsonbody
from textclf_api.errors import (
    ApiError,
    BadRequestError,
    InvalidRequestError,
    PayloadTooLargeError,
    ResourceNotFoundError,
    UnsupportedMediaTypeError,
)
from textclf_api.handlers.error_responses import (
    error_responses,
    record_error,
    render_error,
    validation_details,
)
from textclf_api.handlers.observability import logger, metrics
from textclf_api.schemas import MAX_BODY_BYTES, error_body

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
#: Why the caller of an event may not use the function (its error), or None: checked first.
Authorizer = Callable[[Mapping[str, Any]], ApiError | None]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JSON_TYPES = ("application/json",)


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


def lambda_handler_for(app: APIGatewayRestResolver, authorize: Authorizer | None = None) -> LambdaHandler:
    """The function's entry point: :func:`handle` with ``app``, logged and measured.

    Every log line of a request carries its ``route`` (``POST /train``, ``GET /batch/{job_name}``),
    and a route may add keys of its own (a job's name): the searchable fields an X-Ray annotation
    gave. ``clear_state`` drops them when the next request begins, so no request is logged with
    another's job.
    """

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        logger.append_keys(route=f"{event.get('httpMethod')} {event.get('resource')}")
        return handle(app, event, context, authorize)

    return lambda_handler


def handle(
    app: APIGatewayRestResolver,
    event: dict[str, Any],
    context: LambdaContext,
    authorize: Authorizer | None = None,
) -> dict[str, Any]:
    """Resolve ``event`` with ``app`` after ``authorize`` (a caller who may not is told so before
    anything about the body) and :func:`precheck`; the body of every ``lambda_handler``."""
    problem = (authorize(event) if authorize is not None else None) or precheck(event)
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


def accepted(body: BaseModel, location: str) -> Response[Any]:
    """202 with the started job and where to poll it."""
    return Response(
        status_code=HTTPStatus.ACCEPTED,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Location": location},
    )


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


def _request_id(event: Mapping[str, Any] | None) -> str | None:
    context = (event or {}).get("requestContext") or {}
    value = context.get("requestId") if isinstance(context, Mapping) else None
    return str(value) if value else None


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
