"""The local SageMaker's job runner and host, on a moto server, with stand-in programs for train.py:
the training toolkit's contract (flags, environment, channels, metrics, outputs) and every way a
job or a rollout can end."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.local_sagemaker import RecordingBus, local_sagemaker
from textclf.local.sagemaker import ENDPOINT_EVENT, TRAINING_EVENT, LocalSageMaker, SageMakerError

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

BUCKET = "jobs"

# Echoes what the toolkit gives it, prints metrics, writes a model file; exits with --exit_code.
PROGRAM = r"""
import argparse, json, os, pathlib, sys, time
p = argparse.ArgumentParser()
p.add_argument("--epochs"); p.add_argument("--base_model"); p.add_argument("--exit_code", type=int, default=0)
p.add_argument("--sleep", type=float, default=0)
args = p.parse_args()
time.sleep(args.sleep)
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
rows = sorted(pathlib.Path(os.environ["SM_CHANNEL_TRAIN"]).rglob("*.txt"))
rank = os.environ.get("RANK", "0")  # set by torchrun
(model / f"rank-{rank}-of-{os.environ.get('WORLD_SIZE', '1')}").write_text("")
if rank == "0":
    seen = {
        "epochs": args.epochs, "base_model": args.base_model, "rows": [r.read_text() for r in rows],
        "channels": json.loads(os.environ["SM_CHANNELS"]),
    }
    if "SM_CHANNEL_FEEDBACK" in os.environ:
        folder = pathlib.Path(os.environ["SM_CHANNEL_FEEDBACK"])
        seen["feedback"] = {p.name: p.read_text() for p in folder.iterdir()}
    (model / "seen.json").write_text(json.dumps(seen))
    print("METRIC test_accuracy=0.5"); print("METRIC test_accuracy=0.75"); print("noise METRIC x=1")
if args.exit_code:
    print("train.py: no .parquet files under /opt/ml/input/data/train", file=sys.stderr)
