"""``textclf predict`` with ``s3://`` input and output: a SageMaker Batch Transform job.

The request is the one ``POST /batch`` sends (``textclf_api.logic.transform.build_transform_request``):
the endpoint's current Model scores JSON Lines split by line, and the answers come back as
``<output>/<file>.out``, one line per input line, in order. ``--local`` sends it to the running
``textclf serve``, whose SageMaker runs the job for real on this machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textclf.errors import UserError

#: Seconds between two DescribeTransformJob calls while waiting.
POLL_SECONDS = 2.0
DONE = ("Completed", "Failed", "Stopped")


@dataclass(frozen=True)
class TransformSpec:
    input_uri: str
    output_uri: str
    endpoint_name: str
    instance_type: str
    instance_count: int
    job_prefix: str = "textclf"


def check_uris(input_uri: str, output_uri: str) -> None:
    for flag, uri in (("--input", input_uri), ("--output", output_uri)):
        if not uri.startswith("s3://") or "/" not in uri[len("s3://") :].strip("/"):
            raise UserError(
                f"{flag} must be an s3://bucket/key URI for a Batch Transform job (both or neither "
                f"are s3://), got {uri!r}"
            )


def served_model(sagemaker: Any, endpoint: str) -> str:
    """The SageMaker Model the endpoint serves now: what the job will run."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        config = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
        variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"cannot read the model of endpoint {endpoint}: {exc}") from exc
    return str(variants[0]["ModelName"])


def start(sagemaker: Any, spec: TransformSpec) -> str:
    from botocore.exceptions import BotoCoreError, ClientError
    from textclf_api.logic.transform import build_transform_request, transform_job_name

    check_uris(spec.input_uri, spec.output_uri)
    name = transform_job_name(spec.job_prefix)
    request = build_transform_request(
        job_name=name,
        model_name=served_model(sagemaker, spec.endpoint_name),
        input_uri=spec.input_uri,
        output_uri=spec.output_uri.rstrip("/") + "/",
        instance_type=spec.instance_type,
        instance_count=spec.instance_count,
    )
    try:
        sagemaker.create_transform_job(**request)
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"CreateTransformJob refused: {exc}") from exc
    return name


def wait(
    sagemaker: Any, name: str, echo: Callable[[str], None], timeout_s: float = 24 * 3600
) -> dict[str, Any]:
    """Poll until the job ends, echoing each status change; a failed job raises its reason."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        job: dict[str, Any] = sagemaker.describe_transform_job(TransformJobName=name)
        status = str(job["TransformJobStatus"])
        if status != last:
            echo(f"{name}: {status}")
            last = status
        if status in DONE:
            break
        if time.monotonic() > deadline:
            raise UserError(f"{name} is still {status} after {timeout_s:.0f} s; it keeps running")
        time.sleep(POLL_SECONDS)
    if status != "Completed":
        raise UserError(f"{name} {status.lower()}: {job.get('FailureReason', 'no reason given')}")
    return job
