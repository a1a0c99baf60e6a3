"""Deploy ``model.tar.gz`` to a SageMaker real-time endpoint on the Hugging Face inference DLC.

One deployment = a new Model and a new EndpointConfig (both immutable, so each gets a fresh
unique name), then CreateEndpoint, or UpdateEndpoint when the endpoint already exists
(SageMaker swaps the fleet blue/green; the old config keeps serving until the new one is
healthy, and a failed update rolls back to it). Old models and configs are left in place so
a rollback is one UpdateEndpoint away.

Image: ``huggingface-pytorch-inference`` 2.6.0 / transformers 5.5.3 / py312, CPU or GPU
variant by instance type, from the DLC account of the region (table below from
/work/shared/docs/aws-facts.md section 1, i.e. aws/deep-learning-containers
``docs/reference/region_availability.md``). ``--image-uri`` overrides it.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textclf.errors import UserError
from textclf.hashing import sha256_file

INFERENCE_REPOSITORY = "huggingface-pytorch-inference"
CPU_TAG = "2.6.0-transformers5.5.3-cpu-py312-ubuntu22.04"
GPU_TAG = "2.6.0-transformers5.5.3-gpu-py312-cu124-ubuntu22.04"
_MAIN_ACCOUNT = "763104351884"
_MAIN_REGIONS = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
]
#: Region -> account of the AWS Deep Learning Containers registry.
DLC_ACCOUNTS: dict[str, str] = dict.fromkeys(_MAIN_REGIONS, _MAIN_ACCOUNT) | {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "ap-southeast-3": "907027046896",
    "ap-south-2": "772153158452",
    "eu-south-1": "692866216735",
    "eu-south-2": "503227376785",
    "eu-central-2": "380420809688",
    "il-central-1": "780543022126",
    "me-south-1": "217643126080",
    "me-central-1": "914824155844",
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "us-gov-east-1": "446045086412",
    "us-gov-west-1": "442386744353",
}
VARIANT_NAME = "AllTraffic"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_ENDPOINT_NAME = "textclf"
#: Container environment. One model-server worker: inference.py sizes its intra-op thread pool
#: to all the instance's cores, and two workers would each do the same and fight over them.
#: HF_HUB_OFFLINE: the model is in the archive; never reach for the Hub.
DEFAULT_ENVIRONMENT = {
    "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    "HF_HUB_OFFLINE": "1",
}
_BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")
_NAME_MAX = 63


def is_gpu_instance(instance_type: str) -> bool:
    """``ml.g*`` and ``ml.p*`` families have NVIDIA GPUs; Inferentia/Trainium need other images."""
    parts = instance_type.split(".")
    if len(parts) != 3 or parts[0] != "ml":
        raise UserError(f"instance type {instance_type!r} is not of the form ml.<family>.<size>")
    family = parts[1]
    if family.startswith(("inf", "trn")):
        raise UserError(f"{instance_type}: Inferentia/Trainium need a Neuron image; pass --image-uri")
    return family.startswith(("g", "p"))


def default_image_uri(region: str, instance_type: str) -> str:
    """The HF inference DLC for ``region``, GPU variant for GPU instance types."""
    account = DLC_ACCOUNTS.get(region)
    if account is None:
        raise UserError(f"no Hugging Face inference image known for region {region!r}; pass --image-uri")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    tag = GPU_TAG if is_gpu_instance(instance_type) else CPU_TAG
    return f"{account}.dkr.ecr.{region}.{domain}/{INFERENCE_REPOSITORY}:{tag}"


def unique_name(prefix: str, now: datetime | None = None) -> str:
    """``<prefix>-YYYYmmdd-HHMMSS-<4 hex>``, within SageMaker's 63-character name limit."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    suffix = f"-{stamp}-{secrets.token_hex(2)}"
    return prefix[: _NAME_MAX - len(suffix)].rstrip("-") + suffix


def check_endpoint_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name):
        raise UserError(
            f"endpoint name {name!r} is invalid: letters, digits and hyphens, at most 63 characters, "
            "starting and ending with a letter or digit"
        )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    if not uri.startswith("s3://"):
        raise UserError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise UserError(f"{uri!r} has no bucket")
    return bucket, key