sys.exit(args.exit_code)
"""


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[LocalSageMaker, RecordingBus, Any]]:
    with local_sagemaker(tmp_path, BUCKET, base_model=tmp_path / "local-base") as (sagemaker, bus, plane):
        s3 = plane.client("s3")
        s3.put_object(Bucket=BUCKET, Key="data/train/a.txt", Body=b"row a")
        s3.put_object(Bucket=BUCKET, Key="data/train/sub/b.txt", Body=b"row b")
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w:gz") as tar:
            data = PROGRAM.encode()
            info = tarfile.TarInfo("train.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=raw.getvalue())
        yield sagemaker, bus, plane


def job_request(name: str, **hyperparameters: Any) -> dict[str, Any]:
    hp = {"epochs": 2, "base_model": "distilbert-base-uncased", **hyperparameters}
    hp |= {
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": f"s3://{BUCKET}/code/sourcedir.tar.gz",
    }
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": "image",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "test_accuracy", "Regex": "METRIC test_accuracy=([0-9.eE+-]+)"}],
        },
        "HyperParameters": {k: json.dumps(v) for k, v in hp.items()},
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": f"s3://{BUCKET}/data/train/"}}}
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/out/"},
    }


def wait(sagemaker: LocalSageMaker, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        desc = sagemaker.training.describe_training_job({"TrainingJobName": name})
        if desc["TrainingJobStatus"] not in ("InProgress", "Stopping"):
            return desc
        time.sleep(0.1)
    raise AssertionError(f"{name} did not end")


def test_a_job_runs_the_bundle_like_the_training_toolkit(local: Any) -> None:
    sagemaker, bus, plane = local
    sagemaker.training.create_training_job(job_request("job-ok"))
    desc = wait(sagemaker, "job-ok")
    assert desc["TrainingJobStatus"] == "Completed"
    # The last value of each defined metric; lines that only contain METRIC elsewhere are ignored.
    assert [(m["MetricName"], m["Value"]) for m in desc["FinalMetricDataList"]] == [("test_accuracy", 0.75)]
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{BUCKET}/out/job-ok/output/model.tar.gz"
    body = plane.client("s3").get_object(Bucket=BUCKET, Key="out/job-ok/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("seen.json")
        assert member is not None
        seen = json.loads(member.read())
    assert seen == {
        "epochs": "2",  # hyperparameters arrive as the flag strings SageMaker passes
        "base_model": str(sagemaker.training.base_model),  # the hub id replaced by the local folder
        "rows": ["row a", "row b"],  # the channel, sub-folders included
        "channels": ["train"],
    }
    assert bus.events[-1][0] == TRAINING_EVENT and bus.events[-1][1]["TrainingJobStatus"] == "Completed"
    listed = sagemaker.training.list_training_jobs({"NameContains": "job-", "StatusEquals": "Completed"})
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == ["job-ok"]


def test_a_channel_naming_one_object_gets_that_object(local: Any) -> None:
    """A retrain's feedback channel is one content-addressed file (S3Prefix = its key): SageMaker
    puts it in the channel folder under its own name, and so does the local runner."""
    sagemaker, _bus, plane = local
    s3 = plane.client("s3")
    s3.put_object(Bucket=BUCKET, Key="feedback-sets/abc.jsonl", Body=b'{"text": "t"}\n')
    s3.put_object(Bucket=BUCKET, Key="feedback-sets/abc.json", Body=b"{}")  # a neighbour, not matched
    request = job_request("job-feedback")
    request["InputDataConfig"].append(
        {
            "ChannelName": "feedback",
            "DataSource": {"S3DataSource": {"S3Uri": f"s3://{BUCKET}/feedback-sets/abc.jsonl"}},
        }
    )
    sagemaker.training.create_training_job(request)
    assert wait(sagemaker, "job-feedback")["TrainingJobStatus"] == "Completed"
    body = s3.get_object(Bucket=BUCKET, Key="out/job-feedback/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("seen.json")
        assert member is not None
        seen = json.loads(member.read())
    assert seen["channels"] == ["train", "feedback"]
    assert seen["feedback"] == {"abc.jsonl": '{"text": "t"}\n'}


def archive_names(plane: Any, name: str) -> list[str]:
    body = plane.client("s3").get_object(Bucket=BUCKET, Key=f"out/{name}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return sorted(tar.getnames())


def test_the_torchrun_launcher_starts_one_process_per_instance(local: Any) -> None:
    sagemaker, _bus, plane = local
    request = job_request("job-ddp", sagemaker_torch_distributed_enabled=True)
    request["ResourceConfig"] = {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2}
    sagemaker.training.create_training_job(request)
    assert wait(sagemaker, "job-ddp")["TrainingJobStatus"] == "Completed"
    assert archive_names(plane, "job-ddp") == ["rank-0-of-2", "rank-1-of-2", "seen.json"]
    # Without the launcher the program runs once, as a plain process.
    request = job_request("job-one")
    request["ResourceConfig"] = {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1}
    sagemaker.training.create_training_job(request)
    assert wait(sagemaker, "job-one")["TrainingJobStatus"] == "Completed"
    assert archive_names(plane, "job-one") == ["rank-0-of-1", "seen.json"]


def test_a_failing_program_fails_the_job_with_its_last_lines(local: Any) -> None:
    sagemaker, bus, _ = local
    sagemaker.training.create_training_job(job_request("job-bad", exit_code=3))
    desc = wait(sagemaker, "job-bad")
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("AlgorithmError: train.py exited with 3: ")
    assert "no .parquet files" in desc["FailureReason"]
    assert "ModelArtifacts" not in desc
    assert bus.events[-1][1]["FailureReason"] == desc["FailureReason"]


def test_stop_and_duplicates_and_unknown_jobs(local: Any) -> None:
    sagemaker, _bus, _plane = local
    sagemaker.training.create_training_job(job_request("job-slow", sleep=30))
    with pytest.raises(SageMakerError, match="already exists"):
        sagemaker.training.create_training_job(job_request("job-slow"))
    deadline = time.monotonic() + 30
    while sagemaker.jobs["job-slow"].process is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sagemaker.training.stop_training_job({"TrainingJobName": "job-slow"})
    assert wait(sagemaker, "job-slow")["TrainingJobStatus"] == "Stopped"
    status, _, reply = sagemaker.dispatch("DescribeTrainingJob", {}, {}, b'{"TrainingJobName": "nope"}')
    assert status == 400 and json.loads(reply) == {
        "__type": "ValidationException",
        "message": "Requested resource not found.",
    }


def test_a_rollout_the_model_server_refuses_keeps_the_old_config(local: Any) -> None:
    sagemaker, bus, plane = local
    sm = plane.client("sagemaker")
    plane.client("s3").put_object(Bucket=BUCKET, Key="m/model.tar.gz", Body=b"x")
    sm.create_model(
        ModelName="m2",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
        PrimaryContainer={"Image": "i", "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="ep-v2-20250101-000000",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m2", "InstanceType": "ml.m5.large"}],
    )
    sagemaker.register_endpoint("ep", "ep")
    sagemaker.hosting.update_endpoint({"EndpointName": "ep", "EndpointConfigName": "ep-v2-20250101-000000"})
    with pytest.raises(SageMakerError, match="in-progress"):
        sagemaker.hosting.update_endpoint(
            {"EndpointName": "ep", "EndpointConfigName": "ep-v2-20250101-000000"}
        )
    deadline = time.monotonic() + 30
    while sagemaker.endpoints["ep"].status == "Updating" and time.monotonic() < deadline:
        time.sleep(0.05)
    desc = sagemaker.hosting.describe_endpoint({"EndpointName": "ep"})
    assert (desc["EndpointStatus"], desc["EndpointConfigName"]) == ("InService", "ep")
    assert "ConnectError" in desc["FailureReason"]
    assert bus.events[-1][0] == ENDPOINT_EVENT and bus.events[-1][1]["EndpointConfigName"] == "ep"
    # An endpoint config moto does not know is SageMaker's ValidationException, not a crash.
    status, _, reply = sagemaker.dispatch(
        "CreateEndpoint",
        {},
        {},
        json.dumps({"EndpointName": "new", "EndpointConfigName": "missing"}).encode(),
    )
    assert status == 400 and "missing" in json.loads(reply)["message"]
    # An unreachable model server: the endpoint is not found, as a deleted one.
    sagemaker.set_reachable("ep", False)
    with pytest.raises(SageMakerError, match="Could not find endpoint"):
        sagemaker.hosting.describe_endpoint({"EndpointName": "ep"})
