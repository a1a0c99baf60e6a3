"""``textclf demo`` (``make demo``): data → EDA → train → evaluate → package → local stack → requests."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="end to end on this machine: prepare data, EDA, train, evaluate, package, start the "
        "local stack, query it over HTTP and stop it",
        description="Runs textclf data/eda/train/evaluate/package (each reuses its output when it is "
        "current), starts `textclf serve`, sends every events/predict*.json request and a few "
        "headlines to the API, prints predictions, test accuracy and latencies, and stops the stack.",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="the corpus: UCI .zip or newsCorpora.csv (default: download from UCI, or reuse "
        "<artifacts>/data)",
    )
    parser.add_argument("--port", type=int, default=3000, help="API port (default 3000)")
    parser.add_argument("--endpoint-port", type=int, default=8080, help="endpoint port (default 8080)")
    parser.add_argument(
        "--runtime",
        default="onnx-int8",
        choices=("torch", "onnx-fp32", "onnx-int8"),
        help="serving runtime to package (default onnx-int8)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf.demo import DemoOptions, run_demo
    from textclf.serving.lifecycle import quiet_libraries

    quiet_libraries(args.verbose)
    return run_demo(
        DemoOptions(
            data=args.data or None, port=args.port, endpoint_port=args.endpoint_port, runtime=args.runtime
        )
    )
