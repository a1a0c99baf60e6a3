"""``textclf serve-endpoint``: a packaged model behind a SageMaker-compatible HTTP endpoint."""

from __future__ import annotations

import argparse
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.local.stack import quiet_libraries, serve_forever, stop_signals
    from textclf.serving.endpoint import batching_from_args, default_model_path, start_endpoint
    from textclf.serving.net import bind_socket, inherited_socket

    batching = batching_from_args(args)
    quiet_libraries(args.verbose)
    if args.fd is not None:
        sock = inherited_socket(args.fd, flag="--fd")
    else:
        sock = bind_socket(args.host, args.port, what="endpoint", flag="--port")
    with stop_signals():
        try:
            endpoint = start_endpoint(
                default_model_path(args.model), sock, endpoint_name=args.endpoint_name, batching=batching
            )
        except BaseException:
            sock.close()
            raise
        try:
            print(
                f"endpoint {args.endpoint_name!r} on {endpoint.url} "
                f"(AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={endpoint.url}); Ctrl-C stops it",
                flush=True,
            )
            serve_forever()
        except KeyboardInterrupt:
            print("stopping the endpoint", flush=True)
        finally:
            endpoint.stop()
    return 0
