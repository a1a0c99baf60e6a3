"""Training jobs of the local SageMaker: ``train.py`` from the job's source bundle, run as the
SageMaker training toolkit runs it.

Channels are downloaded from (local) S3 into ``input/data/<channel>``, the hyperparameters become
``--name value`` flags, ``SM_MODEL_DIR``/``SM_CHANNEL_*``/``SM_OUTPUT_DATA_DIR`` are set, metrics
are parsed from the output with the job's own ``MetricDefinitions`` and ``model.tar.gz`` is
uploaded to the output path. Status follows the process: InProgress, then Completed, Failed or
Stopped. Hub base models are replaced by a local folder (no network here).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textclf_api.logic.training import TORCHRUN_LAUNCHER
from textclf_api.logic.transform import split_s3

from textclf.local import LOCAL_ACCOUNT_ID
from textclf.local.sagemaker.common import INTERRUPTED, SageMakerError, Services, record_of
from textclf.training import launcher

log = logging.getLogger(__name__)

TRAINING_EVENT = "SageMaker Training Job State Change"
#: Lines of a failed job's output kept as its FailureReason (SageMaker keeps the error's tail too).
_FAILURE_LINES = 3


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
    #: False from the moment the job ends until its state-change event is on the bus.
    announced: bool = True
    process: subprocess.Popen[str] | None = None
    stop_requested: bool = False

    KIND = "training-job"

    def record(self) -> dict[str, Any]:
        return record_of(self, transient=("process", "stop_requested"))

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


class TrainingJobs:
    """CreateTrainingJob, DescribeTrainingJob, ListTrainingJobs, StopTrainingJob."""

    def __init__(self, services: Services, base_model: Path | None) -> None:
        self.services = services
        self.base_model = base_model
        self.jobs: dict[str, TrainingJob] = {}

    def restore(self) -> None:
        """The recorded jobs; one that was running when the stack stopped ends Failed (its
        process is gone), and every ended job whose event may not have gone out is announced."""
        for record in self.services.records(TrainingJob.KIND):
            job = TrainingJob(**record)
            self.jobs[job.name] = job
            if job.status in ("InProgress", "Stopping"):
                job.status = job.secondary_status = "Stopped" if job.status == "Stopping" else "Failed"
                job.failure_reason = f"InternalServerError: {INTERRUPTED}"
                job.ended = time.time()
                job.announced = False
                log.warning("training job %s: %s; now %s", job.name, INTERRUPTED, job.status)
            if not job.announced:
                self._announce(job)

    def _save(self, job: TrainingJob) -> None:
        self.services.save(TrainingJob.KIND, job.name, job.record())

    def stop(self) -> None:
        """Terminate the running jobs (each then ends Stopped)."""
        with self.services.lock:
            running = [j for j in self.jobs.values() if j.process is not None and j.process.poll() is None]
        for job in running:
            job.stop_requested = True
            assert job.process is not None
            job.process.terminate()

    def create_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request.get("TrainingJobName", ""))
        with self.services.lock:
            if name in self.jobs:
                raise SageMakerError("ResourceInUse", f"Training job {name} already exists")
            job = TrainingJob(name=name, request=request, region=self.services.region)
            self.jobs[name] = job
            self._save(job)
        self.services.background(self._run_job, job, name=f"training-{name}")
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
        self._save(job)
        if job.process is not None and job.process.poll() is None:
            job.process.terminate()
        return {}

    def _run_job(self, job: TrainingJob) -> None:
        root = self.services.workdir / "training" / job.name
        try:
            job.started = time.time()
            job.secondary_status = "Downloading"
            self._save(job)
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
            job.announced = False
        log.info("training job %s %s (%s)", job.name, job.status, job.failure_reason or "ok")
        self._announce(job)

    def _announce(self, job: TrainingJob) -> None:
        """Record the job's state, put its event on the bus, then record that it went out: a
        crash in between announces it again on restart (the deploy loop takes a repeat)."""
        self._save(job)
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
        self.services.publish(TRAINING_EVENT, detail, job.arn)
        job.announced = True
        self._save(job)

    def _prepare_job(self, job: TrainingJob, root: Path) -> None:
        """``/opt/ml`` for one job: channels, the unpacked source bundle, empty output folders."""
        if root.exists():
            shutil.rmtree(root)
        s3 = self.services.client("s3")
        for channel in job.request.get("InputDataConfig", []):
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, prefix = split_s3(uri)
            dest = root / "input" / "data" / channel["ChannelName"]
            dest.mkdir(parents=True)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    # An S3Prefix naming one object (a retrain's feedback file, the champion's
                    # archive) puts that object in the channel under its own name, as SageMaker does.
                    relative = obj["Key"][len(prefix) :].lstrip("/") or obj["Key"].rsplit("/", 1)[-1]
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
        s3 = self.services.client("s3")
        for folder, name in (("model", "model.tar.gz"), ("output/data", "output.tar.gz")):
            archive = root / name
            with tarfile.open(archive, "w:gz") as tar:
                for path in sorted((root / folder).rglob("*")):
                    if path.is_file():
                        tar.add(path, arcname=path.relative_to(root / folder).as_posix())
            s3.upload_file(str(archive), bucket, f"{base}/{name}")
        return f"s3://{bucket}/{base}/model.tar.gz"
