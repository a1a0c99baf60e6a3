"""``serve`` of textclf's SageMaker inference image (docker/Dockerfile): the local endpoint's
micro-batching server under the SageMaker container contract.

SageMaker starts a hosting container as ``docker run <image> serve``, unpacks ModelDataUrl into
``/opt/ml/model``, sends ``GET /ping`` and ``POST /invocations`` to port 8080 and stops the
container with SIGTERM. This module is the image's entrypoint: it answers ``serve`` by serving
``/opt/ml/model`` (the archive unpacked: ``code/inference.py`` and the model files) with
``textclf serve-endpoint``'s server on all interfaces, port 8080, until SIGTERM.

The places come from the variables the SageMaker inference toolkit reads for the same purpose,
so one override moves either server (tests, ``textclf bench``): ``SAGEMAKER_BASE_DIR`` (the
folder holding ``model/``, default ``/opt/ml``) and ``SAGEMAKER_BIND_TO_PORT`` (default 8080).
``SAGEMAKER_MODEL_SERVER_WORKERS`` and ``TEXTCLF_NUM_THREADS`` do not apply: the deploy function
sets them to size the DLC's model-server workers (one ONNX thread per worker); this is one
process with one model copy, batching requests across connections, and it takes every core.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from textclf.errors import UserError

DEFAULT_BASE_DIR = "/opt/ml"
DEFAULT_PORT = 8080
#: Every interface: SageMaker reaches the container from outside it. Only this entrypoint binds
#: beyond loopback; ``textclf serve-endpoint`` on a workstation never does.
CONTAINER_HOST = "0.0.0.0"
#: Set only where the entrypoint runs outside a container (``textclf bench``): loopback there.
HOST_ENV = "TEXTCLF_CONTAINER_HOST"


def model_dir() -> Path:
    return Path(os.environ.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE_DIR) / "model"


def port() -> int:
    value = os.environ.get("SAGEMAKER_BIND_TO_PORT") or str(DEFAULT_PORT)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise UserError(f"SAGEMAKER_BIND_TO_PORT must be a port number, not {value!r}")
    return int(value)


def listen(host: str, number: int) -> socket.socket:
    try:
        return socket.create_server((host, number), backlog=2048)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{number}: {exc.strerror}") from exc


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["serve"]:
        got = " ".join(args) or "nothing"
        print(f"usage: serve (SageMaker's hosting command); got {got}", file=sys.stderr)
        return 2
    from textclf.commands.serve_endpoint import serve_until_stopped
    from textclf.serving.endpoint import DEFAULT_ENDPOINT_NAME, BatchingOptions
    from textclf.serving.lifecycle import quiet_libraries

    # The DLC's per-worker thread count (deployment.SERVER_ENVIRONMENT), not this server's.
    os.environ.pop("TEXTCLF_NUM_THREADS", None)
    try:
        directory = model_dir()
        if not (directory / "config.json").is_file():
            raise UserError(f"{directory}: no model (SageMaker unpacks ModelDataUrl here)")
        sock = listen(os.environ.get(HOST_ENV) or CONTAINER_HOST, port())
        quiet_libraries(False)
        return serve_until_stopped(
            directory, sock, endpoint_name=DEFAULT_ENDPOINT_NAME, batching=BatchingOptions()
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
