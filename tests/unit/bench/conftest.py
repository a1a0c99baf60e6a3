"""Fixtures for the bench tests: a tiny ASGI server on loopback with known behaviour per body."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class CountingServer:
    """Answers by body: ``ok`` 200, ``fail`` 500, ``slow`` 200 after 50 ms, ``hang`` only when the
    fixture stops (at most 30 s), ``stream`` 200 chunked, ``close`` 200 with ``Connection: close``.
    Counts what it received, and ``hanging`` is how many ``hang`` requests it still holds."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.hanging = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.app = Starlette(routes=[Route("/invocations", self.invocations, methods=["POST"])])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(
            self.app, lifespan="off", log_level="error", access_log=False, timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/invocations"

    async def invocations(self, request: Request) -> Response:
        kind = (await request.body()).decode()
        with self._lock:
            self.received[kind] += 1
        if kind == "fail":
            return JSONResponse({"message": "boom"}, status_code=500)
        if kind == "slow":
            await asyncio.sleep(0.05)
        if kind == "hang":
            # Hangs until the fixture stops, then answers: a handler cancelled by uvicorn's
            # shutdown would print a traceback into every test run's output. The 30 s cap only
            # bounds a broken client's test; a working one gives up long before.
            with self._lock:
                self.hanging += 1
            hang_until = time.monotonic() + 30
            while not self._stopping.is_set() and time.monotonic() < hang_until:
                await asyncio.sleep(0.02)
            with self._lock:
                self.hanging -= 1
        if kind == "stream":

            async def chunks() -> object:
                for part in (b'{"predictions"', b": []}"):
                    yield part

            return StreamingResponse(chunks(), media_type="application/json")
        if kind == "close":
            return JSONResponse({"predictions": []}, headers={"Connection": "close"})
        return JSONResponse({"predictions": [{"label": "business"}]})

    def start(self) -> CountingServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer().start()
    try:
        yield server
    finally:
        server.stop()
