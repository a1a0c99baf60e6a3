"""Run an ASGI app on uvicorn in a background thread, on a socket bound beforehand.

One uvicorn worker per server (the model lives in this process); uvloop and httptools are
used when installed (``loop="auto"``, ``http="auto"``). Signals stay with the main thread:
uvicorn only installs handlers when it runs there, so Ctrl-C reaches ``textclf serve``,
which then stops every server in order.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp, Receive

log = logging.getLogger(__name__)


class ServerThread:
    """A uvicorn server in a daemon thread: ``start()`` returns once it accepts connections."""

    def __init__(
        self,
        app: ASGIApp,
        sock: socket.socket,
        *,
        name: str,
        log_level: str = "warning",
        limit_concurrency: int | None = None,
    ) -> None:
        self.name = name
        self._sock = sock
        host, port = sock.getsockname()[:2]
        self.host = str(host)
        self.port = int(port)
        config = uvicorn.Config(
            app,
            loop="auto",
            http="auto",
            lifespan="off",
            log_level=log_level,
            access_log=False,
            # Local clients (the Lambda's boto3, the demo) keep connections open between calls.
            timeout_keep_alive=30,
            timeout_graceful_shutdown=5,
            # Connections + requests in flight beyond which uvicorn answers 503 at once.
            limit_concurrency=limit_concurrency,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{name}", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # SystemExit from uvicorn's startup failure included
            self._error = exc
            log.error("%s server stopped with an error: %r", self.name, exc)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the {self.name} server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.name} server did not start within {timeout:.0f} s")
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._server.started and not self._server.should_exit

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (open requests finish), forced after ``timeout`` seconds."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(5)
        self._sock.close()


async def read_body(receive: Receive, content_length: str | None, limit: int) -> bytes | None:
    """The request body from ASGI ``receive``, or None as soon as it passes ``limit`` bytes
    (reading stops there), so an oversized upload is refused without being held in memory."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break  # the client is gone; what follows answers nobody, so a short body is harmless
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
