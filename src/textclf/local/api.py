"""The local API Gateway: an ASGI app that invokes the Lambda handlers in-process.

Each request becomes the REST proxy event (``apigw.build_event``), goes to the handler named
by the template's route, and the handler's result becomes the HTTP response.

Concurrency: a powertools ``APIGatewayRestResolver`` keeps the current event on a module-level
object, so one handler module must never run two events at once — exactly like one Lambda
execution environment. Each function therefore has a lock (one warm instance per function);
handlers run in worker threads so the event loop keeps accepting requests meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from textclf.local import apigw
from textclf.local.functions import LocalFunction
from textclf.local.servers import read_body
from textclf.local.template import GatewayResponse, Route

log = logging.getLogger(__name__)

#: API Gateway's integration timeout for REST APIs.
API_GATEWAY_TIMEOUT_S = 29.0


class LocalApiGateway:
    """Routes, limits and the handler invocation; ``app`` is the ASGI application."""

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        stage: str,
        region: str,
        gateway_responses: Mapping[str, GatewayResponse] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.gateway_responses = dict(gateway_responses or {})
        self.stage = stage
        self.region = region
        self.functions: dict[str, LocalFunction] = {}
        for route in self.routes:
            self.functions.setdefault(
                route.function, LocalFunction(route.function, route.handler, route.timeout_s, route.memory_mb)
            )
        self.app = Starlette(
            routes=[
                StarletteRoute(
                    "/{path:path}",
                    self.handle,
                    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                )
            ]
        )

    def warm_up(self) -> None:
        """Import every handler now (Lambda init), so a broken import fails at start, not per call."""
        for function in self.functions.values():
            function.handler()

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
        try:
            result = await asyncio.wait_for(
                anyio.to_thread.run_sync(function.invoke, event, context, abandon_on_cancel=True),
                timeout,
            )
        except TimeoutError:
            log.error("%s did not answer within %.0f s", function.name, timeout)
            return self._error("INTEGRATION_TIMEOUT", request_id)
        except Exception:
            # A handler that raises is a Lambda "Unhandled" error: API Gateway answers 502.
            log.exception("%s raised", function.name)
            return self._error("DEFAULT_5XX", request_id)
        response = apigw.http_response(result)
        if response is None:
            log.error("%s returned a malformed proxy result: %.200r", function.name, result)
            return self._error("DEFAULT_5XX", request_id)
        return response

    def _error(self, response_type: str, request_id: str) -> apigw.HttpResponse:
        return apigw.gateway_error(response_type, request_id=request_id, responses=self.gateway_responses)


def _header_dict(result: apigw.HttpResponse) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in result.headers:
        # Starlette takes a mapping; repeated headers are joined as HTTP allows.
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers
