"""SageMaker Batch Transform jobs with the model the endpoint serves (the API's ``/batch`` routes).

POST /batch starts one over a JSON Lines file (or every file under a prefix) in the stack's
bucket; GET /batch/{job} reports it. The job runs the endpoint's own SageMaker Model (same
archive, same ``inference.py``, which reads ``application/jsonlines``): Batch Transform splits
each file by line into mini-batches of at most ``MaxPayloadInMB``, sends them to the container
and joins the answers line by line (``AssembleWith: Line``) into ``<file>.out``, in input order.
Files are spread over the instances, so ``instance_count`` > 1 needs the input cut into files.
``textclf predict --input s3://... --output s3://...`` builds the same request.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any, Final

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from textclf_api import aws
from textclf_api.errors import (
    InvalidRequestError,
    PreconditionMissingError,
    QuotaExceededError,
    ResourceNotFoundError,
)
from textclf_api.logic.deploy_records import version_of
from textclf_api.schemas import (
    BATCH_INPUT_PREFIX,
    BATCH_OUTPUT_PREFIX,
    BatchRequest,
    BatchStartedResponse,
    BatchStatusResponse,
)
from textclf_api.settings import Settings, get_settings

logger = Logger(child=True)

JSONLINES: Final = "application/jsonlines"
#: Mini-batch size: ~10,000 headlines, one forward-pass loop of a few seconds per request.
MAX_PAYLOAD_MB: Final = 1
#: One request at a time per instance: each mini-batch already uses every core of the container.
MAX_CONCURRENT_TRANSFORMS: Final = 1
#: Per mini-batch; a 1 MB batch takes seconds, so this only catches a stuck container.
INVOCATION_TIMEOUT_SECONDS: Final = 600
_MISSING: Final = ("not find", "not found", "does not exist")


def transform_job_name(prefix: str, now: datetime | None = None) -> str:
    """``<prefix>-batch-<yymmddHHMMSS>-<3 hex>``: at most 63 characters for a 40-character prefix."""
    now = now or datetime.now(UTC)
    return f"{prefix}-batch-{now:%y%m%d%H%M%S}-{secrets.token_hex(2)[:3]}"


def is_own_job(name: str, settings: Settings) -> bool:
    return (
        re.fullmatch(rf"{re.escape(settings.training_job_prefix)}-batch-\d{{12}}-[0-9a-f]{{3}}", name)
        is not None
    )


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/or/prefix`` -> ``(bucket, key)`` (the key may be empty)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def build_transform_request(
    *,
    job_name: str,
    model_name: str,
    input_uri: str,
    output_uri: str,
    instance_type: str,
    instance_count: int,
) -> dict[str, Any]:
    """The CreateTransformJob parameters (plain data; the CLI and the API send the same)."""
    return {
        "TransformJobName": job_name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": MAX_CONCURRENT_TRANSFORMS,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "BatchStrategy": "MultiRecord",
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": INVOCATION_TIMEOUT_SECONDS,
            "InvocationsMaxRetries": 1,
        },
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": JSONLINES,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": JSONLINES, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
        "Tags": [{"Key": "textclf:model", "Value": model_name}],
    }


def serving_model(endpoint: str, settings: Settings) -> tuple[str, str | None]:
    """The SageMaker Model the endpoint serves now (its first variant) and its version."""
    what = f"SageMaker DescribeEndpoint({endpoint})"
    # Quick reads (one attempt each): with ListObjectsV2 and CreateTransformJob, POST /batch's
    # four calls fit its 26 s timeout; a failure is a 503 the client may retry.
    sm = aws.sagemaker_quick()
    try:
        config = str(sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"])
        what = f"SageMaker DescribeEndpointConfig({config})"
        variants = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    except ClientError as exc:
        if any(m in aws.error_message(exc).lower() for m in _MISSING):
            raise PreconditionMissingError(
                f"the endpoint {endpoint} does not exist: deploy a model first "
                "(POST /train, or `textclf deploy`)"
            ) from exc
        raise aws.translate(exc, what, settings.retry_after_seconds) from exc
    except Exception as exc:
        raise aws.translate(exc, what, settings.retry_after_seconds) from exc
    return str(variants[0]["ModelName"]), version_of(config)


def check_input(input_uri: str, bucket: str, settings: Settings) -> None:
    """The input must be JSON Lines under ``batch/input/`` of the stack's bucket, and exist."""
    where = f"s3://{bucket}/{BATCH_INPUT_PREFIX}"
    in_bucket, key = split_s3(input_uri)
    if in_bucket != bucket or not key.startswith(BATCH_INPUT_PREFIX) or ".." in key.split("/"):
        raise InvalidRequestError(
            f"input_uri must be under {where} (the only input this stack's jobs may read), got {input_uri}"
        )
    try:
        found = aws.s3().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("KeyCount", 0)
    except Exception as exc:
        raise aws.translate(exc, f"listing {input_uri}", settings.retry_after_seconds) from exc
    if not found:
        raise PreconditionMissingError(f"nothing at {input_uri}: upload JSON Lines files there first")


