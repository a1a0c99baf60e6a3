"""textclf's SageMaker inference image's entrypoint, run as its container runs it, without Docker.

SageMaker starts the image as ``docker run <image> serve`` with the model archive unpacked into
``/opt/ml/model`` and the model's Environment, probes ``GET /ping`` on port 8080, sends
``POST /invocations`` and stops it with SIGTERM. Here the same command runs as a real process,
with ``/opt/ml`` and the port moved by the variables the entrypoint reads for that
(``SAGEMAKER_BASE_DIR``, ``SAGEMAKER_BIND_TO_PORT``: the toolkit's own names).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
from textclf_api.logic.deployment import container_environment

# A real server process loading a real (tiny) model: seconds on a quiet machine.
pytestmark = [pytest.mark.integration, pytest.mark.heavy]

ENTRYPOINT = [sys.executable, "-m", "textclf.serving.container"]  # the Dockerfile's ENTRYPOINT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _container_env(base_dir: Path, port: int) -> dict[str, str]:
    # What CreateModel gives the container (the deploy function's variables) + the two moves.
    return {
        **os.environ,
        **container_environment("RealTime"),
        "SAGEMAKER_BASE_DIR": str(base_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
    }


def test_serve_answers_the_sagemaker_contract_and_stops_on_sigterm(
    tiny_archive: Path, tmp_path: Path
) -> None:
    base_dir = tmp_path / "opt-ml"
    with tarfile.open(tiny_archive, "r:gz") as tar:
        tar.extractall(base_dir / "model", filter="data")  # what SageMaker does with ModelDataUrl
    port = _free_port()
    proc = subprocess.Popen(
        [*ENTRYPOINT, "serve"],
        env=_container_env(base_dir, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "no /ping within 90 s"
            time.sleep(0.2)
        reply = httpx.post(f"{url}/invocations", json={"inputs": ["stocks rally", "flu season"]}, timeout=30)
        assert reply.status_code == 200, reply.text
        predictions = reply.json()["predictions"]
        assert len(predictions) == 2 and all("label" in p and "scores" in p for p in predictions)
        # The container listens beyond loopback (SageMaker reaches it from outside).
        bound = {(c.laddr.ip, c.laddr.port) for c in psutil.Process(proc.pid).net_connections("tcp")}
        assert ("0.0.0.0", port) in bound
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "usage: serve (SageMaker's hosting command); got nothing"),
        (["train"], "usage: serve (SageMaker's hosting command); got train"),
        (["serve"], "no model (SageMaker unpacks ModelDataUrl here)"),
    ],
)
def test_anything_else_is_one_line_and_exit_2(args: list[str], says: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [*ENTRYPOINT, *args],
        env=_container_env(tmp_path, _free_port()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