def upload_model_data(s3: Any, archive: Path, prefix_uri: str, echo: Callable[[str], None] = print) -> str:
    """Upload ``archive`` to ``<prefix>/<sha256[:12]>/model.tar.gz`` with its SHA-256 (S3 refuses
    bytes that do not match it), unless S3 already holds exactly these bytes there.

    The archive is code the endpoint runs, so "already there" means S3's own SHA-256 of the object
    equals the local file's -- not merely the same size.
    """
    if not archive.is_file():
        raise UserError(f"{archive} does not exist (build it with textclf package)")
    bucket, prefix = parse_s3_uri(prefix_uri.rstrip("/"))
    digest = sha256_file(archive)
    checksum = base64.b64encode(bytes.fromhex(digest)).decode("ascii")
    # Content-addressed: a new archive never overwrites the one a running endpoint was built from.
    key = "/".join(p for p in (prefix, digest[:12], "model.tar.gz") if p)
    uri = f"s3://{bucket}/{key}"
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        if head.get("ChecksumSHA256") == checksum:
            echo(f"{uri} already uploaded (same sha256)")
            return uri
        echo(f"{uri} exists with other or unverified bytes: uploading again")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise UserError(f"cannot read {uri}: {exc}") from exc
    echo(f"uploading {archive} ({archive.stat().st_size / 1e6:.1f} MB, sha256 {digest[:16]}...) to {uri}")
    try:
        # One PUT (S3 takes up to 5 GB so): its ChecksumSHA256 is the whole file's, which S3
        # verifies on receipt and reports on every HEAD after.
        with archive.open("rb") as body:
            s3.put_object(
                Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum
            )
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"upload to {uri} failed: {exc}") from exc
    return uri


