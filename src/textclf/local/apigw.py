"""API Gateway REST proxy integration, locally: HTTP request → Lambda event → HTTP response.

The event has the shape API Gateway sends to a Lambda proxy integration (payload format 1.0,
the shape of ``events/*.json``), so the handlers cannot tell the local stack from AWS. The
response mapping follows API Gateway too: ``statusCode``/``headers``/``multiValueHeaders``/
``body``/``isBase64Encoded``; anything else (an exception, a malformed result) becomes
API Gateway's ``502 Internal server error``. API Gateway's own errors take the shape the
template's ``GatewayResponses`` give them, as deployed.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from textclf.local import LOCAL_ACCOUNT_ID
from textclf.local.template import GatewayResponse, Route

#: API Gateway REST payload limit (10 MB); larger requests never reach the function.
MAX_API_PAYLOAD_BYTES = 10 * 1024 * 1024
#: Lambda synchronous invocation payload limit (6 MB) for the whole event.
MAX_LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024

LOCAL_API_ID = "local"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


#: API Gateway's own answers: response type → (status, default message).
GATEWAY_ERRORS: dict[str, tuple[int, str]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    # No or another x-api-key on a method that requires one.
    "INVALID_API_KEY": (403, "Forbidden"),
    # The local stand-in for Lambda refusing an invocation (every instance busy): retry shortly.
    "FUNCTION_BUSY": (503, "Service Unavailable: the function is at capacity; retry shortly"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    # A function error or a malformed proxy result.
    "DEFAULT_5XX": (502, "Internal server error"),
}
_ERROR_TYPE_HEADER = {
    "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    "INVALID_API_KEY": "ForbiddenException",
}


def gateway_error(
    response_type: str,
    *,
    request_id: str,
    responses: Mapping[str, GatewayResponse] | None = None,
) -> HttpResponse:
    """An error API Gateway produces itself, shaped by the template's ``GatewayResponses``
    (specific type first, then ``DEFAULT_4XX``/``DEFAULT_5XX``), else API Gateway's default
    ``{"message": ...}``."""
    status, message = GATEWAY_ERRORS[response_type]
    responses = responses or {}
    custom = responses.get(response_type) or responses.get("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX")
    headers = [("Content-Type", "application/json")]
    if response_type in _ERROR_TYPE_HEADER:
        headers.append(("x-amzn-ErrorType", _ERROR_TYPE_HEADER[response_type]))
    if status == 503:
        headers.append(("Retry-After", "1"))
    body = json.dumps({"message": message})
    if custom is not None:
        rendered = custom.render(message=message, response_type=response_type, request_id=request_id)
        body = rendered if rendered is not None else body
        headers.extend(custom.headers.items())
    return HttpResponse(status, headers, body.encode("utf-8"))


def find_route(routes: Iterable[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for ``method path``. API Gateway REST answers an unknown path or method with
    ``403 Missing Authentication Token``; the caller mimics that when this returns None."""
    for route in routes:
        if route.method not in (method, "ANY"):
            continue
        params = route.match(path)
        if params is not None:
            return route, params
    return None


def _single_and_multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value  # API Gateway keeps the last value in the single-value map
        multi.setdefault(name, []).append(value)
    return single, multi


def build_event(
    *,
    route: Route,
    path_parameters: Mapping[str, str],
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]],
    query: Iterable[tuple[str, str]],
    body: bytes,
    stage: str,
    source_ip: str,
    request_id: str | None = None,
    now: float | None = None,
    api_key: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The REST API proxy event for one request (keys and nesting as in ``events/*.json``).
    ``api_key``: (value, id) of the key a keyed method was called with, which API Gateway names
    in ``requestContext.identity``."""
    now = time.time() if now is None else now
    request_id = request_id or str(uuid.uuid4())
    header_single, header_multi = _single_and_multi(headers)
    query_single, query_multi = _single_and_multi(query)
    user_agent = next((v for k, v in header_single.items() if k.lower() == "user-agent"), None)
    host = next((v for k, v in header_single.items() if k.lower() == "host"), "localhost")
    if body:
        try:
            body_text: str | None = body.decode("utf-8")
            is_base64 = False
        except UnicodeDecodeError:
            # Not text: API Gateway hands binary payloads over base64-encoded.
            body_text = base64.b64encode(body).decode("ascii")
            is_base64 = True
    else:
        body_text, is_base64 = None, False
    stamp = datetime.fromtimestamp(now, tz=UTC)
    identity: dict[str, Any] = {
        "cognitoIdentityPoolId": None,
        "accountId": None,
        "cognitoIdentityId": None,
        "caller": None,
        "sourceIp": source_ip,
        "principalOrgId": None,
        "accessKey": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": None,
        "userAgent": user_agent,
        "user": None,
    }
    if api_key is not None:
        identity |= {"apiKey": api_key[0], "apiKeyId": api_key[1]}
    return {
        "resource": route.path,
        "path": path,
        "httpMethod": method,
        "headers": header_single or None,
        "multiValueHeaders": header_multi or None,
        "queryStringParameters": query_single or None,
        "multiValueQueryStringParameters": query_multi or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": stamp.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": LOCAL_ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "requestTimeEpoch": int(now * 1000),
            "requestId": request_id,
            "identity": identity,
            "domainName": host,
            "apiId": LOCAL_API_ID,
        },
        "body": body_text,
        "isBase64Encoded": is_base64,
    }


def http_response(result: Any) -> HttpResponse | None:
    """Map a proxy integration result to HTTP as API Gateway does; None when it is malformed
    (API Gateway then answers 502 Internal server error)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return None
    try:
        status = int(result["statusCode"])
        if not 100 <= status <= 599:
            raise ValueError(status)
        headers: list[tuple[str, str]] = [
            (str(k), str(v)) for k, v in (result.get("headers") or {}).items() if v is not None
        ]
        single_names = {k.lower() for k, _ in headers}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            if str(name).lower() in single_names:
                continue  # API Gateway: the single-value header wins when both are set
            headers.extend((str(name), str(v)) for v in values or [])
        raw = result.get("body")
        if raw is None:
            body = b""
        elif result.get("isBase64Encoded"):
            body = base64.b64decode(str(raw))
        else:
            body = str(raw).encode("utf-8")
    except (TypeError, ValueError, AttributeError):
        return None
    return HttpResponse(status, headers, body)


class LambdaContext:
    """The context object a Python Lambda handler receives (what powertools reads from it)."""

    def __init__(
        self, *, function_name: str, timeout_s: float, memory_mb: int, region: str, request_id: str
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{datetime.now(tz=UTC):%Y/%m/%d}/[$LATEST]local"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
