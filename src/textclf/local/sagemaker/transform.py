"""Transform jobs of the local SageMaker: Batch Transform on one machine, for real.

What SageMaker does with a ``CreateTransformJob`` request, on this machine: the job's Model
archive is downloaded from (local) S3 and loaded as the container would load it (its own
``code/inference.py``); every object under the input prefix is split by line into mini-batches of
at most ``MaxPayloadInMB``; each mini-batch goes through the toolkit's chain
``input_fn(ContentType)`` -> ``predict_fn`` -> ``output_fn(Accept)``; the answers are joined line
by line (``AssembleWith: Line``) into ``<S3OutputPath>/<file>.out``. A record the model refuses
fails the job with the file and line in ``FailureReason``, as a 4xx from the container does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf_api.logic.transform import split_s3

from textclf.local import LOCAL_ACCOUNT_ID
from textclf.local.sagemaker.common import INTERRUPTED, SageMakerError, Services, record_of

log = logging.getLogger(__name__)

TRANSFORM_EVENT = "SageMaker Transform Job State Change"


@dataclass
class TransformJob:
    name: str
    request: dict[str, Any]
    region: str
    status: str = "InProgress"
    failure_reason: str | None = None
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    records: int = 0

    KIND = "transform-job"

    def __post_init__(self) -> None:
        self.created = self.created or time.time()

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{LOCAL_ACCOUNT_ID}:transform-job/{self.name}"

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = {
            **{k: v for k, v in self.request.items() if k != "Tags"},
            "TransformJobName": self.name,
            "TransformJobArn": self.arn,
            "TransformJobStatus": self.status,
            "CreationTime": self.created,
        }
        for key, value in (
            ("FailureReason", self.failure_reason),
            ("TransformStartTime", self.started),
            ("TransformEndTime", self.ended),
        ):
            if value is not None:
                desc[key] = value
        return desc


def mini_batches(text: str, max_bytes: int) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, lines)`` of at most ``max_bytes`` each (SplitType Line, MultiRecord);
    a single longer line is sent alone, as SageMaker does."""
    batch: list[str] = []
    size = 0
    first = 1
    for number, line in enumerate(text.splitlines(), start=1):
        cost = len(line.encode("utf-8")) + 1
        if batch and size + cost > max_bytes:
            yield first, batch
            batch, size = [], 0
        if not batch:
            first = number
        batch.append(line)
        size += cost
    if batch:
        yield first, batch


def transform_objects(
    served: Any,
    objects: Iterator[tuple[str, str]],
    request: dict[str, Any],
    write: Callable[[str, str], None],
) -> int:
    """Score every ``(name, text)`` object through the model's handler chain; ``write(name, out)``."""
    content_type = request["TransformInput"].get("ContentType", "application/json")
    accept = request["TransformOutput"].get("Accept", "application/json")
    max_bytes = int(request.get("MaxPayloadInMB", 6)) * 1024 * 1024
    module, model = served.module, served.model
    records = 0
    for name, text in objects:
        parts: list[str] = []
        for first, lines in mini_batches(text, max_bytes):
            try:
                texts = module.input_fn("\n".join(lines), content_type)
            except ValueError as exc:
                raise TransformError(f"{name}: {_shift(str(exc), first - 1)}") from exc
            prediction = module.predict_fn(texts, model)
            prediction["model_version"] = served.version
            rendered = module.output_fn(prediction, accept)
            parts.append(rendered if rendered.endswith("\n") else rendered + "\n")
            records += len(texts)
        write(name, "".join(parts))
    return records


class TransformError(Exception):
    """A record the model refused: the job fails with this reason."""


def _shift(message: str, offset: int) -> str:
    """The model names lines of its mini-batch; the job's reason names lines of the file."""
    if offset and message.startswith("line "):
        number, _, rest = message[5:].partition(":")
        if number.isdigit():
            return f"line {int(number) + offset}:{rest}"
    return message


def load_model(archive: Path, version: str | None, sha256: str | None) -> Any:
    """The archive loaded as the container loads it (its own code/inference.py), checked against
    the SHA-256 S3 holds for it when there is one."""
    from textclf.serving.endpoint import ServingModel

    return ServingModel.load(archive, version, sha256)


class TransformJobs:
    """CreateTransformJob, DescribeTransformJob."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.transforms: dict[str, TransformJob] = {}

    def restore(self) -> None:
        """The recorded jobs; one that was running when the stack stopped ends Failed."""
        for record in self.services.records(TransformJob.KIND):
            job = TransformJob(**record)
            self.transforms[job.name] = job
            if job.status == "InProgress":
                job.status, job.failure_reason = "Failed", f"InternalServerError: {INTERRUPTED}"
                job.ended = time.time()
                self._save(job)

    def _save(self, job: TransformJob) -> None:
        self.services.save(TransformJob.KIND, job.name, record_of(job))

    def create_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("TransformJobName", ""))
        # moto checks the request and that the model exists; the job itself runs here.
        self.services.client("sagemaker").describe_model(ModelName=str(request.get("ModelName", "")))
        with self.services.lock:
            if name in self.transforms:
                raise SageMakerError("ResourceInUse", f"Transform job {name} already exists")
            job = TransformJob(name=name, request=request, region=self.services.region)
            self.transforms[name] = job
            self._save(job)
        self.services.background(self._run_transform, job, name=f"transform-{name}")
        return {"TransformJobArn": job.arn}

    def describe_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self.transforms.get(str(request.get("TransformJobName")))
        if job is None:
            raise SageMakerError("ValidationException", "Could not find requested job with name")
        return job.describe()

    def _run_transform(self, job: TransformJob) -> None:
        job.started = time.time()
        try:
            served = load_model(
                *self.services.fetch_model_of(str(job.request["ModelName"]), f"transform-{job.name}")
            )
            job.records = transform_objects(served, self._input_objects(job), job.request, self._writer(job))
            job.status = "Completed"
        except TransformError as exc:
            job.status, job.failure_reason = "Failed", f"ClientError: {exc}"[:1000]
        except Exception as exc:  # S3, a broken archive: the job fails, the server lives
            log.exception("transform job %s failed", job.name)
            job.status, job.failure_reason = "Failed", f"ClientError: {type(exc).__name__}: {exc}"[:1000]
        finally:
            job.ended = time.time()
            self._save(job)
        log.info("transform job %s %s: %d records", job.name, job.status, job.records)
        detail = {
            "TransformJobName": job.name,
            "TransformJobStatus": job.status,
            "ModelName": job.request.get("ModelName"),
        }
        if job.failure_reason:
            detail["FailureReason"] = job.failure_reason
        self.services.publish(TRANSFORM_EVENT, detail, job.arn)

    def _input_objects(self, job: TransformJob) -> Iterator[tuple[str, str]]:
        """``(name relative to the input prefix's folder, text)`` of every input object."""
        uri = job.request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, prefix = split_s3(uri)
        folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        s3 = self.services.client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                yield obj["Key"][len(folder) :], body.decode("utf-8", errors="replace")

    def _writer(self, job: TransformJob) -> Callable[[str, str], None]:
        bucket, prefix = split_s3(job.request["TransformOutput"]["S3OutputPath"])
        s3 = self.services.client("s3")

        def write(name: str, text: str) -> None:
            key = "/".join(p for p in (prefix.rstrip("/"), f"{name}.out") if p)
            s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"))

        return write
