"""POST /batch and GET /batch/{job_name}: the Batch Transform request, its bounds and errors (moto)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from textclf_api.handlers import transform as transform_handler
from textclf_api.logic.transform import build_transform_request, is_own_job, transform_job_name
from textclf_api.settings import get_settings

from .conftest import BUCKET, ENDPOINT, REGION, ROLE_ARN, ApiResponse, Logged, load_event, with_body

Invoke = Callable[..., ApiResponse]
INPUT = f"s3://{BUCKET}/batch/input/headlines.jsonl"


@pytest.fixture
def served(bucket: Any) -> str:
    """The endpoint, serving version 7 of the model, and a JSON Lines input in the bucket."""
    sm = boto3.client("sagemaker", region_name=REGION)
    model = f"{ENDPOINT}-v7-20250101-120000"
    sm.create_model(
        ModelName=model,
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={
            "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/x:1",
            "ModelDataUrl": "s3://b/m",
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=model,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=model)
    bucket.put_object(Bucket=BUCKET, Key="batch/input/headlines.jsonl", Body=b'"Fed raises rates"\n')
    return model


def test_batch_starts_a_transform_job_with_the_served_model(
    served: str, invoke: Invoke, record: Callable[[Any, str], list[dict[str, Any]]]
) -> None:
    from textclf_api import aws

    created = record(aws.sagemaker(), "CreateTransformJob")
    response = invoke(transform_handler, "batch")
    assert response.status == 202, response.body
    name = response.body["transform_job_name"]
    assert is_own_job(name, get_settings()) and len(name) <= 63
    assert response.headers["location"] == f"/batch/{name}"
    assert response.body["model_name"] == served and response.body["model_version"] == "7"
    output = f"s3://{BUCKET}/batch/output/{name}/"
    assert response.body["output_uri"] == output
    assert created == [
        build_transform_request(
            job_name=name,
            model_name=served,
            input_uri=INPUT,
            output_uri=output,
            instance_type="ml.m5.xlarge",
            instance_count=1,
        )
    ]
    job = created[0]
    # What Batch Transform needs to feed inference.py JSON Lines and keep the input order.
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformInput"]["ContentType"] == job["TransformOutput"]["Accept"] == "application/jsonlines"
    assert job["TransformOutput"]["AssembleWith"] == "Line" and job["BatchStrategy"] == "MultiRecord"
    assert job["MaxPayloadInMB"] == 1

    event = load_event("batch_status")
    event["path"], event["pathParameters"] = f"/batch/{name}", {"job_name": name}
    status = invoke(transform_handler, event)
    assert status.status == 200, status.body
    assert status.body["transform_job_name"] == name and status.body["model_name"] == served
    assert status.body["input_uri"] == INPUT and status.body["output_uri"] == output
    assert status.body["instance_type"] == "ml.m5.xlarge" and status.body["instance_count"] == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"input_uri": "s3://other-bucket/batch/input/x.jsonl"}, 422, "input_uri must be under"),
        ({"input_uri": f"s3://{BUCKET}/models/abc/model.tar.gz"}, 422, "input_uri must be under"),
        ({"input_uri": f"s3://{BUCKET}/batch/input/../../models/x"}, 422, "input_uri must be under"),
        ({"input_uri": f"s3://{BUCKET}/batch/input/missing.jsonl"}, 409, "upload JSON Lines files there"),
        ({"input_uri": INPUT, "instance_count": 2}, 422, "MaxBatchInstanceCount (1)"),
        ({"input_uri": INPUT, "instance_count": 21}, 422, "instance_count"),
        ({"input_uri": INPUT, "instance_type": "ml.p4d.24xlarge"}, 422, "instance_type"),
        ({"input_uri": "/local/file.jsonl"}, 422, "input_uri"),
        ({}, 422, "input_uri"),
    ],
)
def test_bad_batch_requests_are_4xx_naming_the_problem(
    served: str, invoke: Invoke, body: dict[str, Any], status: int, message: str
) -> None:
    response = invoke(transform_handler, with_body(load_event("batch"), body))
    assert response.status == status, response.body
    assert message in json.dumps(response.body)
    assert not boto3.client("sagemaker", region_name=REGION).list_transform_jobs()["TransformJobSummaries"]


def test_stack_limit_on_instances_is_a_parameter(
    served: str, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_BATCH_INSTANCE_COUNT", "4")
    get_settings.cache_clear()
    body = {"input_uri": f"s3://{BUCKET}/batch/input/", "instance_count": 4, "instance_type": "ml.c5.xlarge"}
    response = invoke(transform_handler, with_body(load_event("batch"), body))
    assert response.status == 202, response.body


def test_no_endpoint_means_nothing_to_run(bucket: Any, invoke: Invoke) -> None:
    bucket.put_object(Bucket=BUCKET, Key="batch/input/headlines.jsonl", Body=b'"a"\n')
    response = invoke(transform_handler, "batch")
    assert response.status == 409, response.body
    assert "deploy a model first" in response.body["message"]


@pytest.mark.parametrize(
    "name", ["textclf-batch-250101120000-a1b", "textclf-20250101-120000-a1b2c3", "other"]
)
def test_status_of_unknown_or_foreign_jobs_is_404(
    bucket: Any, invoke: Invoke, logged: Logged, name: str
) -> None:
    event = load_event("batch_status")
    event["path"], event["pathParameters"] = f"/batch/{name}", {"job_name": name}
    response = invoke(transform_handler, event)
    assert response.status == 404, response.body
    # The operator finds the request by the job it asked for (as X-Ray's annotation found its trace).
    (failed,) = [line for line in logged() if line["message"] == "request failed"]
    assert (failed["route"], failed["transform_job_name"]) == ("GET /batch/{job_name}", name)


def test_job_names_fit_sagemakers_limit_for_the_longest_prefix() -> None:
    name = transform_job_name("p" * 40)
    assert len(name) == 63
