"""Closed-loop HTTP/1.1 load generator: lean enough not to be the bottleneck on 2 cores.

Why not httpx/aiohttp: on a 2-core machine the client shares the CPU with the server under
test, and a full-featured client spends more CPU per request than a micro-batched ONNX model.
This one keeps one keep-alive connection per virtual user, writes prebuilt request bytes and
parses only the status line and ``Content-Length`` (or chunked framing) with an
``asyncio.Protocol`` (no stream objects, no per-request task), on uvloop when installed.

Safety bounds: only loopback targets are accepted, every run stops at ``duration`` (plus one
request timeout for the requests in flight) or after ``max_requests``, whichever comes first,
and a hard deadline cancels everything if a server stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from textclf.bench.stats import LatencySummary, summarize
from textclf.errors import UserError

#: Refuse responses whose header block grows beyond this (a broken or hostile server).
_MAX_HEADER_BYTES = 64 * 1024

T = TypeVar("T")


class NonLoopbackTargetError(UserError):
    """The load generator only targets this machine (127.0.0.0/8, ::1)."""


def ensure_loopback(host: str) -> None:
    """Raise :class:`NonLoopbackTargetError` unless every address of ``host`` is loopback."""
    host = host.strip("[]")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            raise NonLoopbackTargetError(f"cannot resolve load target host {host!r}: {exc}") from exc
        # Strip an IPv6 zone id ("fe80::1%eth0") before parsing.
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses or not all(addr.is_loopback for addr in addresses):
        raise NonLoopbackTargetError(
            f"refusing to send load to {host!r}: the benchmark only targets loopback (127.0.0.1, ::1)"
        )


@dataclass(frozen=True)
class Target:
    """A parsed ``http://host:port/path`` on loopback."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise UserError(f"load target must be an http:// URL, got {url!r}")
        if not parts.hostname:
            raise UserError(f"load target has no host: {url!r}")
        ensure_loopback(parts.hostname)
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return cls(parts.hostname, parts.port or 80, path)


