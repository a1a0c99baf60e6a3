"""``textclf serve-endpoint``: a packaged model behind a SageMaker-compatible HTTP endpoint."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

from textclf.serving.endpoint import add_endpoint_arguments


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve-endpoint",
        help="serve model.tar.gz like a SageMaker endpoint (GET /ping, POST /invocations, "
        "POST /endpoints/NAME/invocations) with micro-batching",
        description="Serve a packaged model on loopback with the SageMaker container contract and the "
        "SageMaker Runtime path, so boto3's sagemaker-runtime client reaches it through "
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://HOST:PORT. Ctrl-C stops it.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument(
        "--fd", type=int, default=None, help="serve on this inherited listening socket (default: bind --port)"
    )
    add_endpoint_arguments(parser)
    parser.add_argument(
        "--capture-dir",
        type=Path,
        default=None,
        help="capture answered invocations as SageMaker capture files under this folder "
        "(<endpoint>/AllTraffic/yyyy/mm/dd/hh/*.jsonl; default: no capture)",
    )
    parser.add_argument(
        "--capture-percent",
        type=float,
        default=100.0,
        help="with --capture-dir: the share of invocations captured, 0-100 (default 100)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.errors import UserError
    from textclf.serving.capture import CaptureConfig, DirectoryStore
    from textclf.serving.endpoint import batching_from_args, default_model_path
    from textclf.serving.lifecycle import quiet_libraries
    from textclf.serving.net import bind_socket, inherited_socket

    batching = batching_from_args(args)
    if not 0 <= args.capture_percent <= 100:
        raise UserError(f"--capture-percent must be 0-100, not {args.capture_percent:g}")
    capture = store = None
    if args.capture_dir is not None and args.capture_percent > 0:
        # The folder stands for the destination's bucket and prefix: files land right under it.
        capture = CaptureConfig(bucket="", prefix="", sampling_percent=args.capture_percent)
        store = DirectoryStore(args.capture_dir)
    quiet_libraries(args.verbose)
    if args.fd is not None:
        sock = inherited_socket(args.fd, flag="--fd")
    else:
        sock = bind_socket(args.host, args.port, what="endpoint", flag="--port")
    return serve_until_stopped(
        default_model_path(args.model),
        sock,
        endpoint_name=args.endpoint_name,
        batching=batching,
        capture=capture,
        capture_store=store,
    )


def serve_until_stopped(model: Path, sock: socket.socket, **options: Any) -> int:
    """Serve ``model`` on the bound ``sock`` until SIGINT or SIGTERM (``start_endpoint`` options);
    also the SageMaker container's ``serve`` (``textclf.serving.container``)."""
    from textclf.serving.endpoint import start_endpoint
    from textclf.serving.lifecycle import serve_forever, stop_signals

    with stop_signals():
        try:
            endpoint = start_endpoint(model, sock, **options)
        except BaseException:
            sock.close()
            raise
        try:
            print(
                f"endpoint {options['endpoint_name']!r} on {endpoint.url} "
                f"(AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={endpoint.url}); Ctrl-C stops it",
                flush=True,
            )
            serve_forever()
        except KeyboardInterrupt:
            print("stopping the endpoint", flush=True)
        finally:
            endpoint.stop()
    return 0
