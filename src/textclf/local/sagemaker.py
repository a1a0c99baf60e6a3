"""SageMaker's control plane on one machine: real training jobs and real endpoint rollouts.

moto records a training job as Completed the moment it is created and has no UpdateEndpoint, so
the loop the product exists for could never run locally on moto alone. This server sits in front
of moto (``AWS_ENDPOINT_URL_SAGEMAKER`` points here) and answers the operations moto only
records; everything else (models, endpoint configs, the model registry, ...) is passed to moto
unchanged:

- **Training jobs** run ``train.py`` from the job's source bundle, as the SageMaker training
  toolkit does: channels downloaded from (local) S3 into ``input/data/<channel>``, the
  hyperparameters as ``--name value`` flags, ``SM_MODEL_DIR``/``SM_CHANNEL_*``/``SM_OUTPUT_DATA_DIR``
  set, metrics parsed from the output with the job's own ``MetricDefinitions``, ``model.tar.gz``
  uploaded to the output path. Status follows the process: InProgress, then Completed, Failed
  or Stopped. Hub base models are replaced by a local folder (no network here).
- **Endpoints** (Create/Update/Describe/Delete): the model of the new endpoint config is
  downloaded and handed to the local model server (``POST /admin/model``), which loads it beside
  the serving one and switches when it is warm -- no request is dropped. Status goes Creating /
  Updating -> InService (or back to the old config with a FailureReason).
- **Events**: each of these state changes, and every CreateModelPackage/UpdateModelPackage, is
  published on the local EventBridge with the shape SageMaker gives it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
from botocore.exceptions import ClientError
from starlette.types import ASGIApp, Receive, Scope, Send
from textclf_api.logic.training import TORCHRUN_LAUNCHER
from textclf_api.logic.transform import split_s3

from textclf.local import LOCAL_ACCOUNT_ID
from textclf.local.events import LocalEventBus
from textclf.local.servers import read_body
from textclf.local.transform import (
    TRANSFORM_EVENT,
    TransformError,
    TransformJob,
    load_model,
    transform_objects,
)
from textclf.training import launcher

log = logging.getLogger(__name__)

TRAINING_EVENT = "SageMaker Training Job State Change"
PACKAGE_EVENT = "SageMaker Model Package State Change"
ENDPOINT_EVENT = "SageMaker Endpoint State Change"
_MAX_BODY = 10 * 1024 * 1024
_JSON = "application/x-amz-json-1.1"
#: Lines of a failed job's output kept as its FailureReason (SageMaker keeps the error's tail too).
_FAILURE_LINES = 3


class SageMakerError(Exception):
    """An error answered in SageMaker's JSON shape (botocore raises it as a ClientError)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class TrainingJob:
    name: str
    request: dict[str, Any]
    region: str
    status: str = "InProgress"
    secondary_status: str = "Starting"
    failure_reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    artifact: str | None = None
    process: subprocess.Popen[str] | None = None
    stop_requested: bool = False

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{LOCAL_ACCOUNT_ID}:training-job/{self.name}"

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = {
            **{k: v for k, v in self.request.items() if k != "Tags"},
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary_status,
            "CreationTime": self.created,
            "LastModifiedTime": self.ended or self.started or self.created,
            "FinalMetricDataList": [
                {"MetricName": k, "Value": v, "Timestamp": self.ended or time.time()}
                for k, v in self.metrics.items()
            ],
        }
        for key, value in (
            ("FailureReason", self.failure_reason),
            ("TrainingStartTime", self.started),
            ("TrainingEndTime", self.ended),
        ):
            if value is not None:
                desc[key] = value
        if self.artifact:
            desc["ModelArtifacts"] = {"S3ModelArtifacts": self.artifact}
        if self.started is not None:
            end = self.ended or time.time()
            desc["TrainingTimeInSeconds"] = desc["BillableTimeInSeconds"] = int(end - self.started)
        return desc


@dataclass
class Endpoint:
    name: str
    config: str
    region: str
    status: str = "InService"
    failure_reason: str | None = None
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    #: False while the model server does not answer /ping (DescribeEndpoint then finds nothing).
    reachable: bool = True

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{LOCAL_ACCOUNT_ID}:endpoint/{self.name}"

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "EndpointConfigName": self.config,
            "EndpointStatus": self.status,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
        }
        if self.failure_reason:
            desc["FailureReason"] = self.failure_reason
        return desc


