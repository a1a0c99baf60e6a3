"""The local API Gateway: an ASGI app that invokes the Lambda handlers in-process.

Each request becomes the REST proxy event (``apigw.build_event``), goes to the handler named
by the template's route, and the handler's result becomes the HTTP response.

Concurrency: a powertools ``APIGatewayRestResolver`` keeps the current event on a module-level
object, so one handler module must never run two events at once — exactly like one Lambda
execution environment. Each function therefore has a lock (one warm instance per function);
handlers run in worker threads so the event loop keeps accepting requests meanwhile.

Back-pressure: at most ``max_waiting`` requests wait for a function; the next one is answered
``503`` + ``Retry-After`` at once instead of queueing without bound, and a request whose client
has gone by the time its turn comes is dropped, not run. API keys: a route whose template
``Auth`` requires one answers ``403 Forbidden`` without one of the stack's keys in ``x-api-key``,
as API Gateway does; like API Gateway, any of its keys passes any keyed route, and the event names
the key's id (``requestContext.identity.apiKeyId``) for the function to tell keys apart. Only
loopback ``Host`` names are served (a web page cannot reach it by DNS rebinding).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from textclf.local import apigw
from textclf.local.functions import LocalFunction
from textclf.local.template import GatewayResponse, Route
from textclf.serving.servers import read_body

log = logging.getLogger(__name__)

#: API Gateway's integration timeout for REST APIs.
API_GATEWAY_TIMEOUT_S = 29.0
#: Requests that may wait for one function before the next is refused with 503 (one is running).
DEFAULT_MAX_WAITING = 16
#: Host names the local API answers to (with any port).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class LocalApiGateway:
    """Routes, limits and the handler invocation; ``app`` is the ASGI application."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        stage: str,
        region: str,
        gateway_responses: Mapping[str, GatewayResponse] | None = None,
        api_keys: Mapping[str, str] | None = None,
        max_waiting: int = DEFAULT_MAX_WAITING,
        allowed_hosts: Sequence[str] = LOOPBACK_HOSTS,
    ) -> None:
        self.routes = list(routes)
        #: key value -> key id, every usage plan's keys together (API Gateway: any plan of the stage).
        self.api_keys = dict(api_keys or {})
        self.max_waiting = max_waiting
        self._waiting: dict[str, int] = {}
        self._instances: dict[str, asyncio.Lock] = {}  # made in the server's event loop
        self.gateway_responses = dict(gateway_responses or {})
        self.stage = stage
        self.region = region
        self.functions: dict[str, LocalFunction] = {}
        for route in self.routes:
            self.functions.setdefault(
                route.function, LocalFunction(route.function, route.handler, route.timeout_s, route.memory_mb)
            )
        # Every path and method reaches ``handle`` (a router default, not a route pattern: a
        # pattern would leave paths with encoded newlines to Starlette's plain-text 404); API
        # Gateway's own answers for unknown routes come from ``apigw.find_route``.
        self.app = Starlette(
            middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))]
        )
        self.app.router.default = self._asgi

    def warm_up(self) -> None:
        """Import every handler now (Lambda init), so a broken import fails at start, not per call."""
        for function in self.functions.values():
            function.handler()

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        result = await self._dispatch(request, request_id)
        log.info(
            "%s %s -> %d (%.1f ms)",
            request.method,
            request.url.path,
            result.status,
            (time.perf_counter() - started) * 1000,
        )
        headers = _header_dict(result)
        headers.setdefault("x-amzn-RequestId", request_id)
        return Response(content=result.body, status_code=result.status, headers=headers)

    async def _dispatch(self, request: Request, request_id: str) -> apigw.HttpResponse:
        body = await read_body(
            request.receive, request.headers.get("content-length"), apigw.MAX_API_PAYLOAD_BYTES
        )
        if body is None:
            return self._error("REQUEST_TOO_LARGE", request_id)
        found = apigw.find_route(self.routes, request.method, request.url.path)
        if found is None:
            return self._error("MISSING_AUTHENTICATION_TOKEN", request_id)
        route, path_parameters = found
        key = self._key(request.headers.get("x-api-key")) if route.api_key_required else None
        if route.api_key_required and key is None:
            return self._error("INVALID_API_KEY", request_id)
        event = apigw.build_event(
            route=route,
            path_parameters=path_parameters,
            method=request.method,
            path=request.url.path,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            query=list(request.query_params.multi_items()),
            body=body,
            stage=self.stage,
            source_ip=request.client.host if request.client else "127.0.0.1",
            request_id=request_id,
            api_key=key,
        )
        if len(body) > apigw.MAX_LAMBDA_PAYLOAD_BYTES:
            # The event cannot be handed to Lambda (6 MB invoke limit); refuse it as too large.
            return self._error("REQUEST_TOO_LARGE", request_id)
        function = self.functions[route.function]
        context = apigw.LambdaContext(
            function_name=function.name,
            timeout_s=function.timeout_s,
            memory_mb=function.memory_mb,
            region=self.region,
            request_id=request_id,
        )
        timeout = min(function.timeout_s, API_GATEWAY_TIMEOUT_S)
        waiting = self._waiting.get(function.name, 0)
        if waiting > self.max_waiting:
            log.warning("%s: %d requests already waiting; refusing", function.name, waiting)
            return self._error("FUNCTION_BUSY", request_id)
        self._waiting[function.name] = waiting + 1
        answered = asyncio.Event()  # set once the client has its answer (a timeout included)
        task = asyncio.ensure_future(self._invoke_when_free(request, function, event, context, answered))
        try:
            # shield: on timeout the client gets 504, but a handler already running keeps its
            # instance busy until it returns, as in Lambda (threads cannot be killed).
            result = await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.error("%s did not answer within %.0f s", function.name, timeout)
            return self._error("INTEGRATION_TIMEOUT", request_id)
        except Exception:
            # A handler that raises is a Lambda "Unhandled" error: API Gateway answers 502.
            log.exception("%s raised", function.name)
            return self._error("DEFAULT_5XX", request_id)
        finally:
            answered.set()
            self._waiting[function.name] -= 1
        if result is _CLIENT_GONE:
            return self._error("DEFAULT_5XX", request_id)  # nobody reads it
        response = apigw.http_response(result)
        if response is None:
            log.error("%s returned a malformed proxy result: %.200r", function.name, result)
            return self._error("DEFAULT_5XX", request_id)
        return response

    def _key(self, sent: str | None) -> tuple[str, str] | None:
        """(value, id) of the stack's key ``sent`` is, compared in constant time; None if none."""
        if sent is None:
            return None
        found = None
        for value, key_id in self.api_keys.items():
            if hmac.compare_digest(sent.encode(), value.encode()):
                found = (value, key_id)
        return found

    async def _invoke_when_free(
        self, request: Request, function: LocalFunction, event: Any, context: Any, answered: asyncio.Event
    ) -> Any:
        """Run the handler once the function's instance is free -- unless its client has gone or
        already got its 504 meanwhile: work nobody will read is not done."""
        instance = self._instances.setdefault(function.name, asyncio.Lock())
        async with instance:
            if answered.is_set() or await request.is_disconnected():
                log.info("%s: the client is gone; request dropped before it ran", function.name)
                return _CLIENT_GONE
            return await anyio.to_thread.run_sync(function.invoke, event, context)

    def _error(self, response_type: str, request_id: str) -> apigw.HttpResponse:
        return apigw.gateway_error(response_type, request_id=request_id, responses=self.gateway_responses)


_CLIENT_GONE = object()


def _header_dict(result: apigw.HttpResponse) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in result.headers:
        # Starlette takes a mapping; repeated headers are joined as HTTP allows.
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers
