"""Busy or non-loopback ports fail with one clear line, before anything starts."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from textclf.cli import main
from textclf.errors import UserError
from textclf.serving.net import bind_socket, check_loopback, inherited_socket


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


def test_binding_a_busy_port_names_the_port_and_the_flag(busy_port: int) -> None:
    with pytest.raises(UserError) as info:
        bind_socket("127.0.0.1", busy_port, what="API", flag="--port")
    message = str(info.value)
    assert f"127.0.0.1:{busy_port}" in message and "in use" in message and "--port" in message
    assert "\n" not in message


def test_a_free_port_is_bound_and_listening() -> None:
    sock = bind_socket("127.0.0.1", 0, what="API", flag="--port")
    try:
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("0.0.0.0", "is not a loopback address"),
        ("192.0.2.10", "is not a loopback address"),
        ("example.com", "is not an IP address"),
    ],
)
def test_only_loopback_addresses_are_accepted(host: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        check_loopback(host)


def test_an_inherited_socket_must_be_a_listening_one() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, not listening
        with pytest.raises(UserError, match=r"--fd \d+: not a listening TCP socket"):
            inherited_socket(bound.fileno(), flag="--fd")
    with pytest.raises(UserError, match="--fd 987654: not an open socket"):
        inherited_socket(987654, flag="--fd")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_addresses_pass(host: str) -> None:
    check_loopback(host)


def test_serve_on_a_busy_port_fails_fast_with_one_line(
    busy_port: int, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    code = main(["serve", "--port", str(busy_port), "--model", "/nonexistent/model.tar.gz"])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and f":{busy_port}" in err and "--port" in err
    # Refused before the model (which does not even exist) or any server was touched.
    assert "model" not in err
    # Bound: starting the endpoint would load torch and a model first (tens of seconds here).
    assert elapsed < 5


def test_serve_endpoint_on_a_busy_port_fails_fast_with_one_line(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve-endpoint", "--port", str(busy_port), "--model", "/nonexistent/model.tar.gz"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and f":{busy_port}" in err


def test_serve_refuses_a_missing_model_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--port", "0", "--endpoint-port", "0", "--model", "/nonexistent/model.tar.gz"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "no model at /nonexistent/model.tar.gz" in err and "textclf package" in err