class LocalSageMaker:
    """The ASGI app (``app``) plus the job runner and the endpoint host behind it."""

    def __init__(
        self,
        *,
        moto_url: str,
        region: str,
        bus: LocalEventBus | None,
        workdir: Path,
        client: Callable[[str], Any],
        model_server_url: str,
        base_model: Path | None = None,
    ) -> None:
        self.moto_url = moto_url.rstrip("/")
        self.region = region
        self.bus = bus
        self.workdir = workdir
        self._client = client  # boto3 clients aimed at moto (S3, SageMaker)
        self.model_server_url = model_server_url.rstrip("/")
        self.base_model = base_model
        self.jobs: dict[str, TrainingJob] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.transforms: dict[str, TransformJob] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._http = httpx.Client(timeout=60, trust_env=False)
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateTrainingJob": self.create_training_job,
            "DescribeTrainingJob": self.describe_training_job,
            "ListTrainingJobs": self.list_training_jobs,
            "StopTrainingJob": self.stop_training_job,
            "CreateEndpoint": self.create_endpoint,
            "UpdateEndpoint": self.update_endpoint,
            "DescribeEndpoint": self.describe_endpoint,
            "DeleteEndpoint": self.delete_endpoint,
            "ListEndpoints": self.list_endpoints,
            "CreateTransformJob": self.create_transform_job,
            "DescribeTransformJob": self.describe_transform_job,
        }

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def app(self) -> ASGIApp:
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await read_body(receive, headers.get("content-length"), _MAX_BODY) or b""
        target = headers.get("x-amz-target", "")
        operation = target.split(".", 1)[1] if target.startswith("SageMaker.") else ""
        status, reply_headers, reply = await anyio.to_thread.run_sync(
            self.dispatch, operation, scope, headers, body
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply_headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    def dispatch(
        self, operation: str, scope: Scope, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        handler = self._handlers.get(operation)
        if operation == "UpdateModelPackage":
            body = self._keep_package_metadata(body)
        if handler is None:
            status, reply_headers, reply = self._forward(scope, headers, body)
            if status == 200 and operation in ("CreateModelPackage", "UpdateModelPackage"):
                self._package_changed(json.loads(reply)["ModelPackageArn"])
            return status, reply_headers, reply
        try:
            try:
                result = handler(json.loads(body or b"{}"))
            except ClientError as exc:  # what moto answered for a resource this call needs
                error = exc.response.get("Error", {})
                raise SageMakerError(
                    str(error.get("Code", "ValidationException")), str(error.get("Message"))
                ) from exc
        except SageMakerError as exc:
            shape = {"__type": exc.code, "message": exc.message}
            return exc.status, {"content-type": _JSON}, json.dumps(shape).encode()
        return 200, {"content-type": _JSON}, json.dumps(result).encode()

    def _forward(
        self, scope: Scope, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{self.moto_url}{scope['path']}" + (f"?{query}" if query else "")
        keep = {k: v for k, v in headers.items() if k not in ("host", "content-length", "connection")}
        response = self._http.request(scope["method"], url, headers=keep, content=body)
        drop = {"content-length", "transfer-encoding", "connection", "content-encoding"}
        reply_headers = {k: v for k, v in response.headers.items() if k.lower() not in drop}
        return response.status_code, reply_headers, response.content

    def stop(self) -> None:
        with self._lock:
            running = [j for j in self.jobs.values() if j.process is not None and j.process.poll() is None]
        for job in running:
            job.stop_requested = True
            assert job.process is not None
            job.process.terminate()
        for thread in self._threads:
            thread.join(30)
        self._http.close()

    def _background(self, target: Callable[..., None], *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _publish(self, detail_type: str, detail: dict[str, Any], resource: str) -> None:
        if self.bus is not None:
            self.bus.put(detail_type, detail, [resource])

    # -- training jobs ---------------------------------------------------------------------

    def create_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("TrainingJobName", ""))
        with self._lock:
            if name in self.jobs:
                raise SageMakerError("ResourceInUse", f"Training job {name} already exists")
            job = TrainingJob(name=name, request=request, region=self.region)
            self.jobs[name] = job
        self._background(self._run_job, job, name=f"training-{name}")
        return {"TrainingJobArn": job.arn}

    def describe_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(str(request.get("TrainingJobName")))
        if job is None:
            raise SageMakerError("ValidationException", "Requested resource not found.")
        return job.describe()

    def list_training_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        contains = str(request.get("NameContains", ""))
        status = request.get("StatusEquals")
        summaries = [
            {
                "TrainingJobName": j.name,
                "TrainingJobArn": j.arn,
                "TrainingJobStatus": j.status,
                "CreationTime": j.created,
            }
            for j in list(self.jobs.values())
            if contains in j.name and (status is None or j.status == status)
        ]
        return {"TrainingJobSummaries": summaries}

    def stop_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(str(request.get("TrainingJobName")))
        if job is None:
            raise SageMakerError("ValidationException", "Requested resource not found.")
        job.stop_requested = True
        job.status = "Stopping"
        if job.process is not None and job.process.poll() is None:
            job.process.terminate()
        return {}

    def _run_job(self, job: TrainingJob) -> None:
        root = self.workdir / "training" / job.name
        try:
            job.started = time.time()
            job.secondary_status = "Downloading"
            self._prepare_job(job, root)
            job.secondary_status = "Training"
            returncode, tail = self._train(job, root)
            if job.stop_requested:
                job.status, job.secondary_status = "Stopped", "Stopped"
            elif returncode != 0:
                job.status, job.secondary_status = "Failed", "Failed"
                job.failure_reason = f"AlgorithmError: train.py exited with {returncode}: " + " | ".join(tail)
            else:
                job.secondary_status = "Uploading"
                job.artifact = self._upload_outputs(job, root)
                job.status, job.secondary_status = "Completed", "Completed"
        except Exception as exc:  # a broken input, S3 or the bundle: the job fails, the server lives
            log.exception("training job %s failed before or after train.py", job.name)
            job.status, job.secondary_status = "Failed", "Failed"
            job.failure_reason = f"ClientError: {type(exc).__name__}: {exc}"[:1000]
        finally:
            job.ended = time.time()
            job.process = None
        log.info("training job %s %s (%s)", job.name, job.status, job.failure_reason or "ok")
        detail = {
            "TrainingJobName": job.name,
            "TrainingJobArn": job.arn,
            "TrainingJobStatus": job.status,
            "SecondaryStatus": job.secondary_status,
            "HyperParameters": job.request.get("HyperParameters", {}),
            "ResourceConfig": job.request.get("ResourceConfig", {}),
        }
        if job.failure_reason:
            detail["FailureReason"] = job.failure_reason
        self._publish(TRAINING_EVENT, detail, job.arn)

    def _prepare_job(self, job: TrainingJob, root: Path) -> None:
        """``/opt/ml`` for one job: channels, the unpacked source bundle, empty output folders."""
        if root.exists():
            shutil.rmtree(root)
        s3 = self._client("s3")
        for channel in job.request.get("InputDataConfig", []):
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, prefix = split_s3(uri)
            dest = root / "input" / "data" / channel["ChannelName"]
            dest.mkdir(parents=True)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    relative = obj["Key"][len(prefix) :].lstrip("/")
                    if relative:
                        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                        s3.download_file(bucket, obj["Key"], str(dest / relative))
        bundle_uri = json.loads(job.request["HyperParameters"]["sagemaker_submit_directory"])
        bucket, key = split_s3(bundle_uri)
        archive = root / "sourcedir.tar.gz"
        archive.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(archive))
        with tarfile.open(archive) as tar:
            tar.extractall(root / "code", filter="data")
        for folder in ("model", "output/data", "checkpoints"):
            (root / folder).mkdir(parents=True, exist_ok=True)

    def _train(self, job: TrainingJob, root: Path) -> tuple[int, list[str]]:
        """Run the program like the training toolkit; parse metrics as SageMaker does."""
        hyperparameters = {k: json.loads(v) for k, v in job.request.get("HyperParameters", {}).items()}
        program = str(hyperparameters.get("sagemaker_program", "train.py"))
        processes = self._processes(job, hyperparameters)
        argv = [*launcher(processes), str(root / "code" / program)]
        for name, value in hyperparameters.items():
            if name.startswith("sagemaker_"):
                continue
            flag = value if isinstance(value, str) else json.dumps(value)
            if name == "base_model" and self.base_model is not None:
                # No hub here: the local stand-in for every base model (textclf serve --base-model).
                log.info("training job %s: base model %s -> local %s", job.name, value, self.base_model)
                flag = str(self.base_model)
            argv += [f"--{name}", flag]
        channels = [c["ChannelName"] for c in job.request.get("InputDataConfig", [])]
        env = dict(os.environ)
        env.update(
            {
                "SM_MODEL_DIR": str(root / "model"),
                "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
                "SM_CHANNELS": json.dumps(channels),
                "SM_TRAINING_ENV": json.dumps({"job_name": job.name, "hyperparameters": hyperparameters}),
                "SM_HOSTS": json.dumps(["algo-1"]),
                "SM_CURRENT_HOST": "algo-1",
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "PYTHONUNBUFFERED": "1",
                **{f"SM_CHANNEL_{c.upper()}": str(root / "input" / "data" / c) for c in channels},
            }
        )
        # The code in the bundle, not this checkout's: what the job runs is what was uploaded.
        env.pop("TEXTCLF_MODEL_CODE", None)
        definitions = [
            (d["Name"], re.compile(d["Regex"]))
            for d in job.request.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
        ]
        tail: deque[str] = deque(maxlen=_FAILURE_LINES)
        log_path = root / "train.log"
        with log_path.open("w", encoding="utf-8") as log_file:
            job.process = subprocess.Popen(
                argv,
                cwd=root / "code",
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
            )
            assert job.process.stdout is not None
            for line in job.process.stdout:
                log_file.write(line)
                stripped = line.strip()
                if stripped:
                    tail.append(stripped[:300])
                for metric, regex in definitions:
                    found = regex.search(line)
                    if found:
                        job.metrics[metric] = float(found.group(1))
            returncode = job.process.wait()
        log.info("training job %s: train.py exited %d (log %s)", job.name, returncode, log_path)
        return returncode, list(tail)

    @staticmethod
    def _processes(job: TrainingJob, hyperparameters: dict[str, Any]) -> int:
        """Processes of the job here: with the toolkit's torchrun launcher on, one per instance
        (a CPU is one device; in the cloud it is one per GPU of every instance), else one."""
        if hyperparameters.get(TORCHRUN_LAUNCHER) is not True:
            return 1
        return max(1, int(job.request.get("ResourceConfig", {}).get("InstanceCount", 1)))

    def _upload_outputs(self, job: TrainingJob, root: Path) -> str:
        """``<S3OutputPath>/<job>/output/model.tar.gz`` (and ``output.tar.gz``), as SageMaker does."""
        bucket, prefix = split_s3(job.request["OutputDataConfig"]["S3OutputPath"])
        base = "/".join(p for p in (prefix.rstrip("/"), job.name, "output") if p)
        s3 = self._client("s3")
        for folder, name in (("model", "model.tar.gz"), ("output/data", "output.tar.gz")):
            archive = root / name
            with tarfile.open(archive, "w:gz") as tar:
                for path in sorted((root / folder).rglob("*")):
                    if path.is_file():
                        tar.add(path, arcname=path.relative_to(root / folder).as_posix())
            s3.upload_file(str(archive), bucket, f"{base}/{name}")
        return f"s3://{bucket}/{base}/model.tar.gz"

    # -- transform jobs --------------------------------------------------------------------

    def create_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("TransformJobName", ""))
        # moto checks the request and that the model exists; the job itself runs here.
        self._client("sagemaker").describe_model(ModelName=str(request.get("ModelName", "")))
        with self._lock:
            if name in self.transforms:
                raise SageMakerError("ResourceInUse", f"Transform job {name} already exists")
            job = TransformJob(name=name, request=request, region=self.region)
            self.transforms[name] = job
        self._background(self._run_transform, job, name=f"transform-{name}")
        return {"TransformJobArn": job.arn}

    def describe_transform_job(self, request: dict[str, Any]) -> dict[str, Any]:
        job = self.transforms.get(str(request.get("TransformJobName")))
        if job is None:
            raise SageMakerError("ValidationException", "Could not find requested job with name")
        return job.describe()

    def _run_transform(self, job: TransformJob) -> None:
        job.started = time.time()
        try:
            served = load_model(*self._fetch_model_of(str(job.request["ModelName"]), f"transform-{job.name}"))
            job.records = transform_objects(served, self._input_objects(job), job.request, self._writer(job))
            job.status = "Completed"
        except TransformError as exc:
            job.status, job.failure_reason = "Failed", f"ClientError: {exc}"[:1000]
        except Exception as exc:  # S3, a broken archive: the job fails, the server lives
            log.exception("transform job %s failed", job.name)
            job.status, job.failure_reason = "Failed", f"ClientError: {type(exc).__name__}: {exc}"[:1000]
        finally:
            job.ended = time.time()
        log.info("transform job %s %s: %d records", job.name, job.status, job.records)
        detail = {
            "TransformJobName": job.name,
            "TransformJobStatus": job.status,
            "ModelName": job.request.get("ModelName"),
        }
        if job.failure_reason:
            detail["FailureReason"] = job.failure_reason
        self._publish(TRANSFORM_EVENT, detail, job.arn)

    def _input_objects(self, job: TransformJob) -> Iterator[tuple[str, str]]:
        """``(name relative to the input prefix's folder, text)`` of every input object."""
        uri = job.request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, prefix = split_s3(uri)
        folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        s3 = self._client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                yield obj["Key"][len(folder) :], body.decode("utf-8", errors="replace")

    def _writer(self, job: TransformJob) -> Callable[[str, str], None]:
        bucket, prefix = split_s3(job.request["TransformOutput"]["S3OutputPath"])
        s3 = self._client("s3")

        def write(name: str, text: str) -> None:
            key = "/".join(p for p in (prefix.rstrip("/"), f"{name}.out") if p)
            s3.put_object(Bucket=bucket, Key=key, Body=text.encode("utf-8"))

        return write

    # -- endpoints -------------------------------------------------------------------------

    def register_endpoint(self, name: str, config: str) -> None:
        """The endpoint the stack starts with (its model is already loaded in the model server)."""
        with self._lock:
            self.endpoints[name] = Endpoint(name=name, config=config, region=self.region)

    def set_reachable(self, name: str, reachable: bool) -> None:
        endpoint = self.endpoints.get(name)
        if endpoint is not None:
            endpoint.reachable = reachable

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None or not endpoint.reachable:
            arn = f"arn:aws:sagemaker:{self.region}:{LOCAL_ACCOUNT_ID}:endpoint/{name}"
            raise SageMakerError("ValidationException", f'Could not find endpoint "{arn}".')
        return endpoint

    def describe_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._endpoint(str(request.get("EndpointName"))).describe()

    def list_endpoints(self, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "Endpoints": [
                {
                    k: e.describe()[k]
                    for k in ("EndpointName", "EndpointArn", "EndpointStatus", "CreationTime")
                }
                for e in self.endpoints.values()
                if e.reachable
            ]
        }

    def create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name, config = str(request["EndpointName"]), str(request["EndpointConfigName"])
        with self._lock:
            if name in self.endpoints:
                raise SageMakerError(
                    "ValidationException", f'Cannot create already existing endpoint "{name}".'
                )
            self._client("sagemaker").describe_endpoint_config(EndpointConfigName=config)  # must exist
            endpoint = Endpoint(name=name, config=config, region=self.region, status="Creating")
            self.endpoints[name] = endpoint
        self._background(self._roll_out, endpoint, config, name=f"endpoint-{name}")
        return {"EndpointArn": endpoint.arn}

    def update_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name, config = str(request["EndpointName"]), str(request["EndpointConfigName"])
        endpoint = self._endpoint(name)
        with self._lock:
            if endpoint.status != "InService":
                raise SageMakerError(
                    "ValidationException", f'Cannot update in-progress endpoint "{endpoint.arn}".'
                )
            self._client("sagemaker").describe_endpoint_config(EndpointConfigName=config)
            endpoint.status, endpoint.failure_reason, endpoint.modified = "Updating", None, time.time()
        self._background(self._roll_out, endpoint, config, name=f"endpoint-{name}")
        return {"EndpointArn": endpoint.arn}

    def delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(str(request.get("EndpointName")))
        with self._lock:
            self.endpoints.pop(endpoint.name, None)
        detail = {"EndpointName": endpoint.name, "EndpointArn": endpoint.arn, "EndpointStatus": "DELETED"}
        self._publish(ENDPOINT_EVENT, detail, endpoint.arn)
        return {}

    def _roll_out(self, endpoint: Endpoint, config: str) -> None:
        """Load the config's model in the model server, then switch (SageMaker's blue/green)."""
        creating = endpoint.status == "Creating"
        try:
            archive, version, sha256 = self._fetch_model(config)
            reply = self._http.post(
                f"{self.model_server_url}/admin/model",
                json={"model": str(archive), "version": version, "sha256": sha256},
                timeout=600,
            )
            if reply.status_code != 200:
                raise RuntimeError(f"the model server refused the model: {reply.text[:300]}")
            endpoint.config, endpoint.status = config, "InService"
        except Exception as exc:
            log.exception("rollout of %s to endpoint %s failed", config, endpoint.name)
            # A failed update returns to the old config, as SageMaker rolls back; a failed create fails.
            endpoint.status = "Failed" if creating else "InService"
            endpoint.failure_reason = f"{type(exc).__name__}: {exc}"[:1000]
        endpoint.modified = time.time()
        status = {"InService": "IN_SERVICE", "Failed": "FAILED"}[endpoint.status]
        detail = {
            "EndpointName": endpoint.name,
            "EndpointArn": endpoint.arn,
            "EndpointConfigName": endpoint.config,
            "EndpointStatus": status,
        }
        if endpoint.failure_reason:
            detail["FailureReason"] = endpoint.failure_reason
        self._publish(ENDPOINT_EVENT, detail, endpoint.arn)

    def _fetch_model(self, config: str) -> tuple[Path, str | None, str | None]:
        """The archive of the config's (single) model, downloaded; the version its env names; the
        SHA-256 S3 holds for it (when it was stored with one), which the model server checks."""
        sagemaker = self._client("sagemaker")
        variant = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
        return self._fetch_model_of(variant["ModelName"], config)

    def _fetch_model_of(self, model_name: str, folder: str) -> tuple[Path, str | None, str | None]:
        container = self._client("sagemaker").describe_model(ModelName=model_name)["PrimaryContainer"]
        bucket, key = split_s3(container["ModelDataUrl"])
        dest = self.workdir / "models" / folder / "model.tar.gz"
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3 = self._client("s3")
        checksum = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED").get("ChecksumSHA256")
        s3.download_file(bucket, key, str(dest))
        # A multipart upload's checksum is of its parts ("<b64>-<n>"), not of the file: unusable here.
        sha256 = base64.b64decode(checksum).hex() if checksum and "-" not in checksum else None
        return dest, (container.get("Environment") or {}).get("TEXTCLF_MODEL_VERSION"), sha256

    # -- registry events -------------------------------------------------------------------

    def _keep_package_metadata(self, body: bytes) -> bytes:
        """moto's UpdateModelPackage replaces CustomerMetadataProperties with the request's (None when
        absent); SageMaker keeps them. Resend the stored ones so an approval keeps the figures."""
        request = json.loads(body or b"{}")
        if "CustomerMetadataProperties" in request or "ModelPackageArn" not in request:
            return body
        desc = self._client("sagemaker").describe_model_package(ModelPackageName=request["ModelPackageArn"])
        kept = desc.get("CustomerMetadataProperties")
        if kept:
            request["CustomerMetadataProperties"] = kept
        return json.dumps(request).encode()

    def _package_changed(self, arn: str) -> None:
        desc = self._client("sagemaker").describe_model_package(ModelPackageName=arn)
        detail = {
            "ModelPackageGroupName": desc.get("ModelPackageGroupName"),
            "ModelPackageVersion": desc.get("ModelPackageVersion"),
            "ModelPackageArn": arn,
            "ModelApprovalStatus": desc.get("ModelApprovalStatus"),
            "ModelPackageStatus": desc.get("ModelPackageStatus", "Completed"),
        }
        self._publish(PACKAGE_EVENT, detail, arn)
