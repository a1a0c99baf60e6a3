"""``textclf invoke FUNCTION --event FILE``: what ``sam local invoke`` does, without Docker.

The handler, timeout, memory and environment come from ``template.yaml``; the event from a file
(``events/`` has one for every function). With ``--local`` every AWS call goes to the running
``textclf serve``; without it, to AWS, with the environment the deployed function has
(``--stack-name``) or the deployed stack's names given by ``--env-vars`` (sam's format:
``{"FunctionName": {"VAR": "value"}}`` or ``{"Parameters": {...}}`` for all).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from textclf.aws_clients import add_aws_arguments, function_environment, target_from_args
from textclf.errors import UserError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "invoke",
        help="run one Lambda function of template.yaml with an event file (sam local invoke, no Docker)",
        description=(__doc__ or "").split("\n\n", 1)[1],
    )
    parser.add_argument("function", help="logical id in template.yaml, e.g. PredictFunction, DeployFunction")
    parser.add_argument("--event", "-e", type=Path, required=True, help="event JSON file (events/...)")
    parser.add_argument(
        "--env-vars", "-n", type=Path, default=None, help="JSON overrides, sam's format (default: none)"
    )
    parser.add_argument("--template", "-t", type=Path, default=None, help="default: template.yaml")
    add_aws_arguments(parser, region="us-east-1")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textclf import config
    from textclf.local import template as tpl
    from textclf.local.apigw import LambdaContext
    from textclf.local.functions import LocalFunction

    template = tpl.load_template(args.template or config.REPO_ROOT / "template.yaml")
    specs = {f.name: f for f in tpl.functions(template)}
    spec = specs.get(args.function)
    if spec is None:
        raise UserError(f"template.yaml has no function {args.function!r}; it has {', '.join(sorted(specs))}")
    event = _read_json(args.event, "--event")
    if args.stack_name:
        env = function_environment(target_from_args(args), spec.name)
    else:
        env = environment(template, spec.name, local=args.local, region=args.region)
    if args.profile:
        env["AWS_PROFILE"] = args.profile  # the handler's own boto3 clients use it too
    env |= _overrides(args.env_vars, spec.name) if args.env_vars else {}
    os.environ.update(env)
    context = LambdaContext(
        function_name=spec.name,
        timeout_s=spec.timeout_s,
        memory_mb=spec.memory_mb,
        region=env.get("AWS_REGION", args.region),
        request_id=str(uuid.uuid4()),
    )
    function = LocalFunction(spec.name, spec.handler, spec.timeout_s, spec.memory_mb)
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["result"] = function.invoke(event, context)
        except Exception as exc:  # what Lambda reports as an unhandled error
            outcome["error"] = exc

    worker = threading.Thread(target=call, name=spec.name, daemon=True)
    worker.start()
    worker.join(spec.timeout_s)
    if worker.is_alive():
        print(f"{spec.name}: Task timed out after {spec.timeout_s:.0f} seconds", file=sys.stderr)
        return 1
    if "error" in outcome:
        exc = outcome["error"]
        print(json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}), file=sys.stderr)
        return 1
    print(json.dumps(outcome["result"], indent=2, default=str))
    return 0


def environment(template: dict[str, Any], function: str, *, local: bool, region: str) -> dict[str, str]:
    """The function's variables; with ``local``, pointed at the running stack as `textclf serve` does."""
    from textclf.local import template as tpl
    from textclf.local.stack import LOCAL_BUCKET, lambda_environment, local_resources

    if not local:
        resources = local_resources(region, LOCAL_BUCKET, {})
        return {"AWS_REGION": region, **tpl.function_environment(template, function, resources)}
    from textclf.aws_clients import local_state

    state = local_state()
    resources = local_resources(state["region"], state["bucket"], json.loads(state["parameters"]))
    return lambda_environment(
        template,
        resources,
        endpoint_url=state["endpoint_url"],
        sagemaker_url=state["sagemaker_url"],
        control_plane_url=state["control_plane_url"],
        endpoint_name=state["endpoint_name"],
    )


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{what} {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UserError(f"{what} {path} is not JSON: {exc}") from exc


def _overrides(path: Path, function: str) -> dict[str, str]:
    document = _read_json(path, "--env-vars")
    if not isinstance(document, dict):
        raise UserError(f"--env-vars {path} must hold a JSON object")
    merged = {**(document.get("Parameters") or {}), **(document.get(function) or {})}
    return {str(k): str(v) for k, v in merged.items()}
