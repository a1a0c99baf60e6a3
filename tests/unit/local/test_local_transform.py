"""Batch Transform on the local SageMaker: a real archive scores JSON Lines files from (moto) S3."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textclf_api.logic.transform import build_transform_request

from tests.helpers.local_sagemaker import RecordingBus, local_sagemaker
from tests.helpers.tiny_model import make_tiny_model_dir
from textclf.local.sagemaker import LocalSageMaker
from textclf.local.sagemaker.transform import TRANSFORM_EVENT, mini_batches
from textclf.serving.endpoint import ServingModel

pytestmark = pytest.mark.heavy  # a real model and a moto server

BUCKET = "batch"
MODEL = "textclf-v3-20250101-120000"
HEADLINES = [
    "Fed raises interest rates again",
    "Apple unveils a new iPhone",
    "Ebola outbreak spreads in West Africa",
    "Box office: superhero film tops charts",
    "Stocks fall as earnings disappoint",
]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from textclf.packaging import build_package

    root = tmp_path_factory.mktemp("transform")
    model = make_tiny_model_dir(root / "model", trained=True)
    return build_package(model, root / "model.tar.gz", runtime="torch", echo=lambda _line: None).out


@pytest.fixture
def local(tmp_path: Path, archive: Path) -> Iterator[tuple[LocalSageMaker, RecordingBus, Any]]:
    with local_sagemaker(tmp_path, BUCKET) as (sagemaker, bus, plane):
        plane.client("s3").upload_file(str(archive), BUCKET, "models/abc/model.tar.gz")
        plane.client("sagemaker").create_model(
            ModelName=MODEL,
            ExecutionRoleArn="arn:aws:iam::123456789012:role/serving",
            PrimaryContainer={
                "Image": "image",
                "ModelDataUrl": f"s3://{BUCKET}/models/abc/model.tar.gz",
                "Environment": {"TEXTCLF_MODEL_VERSION": "3"},
            },
        )
        yield sagemaker, bus, plane


def run(sagemaker: LocalSageMaker, name: str, input_uri: str) -> dict[str, Any]:
    request = build_transform_request(
        job_name=name,
        model_name=MODEL,
        input_uri=input_uri,
        output_uri=f"s3://{BUCKET}/batch/output/{name}/",
        instance_type="ml.m5.xlarge",
        instance_count=1,
    )
    assert sagemaker.transform.create_transform_job(request)["TransformJobArn"].endswith(
        f"transform-job/{name}"
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        desc = sagemaker.transform.describe_transform_job({"TransformJobName": name})
        if desc["TransformJobStatus"] != "InProgress":
            return desc
        time.sleep(0.1)
    raise AssertionError(f"{name} did not end")


def test_every_file_under_the_prefix_is_scored_line_by_line_in_order(local: Any, archive: Path) -> None:
    sagemaker, bus, plane = local
    s3 = plane.client("s3")
    first = "".join(json.dumps({"text": h}) + "\n" for h in HEADLINES[:3])
    second = "\n".join(json.dumps(h) for h in HEADLINES[3:])  # bare strings, no final newline
    # Its own prefix: moto's state is shared by every server in this process.
    s3.put_object(Bucket=BUCKET, Key="batch/input/ok/a.jsonl", Body=first.encode())
    s3.put_object(Bucket=BUCKET, Key="batch/input/ok/more/b.jsonl", Body=second.encode())
    desc = run(sagemaker, "job-ok", f"s3://{BUCKET}/batch/input/ok/")
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")

    def output(name: str) -> list[dict[str, Any]]:
        body = s3.get_object(Bucket=BUCKET, Key=f"batch/output/job-ok/{name}.out")["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines()]

    answers = output("a.jsonl") + output("more/b.jsonl")
    # The archive's own answers for the same headlines, in the same order, with the Model's version.
    served = ServingModel.load(archive)
    expected = served.predict(HEADLINES)
    assert [a["label"] for a in answers] == [e["label"] for e in expected]
    for got, want in zip(answers, expected, strict=True):
        assert got["score"] == pytest.approx(want["score"], abs=1e-6)
        assert got["model_version"] == "3"
    assert bus.events[-1] == (
        TRANSFORM_EVENT,
        {"TransformJobName": "job-ok", "TransformJobStatus": "Completed", "ModelName": MODEL},
    )


def test_a_bad_line_fails_the_job_naming_the_file_and_line(local: Any) -> None:
    sagemaker, _bus, plane = local
    body = '"fine headline"\n"another"\n{"txt": "misspelt field"}\n'
    plane.client("s3").put_object(Bucket=BUCKET, Key="batch/input/bad.jsonl", Body=body.encode())
    desc = run(sagemaker, "job-bad", f"s3://{BUCKET}/batch/input/bad.jsonl")
    assert desc["TransformJobStatus"] == "Failed"
    assert desc["FailureReason"].startswith("ClientError: bad.jsonl: line 3: each line must be")


def test_unknown_model_and_jobs_are_validation_errors(local: Any) -> None:
    from botocore.exceptions import ClientError

    sagemaker, _bus, _plane = local
    request = build_transform_request(
        job_name="job-x",
        model_name="no-such-model",
        input_uri=f"s3://{BUCKET}/batch/input/",
        output_uri=f"s3://{BUCKET}/batch/output/x/",
        instance_type="ml.m5.xlarge",
        instance_count=1,
    )
    with pytest.raises(ClientError):
        sagemaker.transform.create_transform_job(request)
    from textclf.local.sagemaker import SageMakerError

    with pytest.raises(SageMakerError, match="Could not find"):
        sagemaker.transform.describe_transform_job({"TransformJobName": "never"})


def test_mini_batches_respect_the_payload_size_and_keep_line_numbers() -> None:
    text = "\n".join(f'"{i:03d}"' for i in range(10))  # 6 bytes a line with its newline
    batches = list(mini_batches(text, 13))
    assert [first for first, _ in batches] == [1, 3, 5, 7, 9]
    assert [line for _, lines in batches for line in lines] == text.splitlines()
    # A line longer than the limit travels alone.
    assert list(mini_batches('"a"\n"' + "x" * 50 + '"\n"b"', 13)) == [
        (1, ['"a"']),
        (2, ['"' + "x" * 50 + '"']),
        (3, ['"b"']),
    ]
