"""Deploy ``model.tar.gz`` to a SageMaker real-time endpoint on the Hugging Face inference DLC.

The SageMaker calls are the deploy function's (``textclf_api.logic.deployment.change_endpoint``,
given this session's clients and settings built from the flags): the archive is admitted the way
the function admits a training job's -- hashed, stored content-addressed as
``<prefix>/<sha256[:16]>/model.tar.gz`` with S3's own SHA-256, verified again before CreateModel --
the Model runs with network isolation when the archive installs nothing at start, and a busy
endpoint (the function's states) is refused. One deployment = a new Model and EndpointConfig,
then CreateEndpoint, or a blue/green UpdateEndpoint (the old config keeps serving until the new
one is healthy; a failed update rolls back to it). Old models and configs stay, so a rollback is
one UpdateEndpoint away. What this module adds: the image table, the upload, and waiting.

Image: ``huggingface-pytorch-inference`` 2.6.0 / transformers 5.5.3 / py312, CPU or GPU
variant by instance type, from the DLC account of the region (table below from
/work/shared/docs/aws-facts.md section 1, i.e. aws/deep-learning-containers
``docs/reference/region_availability.md``). ``--image-uri`` overrides it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textclf.errors import UserError

if TYPE_CHECKING:
    from textclf_api.logic.artifacts import Artifact
    from textclf_api.settings import Settings

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
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
DEFAULT_ENDPOINT_NAME = "textclf"


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
    from textclf_api.logic.deploy_records import fit_name

    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return fit_name(prefix, f"-{stamp}-{secrets.token_hex(2)}")


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


def admit_archive(
    s3: Any, model_data: str, upload_to: str | None, echo: Callable[[str], None] = print
) -> tuple[Artifact, str]:
    """Check ``model_data`` can serve and admit it as the deploy function admits a training job's
    archive: hashed while read, stored content-addressed as ``<prefix>/<sha256[:16]>/model.tar.gz``
    with S3's own SHA-256 of those bytes. A local archive is uploaded to ``upload_to``; an S3 one
    is copied there (default: ``models/`` of its own bucket, the stack's layout).
    Returns the admitted artifact and its prefix (what the rollout verifies again)."""
    from textclf_api.logic import artifacts

    from textclf.packaging.build import check_archive

    if model_data.startswith("s3://"):
        # Any archive is inspected, a training job's output included: one that cannot serve is
        # refused here, not discovered as a failing endpoint ten minutes later.
        if upload_to:
            bucket, prefix = parse_s3_uri(upload_to.rstrip("/"))
        else:
            bucket, prefix = parse_s3_uri(model_data)[0], artifacts.MODELS_PREFIX
        return _admit_s3_archive(s3, model_data, bucket, prefix, echo), prefix
    archive = Path(model_data).expanduser().resolve()
    if not archive.is_file():
        raise UserError(f"--model-data {model_data}: no such file (and not an s3:// URI)")
    check_archive(archive)
    if not upload_to:
        raise UserError("a local --model-data needs --upload-to s3://bucket/prefix")
    bucket, prefix = parse_s3_uri(upload_to.rstrip("/"))
    return _upload_archive(s3, archive, bucket, prefix, echo), prefix


def _inspect(archive: Path) -> Artifact:
    from textclf_api.logic import artifacts

    with archive.open("rb") as stream:
        try:
            return artifacts.inspect(stream, str(archive))
        except artifacts.ArtifactError as exc:
            raise UserError(f"{archive}: {exc}") from exc


def _upload_archive(
    s3: Any, archive: Path, bucket: str, prefix: str, echo: Callable[[str], None]
) -> Artifact:
    """Upload ``archive`` to its admitted key with its SHA-256 (S3 refuses bytes that do not match
    it), unless S3 already holds exactly these bytes there -- S3's own SHA-256 of the object, not
    merely the same size: the archive is code the endpoint runs."""
    from botocore.exceptions import BotoCoreError, ClientError
    from textclf_api.logic import artifacts

    local = _inspect(archive)
    # Content-addressed: a new archive never overwrites the one a running endpoint was built from.
    key = artifacts.admitted_key(local.sha256, prefix)
    uri = f"s3://{bucket}/{key}"
    try:
        if artifacts.holds(s3, bucket, key, local.sha256):
            echo(f"{uri} already uploaded (same sha256)")
            return replace(local, uri=uri)
        echo(f"{uri} exists with other or unverified bytes: uploading again")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise UserError(f"cannot read {uri}: {exc}") from exc
    echo(
        f"uploading {archive} ({archive.stat().st_size / 1e6:.1f} MB, sha256 {local.sha256[:16]}...) to {uri}"
    )
    try:
        # One PUT (S3 takes up to 5 GB so): its ChecksumSHA256 is the whole file's, which S3
        # verifies on receipt and reports on every HEAD after.
        with archive.open("rb") as body:
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=artifacts.b64_sha256(local.sha256),
            )
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"upload to {uri} failed: {exc}") from exc
    return replace(local, uri=uri)


def _admit_s3_archive(s3: Any, uri: str, bucket: str, prefix: str, echo: Callable[[str], None]) -> Artifact:
    """Download ``uri``, :func:`textclf.packaging.build.check_archive` it, and admit those bytes
    (copied server-side to ``bucket/<prefix>/<sha256[:16]>/``; the copy's checksum must match)."""
    import tempfile

    from botocore.exceptions import BotoCoreError, ClientError
    from textclf_api.logic import artifacts

    from textclf.packaging.build import check_archive

    src_bucket, src_key = parse_s3_uri(uri)
    with tempfile.TemporaryDirectory(prefix="textclf-check-") as tmp:
        local = Path(tmp) / "model.tar.gz"
        try:
            size = int(s3.head_object(Bucket=src_bucket, Key=src_key)["ContentLength"])
            echo(f"checking {uri} ({size / 1e6:.1f} MB) before deploying it")
            s3.download_file(src_bucket, src_key, str(local))
        except (BotoCoreError, ClientError) as exc:
            raise UserError(f"cannot read {uri}: {exc}") from exc
        check_archive(local)
        read = replace(_inspect(local), uri=uri)
    key = artifacts.admitted_key(read.sha256, prefix)
    try:
        if (src_bucket, src_key) == (bucket, key) and artifacts.holds(s3, bucket, key, read.sha256):
            return read  # already an admitted copy (e.g. a version's model data)
        admitted = artifacts.admit(uri, bucket, s3=s3, read=read, prefix=prefix)
    except artifacts.ArtifactError as exc:
        raise UserError(f"{uri}: {exc}") from exc
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"cannot admit {uri} into s3://{bucket}/{prefix}: {exc}") from exc
    echo(f"admitted {uri} as {admitted.uri} (sha256 {admitted.sha256[:16]}...)")
    return admitted


@dataclass
class DeployResult:
    endpoint_name: str
    model_name: str
    endpoint_config_name: str
    action: str  # "created" | "updated"
    status: str
    elapsed_s: float


def _call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Run AWS calls; their errors become a one-line UserError naming the call."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        what = exc.operation_name or what
        raise UserError(f"{what} failed: {err.get('Code', 'Error')}: {err.get('Message', exc)}") from exc
    except BotoCoreError as exc:
        raise UserError(f"{what} failed: {exc}") from exc


def cli_settings(endpoint_name: str, role_arn: str, instance_type: str, instance_count: int) -> Settings:
    """The deploy function's settings for a hand deploy: a real-time fleet of ``instance_count``
    (no autoscaling), blue/green all at once without a bake time (there are no alarms to watch)."""
    from textclf_api.settings import Settings

    # By field name and validated like the environment (bounds, max >= min).
    return Settings.model_validate(
        {
            "endpoint_name": endpoint_name,
            "sagemaker_role_arn": role_arn,
            "endpoint_type": "RealTime",
            "endpoint_instance_type": instance_type,
            "endpoint_min_instances": instance_count,
            "endpoint_max_instances": instance_count,
            "rollback_alarms": (),
            "canary_wait_seconds": 0,
        }
    )


def deploy(
    sm: Any,
    s3: Any,
    *,
    artifact: Artifact,
    role_arn: str,
    image_uri: str,
    admitted_prefix: str | None = None,
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
    """The deploy function's rollout (:func:`textclf_api.logic.deployment.change_endpoint`: the
    admitted bytes verified, network isolation when the archive installs nothing) of ``artifact``,
    then wait for InService. A busy or Failed endpoint is refused, not queued or replaced."""
    from textclf_api.logic import artifacts, deployment

    check_endpoint_name(endpoint_name)
    if instance_count < 1:
        raise UserError(f"--instance-count must be >= 1, got {instance_count}")
    started = clock()
    name = unique_name(endpoint_name)
    release = deployment.Release(
        image=image_uri,
        model_data=artifact.uri,
        admission=artifact.metadata(),
        environment=environment or {},
        admitted_prefix=artifacts.MODELS_PREFIX if admitted_prefix is None else admitted_prefix,
    )
    try:
        change = _call(
            "rollout",
            deployment.change_endpoint,
            release=release,
            name=name,
            settings=cli_settings(endpoint_name, role_arn, instance_type, instance_count),
            clients=deployment.Clients(sagemaker=sm, s3=s3),
            replace_failed=False,
            echo=echo,
        )
    except artifacts.ArtifactError as exc:
        raise UserError(f"refused: {exc}") from exc
    except deployment.EndpointFailedError as exc:
        raise UserError(
            f"endpoint {endpoint_name} is Failed ({exc}); a failed endpoint cannot be updated: delete it "
            f"(textclf teardown --endpoint-name {endpoint_name}) and deploy again"
        ) from exc
    if change.action == "queued":
        raise UserError(
            f"endpoint {endpoint_name} is {change.state}; wait until it is InService, then deploy again"
        )
    if not wait:
        return DeployResult(endpoint_name, name, name, change.action, "not waited", clock() - started)
    status = wait_in_service(
        sm, endpoint_name, name, timeout_s=timeout_s, poll_s=poll_s, echo=echo, sleep=sleep, clock=clock
    )
    return DeployResult(endpoint_name, name, name, change.action, status, clock() - started)


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
    """Poll DescribeEndpoint until the rollout to ``config_name`` ends as the deploy function judges
    it (:func:`textclf_api.logic.deployment.rollout_result`); raise unless it serves, or on timeout."""
    from textclf_api.logic.deployment import rollout_result

    start = clock()
    last_status = None
    changed = False
    stale_polls = 0
    while True:
        desc = _call("DescribeEndpoint", sm.describe_endpoint, EndpointName=endpoint_name)
        status = str(desc.get("EndpointStatus"))
        elapsed = clock() - start
        if status != last_status:
            echo(f"endpoint {endpoint_name}: {status} ({_mmss(elapsed)})")
            last_status = status
        result = rollout_result(desc, config_name)
        if result is not None and result.status == "deployed":
            return status
        if status == "InService":
            stale_polls += 1
        else:
            changed = True
        # Grace of two polls: right after UpdateEndpoint, DescribeEndpoint may still show the
        # pre-update state (InService on the old config).
        if result is not None and (status != "InService" or changed or stale_polls > 2):
            raise UserError(
                f"endpoint {endpoint_name}: {result.reason} "
                f"(container logs: CloudWatch log group /aws/sagemaker/Endpoints/{endpoint_name})"
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