def check_s3_archive(s3: Any, uri: str, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Download ``uri`` and :func:`textclf.packaging.build.check_archive` it; its meta."""
    import tempfile

    from botocore.exceptions import BotoCoreError, ClientError

    from textclf.packaging.build import check_archive

    bucket, key = parse_s3_uri(uri)
    with tempfile.TemporaryDirectory(prefix="textclf-check-") as tmp:
        local = Path(tmp) / "model.tar.gz"
        try:
            size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
            echo(f"checking {uri} ({size / 1e6:.1f} MB) before deploying it")
            s3.download_file(bucket, key, str(local))
        except (BotoCoreError, ClientError) as exc:
            raise UserError(f"cannot read {uri}: {exc}") from exc
        return check_archive(local)


@dataclass
class DeployResult:
    endpoint_name: str
    model_name: str
    endpoint_config_name: str
    action: str  # "created" | "updated"
    status: str
    elapsed_s: float


def _describe(sm: Any, name: str) -> dict[str, Any] | None:
    """DescribeEndpoint, or None when there is no such endpoint."""
    from botocore.exceptions import ClientError

    try:
        result: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
    except ClientError as exc:
        # SageMaker answers a missing endpoint with ValidationException "Could not find endpoint".
        if "Could not find" in str(exc.response.get("Error", {}).get("Message", "")):
            return None
        raise
    return result


def _call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Run one SageMaker call; AWS errors become a one-line UserError naming the call."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise UserError(f"{what} failed: {err.get('Code', 'Error')}: {err.get('Message', exc)}") from exc
    except BotoCoreError as exc:
        raise UserError(f"{what} failed: {exc}") from exc


def deploy(
    sm: Any,
    *,
    model_data: str,
    role_arn: str,
    image_uri: str,
    endpoint_name: str = DEFAULT_ENDPOINT_NAME,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    instance_count: int = 1,
    environment: dict[str, str] | None = None,
    wait: bool = True,
    timeout_s: float = 1800.0,
    poll_s: float = 15.0,
    echo: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeployResult:
    """Create the Model and EndpointConfig, create or update the endpoint, wait for InService."""
    check_endpoint_name(endpoint_name)
    parse_s3_uri(model_data)
    if instance_count < 1:
        raise UserError(f"--instance-count must be >= 1, got {instance_count}")
    started = clock()
    existing = _call("DescribeEndpoint", _describe, sm=sm, name=endpoint_name)
    if existing is not None:
        status = existing.get("EndpointStatus", "")
        if status in _BUSY:
            raise UserError(
                f"endpoint {endpoint_name} is {status}; wait until it is InService, then deploy again"
            )
        if status == "Failed":
            raise UserError(
                f"endpoint {endpoint_name} is Failed ({existing.get('FailureReason', 'no reason given')}); "
                f"a failed endpoint cannot be updated: delete it (aws sagemaker delete-endpoint "
                f"--endpoint-name {endpoint_name}) and deploy again"
            )
    model_name = unique_name(endpoint_name)
    config_name = model_name
    env = DEFAULT_ENVIRONMENT | (environment or {})
    echo(f"CreateModel {model_name}: image {image_uri}, model data {model_data}")
    _call(
        "CreateModel",
        sm.create_model,
        ModelName=model_name,
        PrimaryContainer={"Image": image_uri, "ModelDataUrl": model_data, "Environment": env},
        ExecutionRoleArn=role_arn,
    )
    echo(f"CreateEndpointConfig {config_name}: {instance_count} x {instance_type}")
    _call(
        "CreateEndpointConfig",
        sm.create_endpoint_config,
        EndpointConfigName=config_name,
        ProductionVariants=[
            {
                "VariantName": VARIANT_NAME,
                "ModelName": model_name,
                "InstanceType": instance_type,
                "InitialInstanceCount": instance_count,
            }
        ],
    )
    if existing is None:
        echo(f"CreateEndpoint {endpoint_name}")
        _call(
            "CreateEndpoint", sm.create_endpoint, EndpointName=endpoint_name, EndpointConfigName=config_name
        )
        action = "created"
    else:
        echo(f"UpdateEndpoint {endpoint_name} (was {existing.get('EndpointConfigName')})")
        _call(
            "UpdateEndpoint", sm.update_endpoint, EndpointName=endpoint_name, EndpointConfigName=config_name
        )
        action = "updated"
    if not wait:
        return DeployResult(endpoint_name, model_name, config_name, action, "not waited", clock() - started)
    status = wait_in_service(
        sm,
        endpoint_name,
        config_name,
        timeout_s=timeout_s,
        poll_s=poll_s,
        echo=echo,
        sleep=sleep,
        clock=clock,
    )
    return DeployResult(endpoint_name, model_name, config_name, action, status, clock() - started)


def wait_in_service(
    sm: Any,
    endpoint_name: str,
    config_name: str,
    *,
    timeout_s: float = 1800.0,
    poll_s: float = 15.0,
    echo: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll DescribeEndpoint until ``endpoint_name`` serves ``config_name``; raise on failure or timeout.

    An update that fails is rolled back by SageMaker: the endpoint returns to InService on the
    *old* config with a FailureReason. So success means InService on the new config, and
    InService on another config after the endpoint was seen changing means the update failed.
    """
    start = clock()
    last_status = None
    changed = False
    stale_polls = 0
    while True:
        desc = _call("DescribeEndpoint", sm.describe_endpoint, EndpointName=endpoint_name)
        status = str(desc.get("EndpointStatus"))
        serving = desc.get("EndpointConfigName")
        elapsed = clock() - start
        if status != last_status:
            echo(f"endpoint {endpoint_name}: {status} ({_mmss(elapsed)})")
            last_status = status
        if status != "InService":
            changed = True
        if status == "InService" and serving == config_name:
            return status
        if status == "Failed":
            raise UserError(
                f"endpoint {endpoint_name} failed: {desc.get('FailureReason', 'no reason given')} "
                f"(container logs: CloudWatch log group /aws/sagemaker/Endpoints/{endpoint_name})"
            )
        if status == "InService":
            stale_polls += 1
        # Grace of two polls: right after UpdateEndpoint, DescribeEndpoint may still show the
        # pre-update state.
        if status == "InService" and (changed or stale_polls > 2):
            raise UserError(
                f"update of endpoint {endpoint_name} to {config_name} failed and was rolled back to "
                f"{serving}: {desc.get('FailureReason', 'no reason given')}"
            )
        if elapsed >= timeout_s:
            raise UserError(
                f"endpoint {endpoint_name} still {status} after {_mmss(elapsed)}; it keeps going in "
                "SageMaker: check the console or run textclf deploy again once it settles"
            )
        sleep(poll_s)


def _mmss(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