def start_transform(request: BatchRequest, settings: Settings | None = None) -> BatchStartedResponse:
    settings = settings or get_settings()
    bucket = settings.require("bucket_name")
    endpoint = settings.require("endpoint_name")
    if request.instance_count > settings.max_batch_instance_count:
        raise InvalidRequestError(
            f"instance_count {request.instance_count} is above this stack's MaxBatchInstanceCount "
            f"({settings.max_batch_instance_count})"
        )
    check_input(request.input_uri, bucket, settings)
    model_name, version = serving_model(endpoint, settings)
    job_name = transform_job_name(settings.training_job_prefix)
    output_uri = f"s3://{bucket}/{BATCH_OUTPUT_PREFIX}{job_name}/"
    job = build_transform_request(
        job_name=job_name,
        model_name=model_name,
        input_uri=request.input_uri,
        output_uri=output_uri,
        instance_type=request.instance_type,
        instance_count=request.instance_count,
    )
    try:
        arn = aws.sagemaker().create_transform_job(**job)["TransformJobArn"]
    except ClientError as exc:
        if aws.error_code(exc) == "ResourceLimitExceeded":
            raise QuotaExceededError(
                f"SageMaker transform quota reached for {job['TransformResources']['InstanceType']}; "
                "wait for running jobs or request a quota increase",
                retry_after=settings.retry_after_seconds,
            ) from exc
        raise aws.translate(exc, "SageMaker CreateTransformJob", settings.retry_after_seconds) from exc
    except Exception as exc:
        raise aws.translate(exc, "SageMaker CreateTransformJob", settings.retry_after_seconds) from exc
    logger.info("transform job started", transform_job_name=job_name, model_name=model_name)
    return BatchStartedResponse(
        transform_job_name=job_name,
        transform_job_arn=str(arn),
        status="InProgress",
        model_name=model_name,
        model_version=version,
        input_uri=request.input_uri,
        output_uri=output_uri,
    )


def get_transform_status(job_name: str, settings: Settings | None = None) -> BatchStatusResponse:
    settings = settings or get_settings()
    if not is_own_job(job_name, settings):
        raise ResourceNotFoundError(f"no batch job named {job_name!r} was started by this API")
    what = f"SageMaker DescribeTransformJob({job_name})"
    try:
        job = aws.sagemaker().describe_transform_job(TransformJobName=job_name)
    except ClientError as exc:
        if any(m in aws.error_message(exc).lower() for m in _MISSING):
            raise ResourceNotFoundError(f"no batch job named {job_name!r}") from exc
        raise aws.translate(exc, what, settings.retry_after_seconds) from exc
    except Exception as exc:
        raise aws.translate(exc, what, settings.retry_after_seconds) from exc
    resources = job.get("TransformResources") or {}
    return BatchStatusResponse(
        transform_job_name=str(job["TransformJobName"]),
        transform_job_arn=str(job["TransformJobArn"]),
        status=str(job["TransformJobStatus"]),
        failure_reason=job.get("FailureReason"),
        model_name=job.get("ModelName"),
        input_uri=job.get("TransformInput", {}).get("DataSource", {}).get("S3DataSource", {}).get("S3Uri"),
        output_uri=(job.get("TransformOutput") or {}).get("S3OutputPath"),
        instance_type=resources.get("InstanceType"),
        instance_count=resources.get("InstanceCount"),
        created_at=job.get("CreationTime"),
        started_at=job.get("TransformStartTime"),
        ended_at=job.get("TransformEndTime"),
    )
