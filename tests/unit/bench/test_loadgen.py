"""Load generator: counts, bounds, framing and the loopback-only rule."""

from __future__ import annotations

import socket

import pytest

from textclf.bench.loadgen import (
    NonLoopbackTargetError,
    Target,
    _parse_response,
    _ProtocolError,
    build_requests,
    ensure_loopback,
    run_load,
)
from textclf.errors import UserError

from .conftest import CountingServer


def test_counts_ok_and_http_errors_exactly(counting_server: CountingServer) -> None:
    # Bodies are used round-robin, so 200 requests over [ok, ok, fail] are 134 ok and 66 fail.
    result = run_load(
        counting_server.url,
        [b"ok", b"ok", b"fail"],
        concurrency=4,
        duration_s=30,
        max_requests=200,
    )
    assert result.stopped_by == "max_requests"
    assert result.sent == 200
    assert result.ok == 134
    assert result.errors == {"http_500": 66}
    assert len(result.latencies_s) == 134
    assert counting_server.received == {"ok": 134, "fail": 66}
    assert result.measured_s > 0
    assert result.throughput_rps == pytest.approx(134 / result.measured_s)


def test_stops_by_itself_at_the_deadline(counting_server: CountingServer) -> None:
    result = run_load(counting_server.url, [b"slow"], concurrency=2, duration_s=0.5, max_requests=10**6)
    # The deadline stopped the users, not the belt-and-braces hard timeout, and not a request count.
    assert result.stopped_by == "duration"
    # Each request takes >= 50 ms: two users cannot send more than ~2 * (0.5 / 0.05 + 1).
    assert 2 <= result.sent <= 24
    assert result.errors == {}
    # The server's asyncio.sleep(0.05) may end up to one event-loop clock tick early (seen:
    # 49.92 ms on 1 run in 15); a latency far below 50 ms would mean a reply without the sleep.
    assert min(result.latencies_s) >= 0.05 - 0.002
    # Every request started was answered before run_load returned: none left in flight.
    assert sum(counting_server.received.values()) == result.sent
    assert len(result.latencies_s) == result.sent


def test_warmup_requests_are_sent_but_not_measured(counting_server: CountingServer) -> None:
    result = run_load(
        counting_server.url, [b"slow"], concurrency=1, duration_s=0.3, warmup_s=0.3, max_requests=10**6
    )
    # Half the run is warm-up: its requests reach the server but not the figures.
    assert counting_server.received["slow"] == result.sent
    assert len(result.latencies_s) < result.sent
    assert result.ok <= len(result.latencies_s)


def test_request_timeout_bounds_a_hanging_server(counting_server: CountingServer) -> None:
    # A 60 s run that only the request count can end: run_load comes back while the server still
    # holds both requests (it answers only when the fixture stops), so each was given up at its
    # 0.2 s timeout -- a client that waited for the answers would find the server holding none.
    result = run_load(
        counting_server.url,
        [b"hang"],
        concurrency=2,
        duration_s=60,
        max_requests=2,
        request_timeout_s=0.2,
    )
    assert counting_server.hanging == 2
    assert result.stopped_by == "max_requests"
    assert result.ok == 0
    assert result.errors == {"timeout": 2}
    assert result.sent == 2


def test_connection_refused_is_an_error_not_a_hang() -> None:
    # Bound but not listening: connections are refused, and no other process can take the port.
    # With a 60 s run and a 30 s request timeout, only a refusal seen as such (not a connect
    # timeout, not a retry until the deadline) ends the run by its request count.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        result = run_load(
            f"http://127.0.0.1:{port}/invocations",
            [b"ok"],
            concurrency=3,
            duration_s=60,
            max_requests=3,
            request_timeout_s=30,
        )
    assert result.stopped_by == "max_requests"
    assert result.ok == 0
    assert result.errors == {"connect": 3}


def test_chunked_and_connection_close_responses(counting_server: CountingServer) -> None:
    result = run_load(
        counting_server.url, [b"stream", b"close"], concurrency=2, duration_s=30, max_requests=40
    )
    assert result.errors == {}
    assert result.ok == 40
    assert counting_server.received == {"stream": 20, "close": 20}


@pytest.mark.parametrize(
    "url", ["http://10.1.2.3:8080/invocations", "http://0.0.0.0:8080/x", "http://[2001:db8::1]:80/"]
)
def test_refuses_non_loopback_targets(url: str) -> None:
    with pytest.raises(NonLoopbackTargetError):
        run_load(url, [b"ok"], concurrency=1, duration_s=0.1, max_requests=1)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"])
def test_accepts_loopback_hosts(host: str) -> None:
    ensure_loopback(host)


def test_refuses_https_and_unresolvable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="must be an http:// URL"):
        Target.parse("https://127.0.0.1/x")

    # No DNS query leaves the test: the resolver's failure is what is under test.
    def unresolvable(host: str, *args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    with pytest.raises(
        NonLoopbackTargetError, match=r"cannot resolve load target host 'no-such-host\.invalid'"
    ):
        ensure_loopback("no-such-host.invalid")


def test_bad_bounds_are_refused() -> None:
    url = "http://127.0.0.1:9/x"
    with pytest.raises(ValueError, match="concurrency"):
        run_load(url, [b"ok"], concurrency=0, duration_s=1, max_requests=1)
    with pytest.raises(ValueError, match="duration, max_requests and request_timeout must be positive"):
        run_load(url, [b"ok"], concurrency=1, duration_s=0, max_requests=1)
    with pytest.raises(ValueError, match="duration, max_requests and request_timeout must be positive"):
        run_load(url, [b"ok"], concurrency=1, duration_s=1, max_requests=0)


def test_prebuilt_request_bytes() -> None:
    (request,) = build_requests(Target("127.0.0.1", 8080, "/invocations"), [b'{"inputs": "x"}'])
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /invocations HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 15" in head
    assert b"\r\nHost: 127.0.0.1:8080" in head
    assert body == b'{"inputs": "x"}'


def test_response_parser_waits_for_whole_messages() -> None:
    full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    for cut in range(len(full)):
        assert _parse_response(bytearray(full[:cut])) is None
    assert _parse_response(bytearray(full + b"HTTP/1.1")) == (200, True, len(full))

    chunked = (
        b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    for cut in range(len(chunked)):
        assert _parse_response(bytearray(chunked[:cut])) is None
    assert _parse_response(bytearray(chunked)) == (503, False, len(chunked))

    with pytest.raises(_ProtocolError):
        _parse_response(bytearray(b"garbage\r\n\r\n"))
    with pytest.raises(_ProtocolError):
        _parse_response(bytearray(b"HTTP/1.1 200 OK\r\n\r\n"))
