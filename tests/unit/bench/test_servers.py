"""Servers as separate processes: readiness, RSS sampling, clean stop; the baseline server."""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers.tiny_model import PROBE_HEADLINES, make_tiny_model_dir
from textclf.bench.loadgen import run_load
from textclf.bench.servers import (
    RssSampler,
    ServerProcess,
    listening,
    process_tree_rss,
    python_module_argv,
)
from textclf.errors import UserError

# http.server on the listening socket handed over as the last argument (``--fd N``).
FD_HTTP_SERVER = [
    sys.executable,
    "-c",
    "import socket, sys, http.server as h; "
    "s = h.HTTPServer(('127.0.0.1', 0), h.SimpleHTTPRequestHandler, bind_and_activate=False); "
    "s.socket = socket.socket(fileno=int(sys.argv[-1])); s.serve_forever()",
]


def http_server(name: str, log: Path) -> ServerProcess:
    sock, port = listening("127.0.0.1", name)
    return ServerProcess(
        name, FD_HTTP_SERVER, "127.0.0.1", port, ready_path="/", log_path=log, sockets=[("--fd", sock)]
    )


pytestmark = [pytest.mark.integration, pytest.mark.heavy]


def test_process_that_dies_at_start_fails_fast_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('cannot start: no model'); sys.exit(3)"]
    sock, port = listening("127.0.0.1", "broken")
    server = ServerProcess(
        "broken", argv, "127.0.0.1", port, log_path=tmp_path / "broken.log", sockets=[("--fd", sock)]
    )
    started = time.monotonic()
    with pytest.raises(UserError, match=r"exited with code 3.*cannot start: no model"):
        server.start()
    # The process died at once; without noticing, start() would poll until its 120 s timeout.
    assert time.monotonic() - started < 10


def test_refuses_a_busy_port(tmp_path: Path) -> None:
    first = http_server("first", tmp_path / "a.log")
    # A server told to bind a port itself refuses one where something already answers.
    argv = python_module_argv("http.server", "--bind", "127.0.0.1", str(first.port))
    with first, pytest.raises(UserError, match=f"port {first.port} on 127.0.0.1 is busy"):
        ServerProcess("second", argv, "127.0.0.1", first.port, ready_path="/").start()


def test_rss_sampler_and_stop(tmp_path: Path) -> None:
    server = http_server("http", tmp_path / "h.log")
    with server:
        pid = server.pid
        with RssSampler(pid, interval_s=0.05) as sampler:
            time.sleep(0.3)
        assert len(sampler.samples) >= 3
        assert sampler.peak_bytes == max(rss for _, rss in sampler.samples) > 1024 * 1024
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert process_tree_rss(pid) == 0


def test_baseline_server_serves_the_endpoint_contract(tmp_path: Path) -> None:
    model = make_tiny_model_dir(tmp_path / "model", trained=True)
    sock, port = listening("127.0.0.1", "baseline")
    argv = python_module_argv("textclf.bench.baseline_server", "--model", str(model))
    # One torch thread: the tiny model gains nothing from two, and tests share the cores.
    env = {"OMP_NUM_THREADS": "1"}
    baseline = ServerProcess(
        "baseline", argv, "127.0.0.1", port, log_path=tmp_path / "b.log", env=env, sockets=[("--fd", sock)]
    )
    with baseline as server:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"inputs": [PROBE_HEADLINES["business"], PROBE_HEADLINES["health"]]})
        conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        predictions = json.loads(response.read())["predictions"]
        assert [p["label"] for p in predictions] == ["business", "health"]
        assert set(predictions[0]["scores"]) == set(PROBE_HEADLINES)
        assert sum(predictions[0]["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        conn.close()

        bodies = [json.dumps({"inputs": t}).encode() for t in PROBE_HEADLINES.values()]
        result = run_load(
            server.base_url + "/invocations", bodies, concurrency=2, duration_s=0.5, max_requests=500
        )
        assert result.ok > 0
        assert result.errors == {}
