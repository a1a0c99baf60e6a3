"""A SageMaker-runtime-shaped HTTP server that misbehaves on demand, for fault-injection tests.

Raw asyncio rather than a framework: the faults (closing mid-response, answering bytes that are
not HTTP, never answering) are below what an ASGI app can express. ``mode`` switches behaviour
between requests; ``kill()`` closes the listening socket (connections are then refused).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

from textclf.labels import LABELS

MODES = ("ok", "garbage", "close", "slow", "error-with-internals")
SLOW_S = 15.0  # past the runtime client's 9 s read timeout
INTERNALS = (
    'Traceback (most recent call last):\n  File "/opt/ml/model/code/inference.py", line 12\n'
    "RecursionError: arn:aws:iam::123456789012:role/textclf-serving"
)


def _prediction(label: str) -> dict[str, Any]:
    rest = 0.1 / (len(LABELS) - 1)
    return {"label": label, "score": 0.9, "scores": {name: 0.9 if name == label else rest for name in LABELS}}


def _response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


class FaultEndpoint:
    def __init__(self) -> None:
        self.mode = "ok"
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="fault-endpoint")

    def start(self) -> FaultEndpoint:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, sock=self._sock)

    def kill(self) -> None:
        """Stop listening and drop open connections: the endpoint's host is gone."""

        async def close() -> None:
            assert self._server is not None
            self._server.close()
            if hasattr(self._server, "close_clients"):
                self._server.close_clients()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)

    def stop(self) -> None:
        """Close the server, cancel the handlers still running (a stalled reply), end the loop."""

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if not await self._answer(method, path, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _answer(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Write the reply for the current mode; False when the connection must end."""
        if path == "/ping":
            writer.write(_response(200, b""))
            await writer.drain()
            return True
        mode = self.mode
        if mode == "close":
            writer.write(
                b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{"pred'
            )
            await writer.drain()
            return False
        if mode == "garbage":
            writer.write(_response(200, b"<html>upstream says hi</html>", "text/html"))
        elif mode == "error-with-internals":
            writer.write(_response(500, json.dumps({"message": INTERNALS}).encode()))
        else:
            if mode == "slow":
                await asyncio.sleep(SLOW_S)
            inputs = json.loads(body or b"{}").get("inputs", [])
            texts = inputs if isinstance(inputs, list) else [inputs]
            reply = {"predictions": [_prediction(LABELS[0]) for _ in texts], "model_version": "fault-test"}
            writer.write(_response(200, json.dumps(reply).encode()))
        await writer.drain()
        return True