def build_requests(
    target: Target,
    bodies: Sequence[bytes],
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> list[bytes]:
    """Prebuilt HTTP/1.1 POST requests, one per body, so the hot loop only writes bytes."""
    if not bodies:
        raise ValueError("at least one request body is needed")
    host = f"[{target.host}]" if ":" in target.host else target.host
    head = f"POST {target.path} HTTP/1.1\r\nHost: {host}:{target.port}\r\nContent-Type: {content_type}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return [
        (head + f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode("ascii") + body
        for body in bodies
    ]


class _ProtocolError(Exception):
    """The server's answer is not a well-formed HTTP/1.1 response."""


def _parse_response(buf: bytearray) -> tuple[int, bool, int] | None:
    """(status, keep_alive, bytes consumed) when ``buf`` holds a whole response, else None."""
    header_end = buf.find(b"\r\n\r\n")
    if header_end < 0:
        if len(buf) > _MAX_HEADER_BYTES:
            raise _ProtocolError("response header block too large")
        return None
    lines = bytes(buf[:header_end]).split(b"\r\n")
    status_parts = lines[0].split(b" ", 2)
    if len(status_parts) < 2 or not status_parts[0].startswith(b"HTTP/1."):
        raise _ProtocolError(f"bad status line {lines[0][:80]!r}")
    try:
        status = int(status_parts[1])
    except ValueError as exc:
        raise _ProtocolError(f"bad status code {status_parts[1][:10]!r}") from exc
    content_length: int | None = None
    chunked = False
    keep_alive = status_parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            content_length = int(value.strip())
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            token = value.strip().lower()
            if token == b"close":
                keep_alive = False
            elif token == b"keep-alive":
                keep_alive = True
    body_start = header_end + 4
    if chunked:
        pos = body_start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # Last chunk; no trailers expected from the servers under test.
                end = line_end + 4
                return (status, keep_alive, end) if len(buf) >= end else None
            pos = line_end + 2 + size + 2
            if len(buf) < pos:
                return None
    if content_length is None:
        if status in (204, 304) or 100 <= status < 200:
            return status, keep_alive, body_start
        raise _ProtocolError("response without Content-Length or chunked framing")
    end = body_start + content_length
    return (status, keep_alive, end) if len(buf) >= end else None


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: cast, don't isinstance-check.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Small requests must leave at once; Nagle would add delay on keep-alive connections.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = _parse_response(self.buf)
        except (_ProtocolError, ValueError) as exc:
            waiter.set_exception(_ProtocolError(str(exc)))
            return
        if parsed is not None:
            status, keep_alive, consumed = parsed
            del self.buf[:consumed]
            waiter.set_result((status, keep_alive))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("server closed the connection"))

    def send(self, request: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[tuple[int, bool]]:
        assert self.transport is not None
        self.buf.clear()
        self.waiter = loop.create_future()
        self.transport.write(request)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class _State:
    """Counters shared by the virtual users of one run (one event loop: no locking needed)."""

    last_done: float
    sent: int = 0
    ok: int = 0
    next: int = 0


@dataclass
class LoadResult:
    """What one closed-loop run measured (latencies of successful requests, in seconds)."""

    url: str
    concurrency: int
    duration_s: float
    warmup_s: float
    measured_s: float
    sent: int
    ok: int
    errors: dict[str, int]
    latencies_s: list[float] = field(repr=False)
    per_second_ok: list[int] = field(repr=False)
    stopped_by: str
    client_cpu_fraction: float
    #: Wall time of the run itself, first request to last connection closed (the garbage
    #: collection before the clock starts is not in it).
    wall_s: float

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput_rps(self) -> float:
        return self.ok / self.measured_s if self.measured_s > 0 else 0.0

    def summary(self) -> LatencySummary:
        return summarize(self.latencies_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "concurrency": self.concurrency,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "measured_s": self.measured_s,
            "sent": self.sent,
            "ok": self.ok,
            "errors": dict(self.errors),
            "error_count": self.error_count,
            "throughput_rps": self.throughput_rps,
            "latency": self.summary().to_dict(),
            "stopped_by": self.stopped_by,
            "client_cpu_fraction": self.client_cpu_fraction,
            "wall_s": self.wall_s,
        }


async def run_load_async(
    url: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    duration_s: float,
    max_requests: int,
    warmup_s: float = 0.0,
    request_timeout_s: float = 10.0,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Run ``concurrency`` virtual users, each sending its next request as soon as the last ends.

    Requests that start during the first ``warmup_s`` seconds are sent but not measured. The run
    stops starting requests at ``warmup_s + duration_s`` or after ``max_requests`` (warm-up
    included), and gives up on any request after ``request_timeout_s``.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if duration_s <= 0 or max_requests < 1 or request_timeout_s <= 0 or warmup_s < 0:
        raise ValueError("duration, max_requests and request_timeout must be positive")
    target = Target.parse(url)
    requests = build_requests(target, bodies, content_type, headers)
    loop = asyncio.get_running_loop()
    perf = time.perf_counter

    latencies: list[float] = []
    per_second = [0] * (int(duration_s) + 1)
    errors: Counter[str] = Counter()
    stopped: dict[str, str] = {}
    connections: set[_Connection] = set()

    async def connect() -> _Connection:
        _, proto = await loop.create_connection(_Connection, target.host, target.port)
        connections.add(proto)
        return proto

    def on_timeout(fut: asyncio.Future[tuple[int, bool]]) -> None:
        if not fut.done():
            fut.set_exception(TimeoutError())

    async def user() -> None:
        conn: _Connection | None = None
        try:
            while True:
                now = perf()
                if now >= deadline:
                    stopped.setdefault("by", "duration")
                    return
                if state.sent >= max_requests:
                    stopped.setdefault("by", "max_requests")
                    return
                state.sent += 1
                request = requests[state.next % len(requests)]
                state.next += 1
                connecting = conn is None or conn.closed
                try:
                    if conn is None or conn.closed:
                        conn = await asyncio.wait_for(connect(), request_timeout_s)
                    connecting = False
                    t0 = perf()
                    fut = conn.send(request, loop)
                    handle = loop.call_later(request_timeout_s, on_timeout, fut)
                    try:
                        status, keep_alive = await fut
                    finally:
                        handle.cancel()
                    t1 = perf()
                except TimeoutError:
                    errors["connect_timeout" if connecting else "timeout"] += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                    continue
                except (OSError, _ProtocolError) as exc:
                    errors["connect" if connecting else type(exc).__name__] += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                    # A refused connection fails in microseconds: pause so a dead server is not
                    # hammered in a hot loop until the deadline.
                    await asyncio.sleep(0.01)
                    continue
                if not keep_alive:
                    conn.close()
                    conn = None
                if t0 < measure_start:
                    continue
                if 200 <= status < 300:
                    if t1 <= deadline:
                        state.ok += 1
                        per_second[min(int(t1 - measure_start), len(per_second) - 1)] += 1
                        state.last_done = max(state.last_done, t1)
                    latencies.append(t1 - t0)
                else:
                    errors[f"http_{status}"] += 1
        finally:
            if conn is not None:
                conn.close()

    # The bench process may hold torch and a few models (model level): a full collection over
    # millions of objects would pause the client for milliseconds and show up as server latency.
    # Frozen objects are skipped by the collector; only what this run allocates is scanned.
    gc.collect()
    gc.freeze()
    # The clock starts after the collection: a full pass in a process holding models can take
    # longer than a short run's whole window.
    start = perf()
    measure_start = start + warmup_s
    deadline = measure_start + duration_s
    state = _State(last_done=measure_start)
    cpu0 = time.process_time()
    tasks = [asyncio.ensure_future(user()) for _ in range(concurrency)]
    try:
        # Belt and braces: users stop by themselves at the deadline (+ one request timeout);
        # this bounds the run even if something in the event loop misbehaves.
        hard_timeout = warmup_s + duration_s + 2 * request_timeout_s + 5.0
        done, pending = await asyncio.wait(tasks, timeout=hard_timeout)
        if pending:
            stopped["by"] = "hard_timeout"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in connections:
            conn.close()
        gc.unfreeze()
    failures = [exc for task in done if not task.cancelled() and (exc := task.exception()) is not None]
    if failures:
        raise failures[0]
    end = perf()
    cpu = time.process_time() - cpu0

    # Throughput counts responses completed inside the window; when max_requests ended the run
    # early the window ends at the last completion instead of the deadline.
    window_end = deadline if stopped.get("by") != "max_requests" else min(deadline, state.last_done)
    measured = max(0.0, window_end - measure_start)
    return LoadResult(
        url=url,
        concurrency=concurrency,
        duration_s=duration_s,
        warmup_s=warmup_s,
        measured_s=measured,
        sent=state.sent,
        ok=state.ok,
        errors=dict(errors),
        latencies_s=latencies,
        per_second_ok=per_second[: max(1, int(measured) + 1)],
        stopped_by=stopped.get("by", "duration"),
        client_cpu_fraction=cpu / (end - start) if end > start else 0.0,
        wall_s=end - start,
    )


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a fresh event loop, uvloop when available (lower client CPU)."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(factory())


def run_load(
    url: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    duration_s: float,
    max_requests: int,
    warmup_s: float = 0.0,
    request_timeout_s: float = 10.0,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Synchronous wrapper around :func:`run_load_async` (its own event loop)."""
    return run_coroutine(
        lambda: run_load_async(
            url,
            bodies,
            concurrency=concurrency,
            duration_s=duration_s,
            max_requests=max_requests,
            warmup_s=warmup_s,
            request_timeout_s=request_timeout_s,
            content_type=content_type,
            headers=headers,
        )
    )
