"""POST /train and GET /train/{job_name}: the request sent to SageMaker, prerequisites, errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import ANY, Stubber
from textclf_api import aws
from textclf_api.handlers import training as training_handler
from textclf_api.logic.training import new_job_name, start_training
from textclf_api.schemas import TrainRequest

from textclf.labels import LABELS
from textclf.local.control_plane import create_id_table

from .conftest import (
    BUCKET,
    DATASET_URI,
    IMAGE,
    REGION,
    ROLE_ARN,
    ApiResponse,
    Logged,
    load_event,
    with_body,
)

Invoke = Callable[..., ApiResponse]
JOB_NAME_RE = re.compile(r"^textclf-\d{8}-\d{6}-[0-9a-f]{6}$")
METRICS = [
    "train_loss",
    "validation_loss",
    "validation_accuracy",
    "validation_macro_f1",
    "epoch",
    "lexical_accuracy",
    "blend_accuracy",
    "blend_weight",
    "test_accuracy",
    "test_macro_f1",
    "baseline_test_accuracy",
    "baseline_test_macro_f1",
    "champion_test_accuracy",
    "recent_accuracy",
    "champion_recent_accuracy",
    "trusted_accuracy",
    "champion_trusted_accuracy",
]


@pytest.fixture
def created(record: Callable[[Any, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return record(aws.sagemaker(), "CreateTrainingJob")


def expected_request(job_name: str, hyperparameters: dict[str, Any], instance_type: str) -> dict[str, Any]:
    channels = [
        {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"{DATASET_URI}{name}/",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "CompressionType": "None",
            "InputMode": "File",
        }
        for name in ("train", "validation", "test")
    ]
    framework = {
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": f"s3://{BUCKET}/code/sourcedir.tar.gz",
        "sagemaker_container_log_level": 20,
        "sagemaker_job_name": job_name,
        "sagemaker_region": REGION,
    }
    return {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": m, "Regex": f"METRIC {m}=([0-9.eE+-]+)"} for m in METRICS],
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "RoleArn": ROLE_ARN,
        "HyperParameters": {k: json.dumps(v) for k, v in {**hyperparameters, **framework}.items()},
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/training-output/"},
        "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 14400},
        "EnableManagedSpotTraining": False,
        "Tags": [
            {"Key": "textclf:dataset", "Value": DATASET_URI},
            {"Key": "textclf:base-model", "Value": hyperparameters["base_model"]},
        ],
    }


def test_train_starts_the_job_the_hf_estimator_would(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    response = invoke(training_handler, "train")
    assert response.status == 202, response.body
    name = response.body["training_job_name"]
    assert JOB_NAME_RE.match(name) and len(name) <= 63
    assert response.body["status"] == "InProgress"
    assert response.body["dataset_uri"] == DATASET_URI
    assert response.body["training_job_arn"].endswith(f":training-job/{name}")
    assert response.headers["location"] == f"/train/{name}"
    assert created == [
        expected_request(
            name,
            {
                "epochs": 3,
                "learning_rate": 5e-5,
                "batch_size": 32,
                "base_model": "distilbert-base-uncased",
                "max_length": 64,
            },
            "ml.g5.xlarge",
        )
    ]
    # The hyperparameter values are JSON, as the SageMaker training toolkit decodes them.
    hp = created[0]["HyperParameters"]
    assert json.loads(hp["sagemaker_program"]) == "train.py"
    assert json.loads(hp["learning_rate"]) == 5e-5
    # moto has the job now, under the same name.
    job = boto3.client("sagemaker", region_name=REGION).describe_training_job(TrainingJobName=name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE


def test_train_without_a_body_uses_the_stack_defaults(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from textclf_api.settings import get_settings

    monkeypatch.setenv("BASE_MODEL", "roberta-base")
    monkeypatch.setenv("TRAINING_INSTANCE_TYPE", "ml.g6.xlarge")
    get_settings.cache_clear()
    response = invoke(training_handler, "train_defaults")
    assert response.status == 202, response.body
    name = response.body["training_job_name"]
    assert created == [
        expected_request(
            name,
            {"epochs": 3, "learning_rate": 5e-5, "batch_size": 32, "base_model": "roberta-base"},
            "ml.g6.xlarge",
        )
    ]


@pytest.mark.parametrize(
    ("instance_type", "instance_count", "processes"),
    [("ml.g5.xlarge", 2, 2), ("ml.g5.12xlarge", 1, 4), ("ml.g4dn.12xlarge", 3, 12)],
)
def test_several_gpus_turn_on_the_toolkits_torchrun_launcher(  # noqa: PLR0917 - fixtures
    bucket: Any,
    invoke: Invoke,
    created: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    instance_type: str,
    instance_count: int,
    processes: int,
) -> None:
    from textclf_api.settings import get_settings

    monkeypatch.setenv("MAX_TRAINING_INSTANCE_COUNT", "4")
    get_settings.cache_clear()
    body = {"instance_type": instance_type, "instance_count": instance_count, "batch_size": 16}
    response = invoke(training_handler, with_body(load_event("train"), body))
    assert response.status == 202, response.body
    assert response.body["processes"] == processes
    assert response.body["effective_batch_size"] == 16 * processes
    (job,) = created
    assert job["ResourceConfig"]["InstanceCount"] == instance_count
    hp = job["HyperParameters"]
    # The SageMaker Python SDK's HuggingFace estimator, distribution={"torch_distributed":
    # {"enabled": True}}, sends exactly these two (LAUNCH_TORCH_DISTRIBUTED_ENV_NAME and
    # INSTANCE_TYPE_ENV_NAME, JSON-encoded by _json_encode_hyperparameters); the training toolkit
    # then runs `torchrun --nnodes <hosts> --nproc_per_node <GPUs> train.py ...`.
    assert hp["sagemaker_torch_distributed_enabled"] == "true"
    assert hp["sagemaker_instance_type"] == f'"{instance_type}"'
    assert json.loads(hp["batch_size"]) == 16  # per GPU, as train.py reads it
    # Every instance gets all the data; train.py shards it by rank.
    assert {c["DataSource"]["S3DataSource"]["S3DataDistributionType"] for c in job["InputDataConfig"]} == {
        "FullyReplicated"
    }
    event = load_event("train_status")
    event["pathParameters"] = {"job_name": response.body["training_job_name"]}
    event["path"] = event["path"].rsplit("/", 1)[0] + "/" + response.body["training_job_name"]
    status = invoke(training_handler, event)
    assert status.status == 200, status.body
    assert status.body["instance_count"] == instance_count


def test_one_gpu_leaves_the_launcher_off(bucket: Any, invoke: Invoke, created: list[dict[str, Any]]) -> None:
    response = invoke(training_handler, with_body(load_event("train"), {"instance_type": "ml.g6.xlarge"}))
    assert response.status == 202, response.body
    assert response.body["processes"] == 1
    assert not any(k in created[0]["HyperParameters"] for k in ("sagemaker_torch_distributed_enabled",))


@pytest.mark.parametrize("count", [2, 17, 0])
def test_instance_count_beyond_the_stack_limit_is_refused(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]], count: int
) -> None:
    # The stack's MaxTrainingInstanceCount is 1 by default; the schema's own bound is 16.
    response = invoke(training_handler, with_body(load_event("train"), {"instance_count": count}))
    assert response.status == 422, response.body
    assert "instance_count" in json.dumps(response.body)
    assert created == []


def test_an_empty_object_body_also_means_defaults(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    response = invoke(training_handler, with_body(load_event("train"), {}))
    assert response.status == 202
    assert "max_length" not in created[0]["HyperParameters"]


@pytest.mark.parametrize("labels", [list(LABELS), ["spam", "ham"]], ids=["news", "another set"])
def test_omitted_max_length_comes_from_the_dataset_pointer(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]], labels: list[str]
) -> None:
    # The dataset's labels are whatever it has: the API compiles in no set to compare them with
    # (the deploy gate compares the trained model's with the serving model's).
    pointer = {"uri": DATASET_URI, "training_defaults": {"max_length": 32, "labels": labels}}
    bucket.put_object(Bucket=BUCKET, Key="datasets/latest.json", Body=json.dumps(pointer))
    assert invoke(training_handler, with_body(load_event("train"), {})).status == 202
    assert json.loads(created[0]["HyperParameters"]["max_length"]) == 32
    # A request's own value wins over the dataset's.
    assert invoke(training_handler, with_body(load_event("train"), {"max_length": 48})).status == 202
    assert json.loads(created[1]["HyperParameters"]["max_length"]) == 48


def test_the_dataset_pointer_carries_a_training_budget_a_request_overrides(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    # `textclf serve --train-default`: what retraining on a small CPU runs with.
    budget = {"epochs": 1, "max_train_samples": 8000, "learning_rate": 2e-4, "serving_runtime": "torch"}
    pointer = {"uri": DATASET_URI, "training_defaults": {"max_length": 32, **budget, "labels": ["a", "b"]}}
    bucket.put_object(Bucket=BUCKET, Key="datasets/latest.json", Body=json.dumps(pointer))
    started = invoke(training_handler, with_body(load_event("train"), {}))
    assert started.status == 202
    sent = {k: json.loads(v) for k, v in created[0]["HyperParameters"].items()}
    assert {k: sent[k] for k in budget} == budget and sent["batch_size"] == 32 and "labels" not in sent
    asked = {"epochs": 2, "max_train_samples": 100, "learning_rate": 1e-4, "batch_size": 8}
    again = invoke(training_handler, with_body(load_event("train"), asked))
    assert again.status == 202 and again.body["effective_batch_size"] == 8
    sent = {k: json.loads(v) for k, v in created[1]["HyperParameters"].items()}
    assert {k: sent[k] for k in asked} == asked and sent["serving_runtime"] == "torch"


@pytest.mark.parametrize(
    ("defaults", "message"),
    [
        ({"max_length": 4}, "training_defaults.max_length in"),
        ({"max_length": "32"}, "must be an integer in 8..512"),
        ("32", "training_defaults in"),
        ({"epochs": 0}, "training_defaults.epochs=0: --epochs must be > 0"),
        ({"serving_runtime": "gpu"}, "--serving_runtime must be one of"),
        ({"max_train_samples": "all"}, "--max_train_samples must be an integer"),
    ],
)
def test_dataset_pointer_defaults_that_cannot_train_are_409(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]], defaults: Any, message: str
) -> None:
    pointer = {"uri": DATASET_URI, "training_defaults": defaults}
    bucket.put_object(Bucket=BUCKET, Key="datasets/latest.json", Body=json.dumps(pointer))
    response = invoke(training_handler, "train")
    assert response.status == 409
    assert message in response.body["message"]
    assert created == []


def test_spot_training_checkpoints_and_waits(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    response = invoke(training_handler, "train_spot")
    assert response.status == 202, response.body
    name = response.body["training_job_name"]
    job = created[0]
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 14400, "MaxWaitTimeInSeconds": 28800}
    assert job["CheckpointConfig"] == {
        "S3Uri": f"s3://{BUCKET}/checkpoints/{name}/",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert json.loads(job["HyperParameters"]["max_train_samples"]) == 50000
    assert json.loads(job["HyperParameters"]["epochs"]) == 2


def test_allow_label_change_travels_with_the_job_for_the_deploy_gate(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    from textclf_api.logic.deployment import allows_label_change

    response = invoke(training_handler, "train_allow_label_change")
    assert response.status == 202, response.body
    (job,) = created
    assert job["HyperParameters"]["allow_label_change"] == "true"
    # The deploy function reads it back from DescribeTrainingJob, as SageMaker returns it.
    described = aws.sagemaker().describe_training_job(TrainingJobName=response.body["training_job_name"])
    assert allows_label_change(described)
    # Omitted (or false): not sent at all, so a default job's request is unchanged.
    assert (
        invoke(training_handler, with_body(load_event("train"), {"allow_label_change": False})).status == 202
    )
    assert "allow_label_change" not in created[1]["HyperParameters"]
    assert not allows_label_change(
        aws.sagemaker().describe_training_job(TrainingJobName=created[1]["TrainingJobName"])
    )


def test_job_names_are_unique_sortable_and_short() -> None:
    now = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert new_job_name("textclf", now, "abc123") == "textclf-20250304-050607-abc123"
    names = {new_job_name("textclf") for _ in range(50)}
    assert len(names) == 50
    assert len(new_job_name("a" * 40, now)) == 63
    with pytest.raises(ValueError, match="not a valid SageMaker name"):
        new_job_name("a" * 41, now)


# ---------------------------------------------------------------- prerequisites -> 409


def test_missing_dataset_pointer_names_the_command_to_run(bucket: Any, invoke: Invoke) -> None:
    bucket.delete_object(Bucket=BUCKET, Key="datasets/latest.json")
    response = invoke(training_handler, "train")
    assert response.status == 409
    assert f"s3://{BUCKET}/datasets/latest.json does not exist" in response.body["message"]
    assert f"textclf data --s3-uri s3://{BUCKET}/datasets" in response.body["message"]


def test_missing_bucket_is_an_upstream_502_naming_it(moto: None, invoke: Invoke) -> None:
    # The stack creates the bucket: its absence is a broken deployment, not something to run.
    response = invoke(training_handler, "train")
    assert response.status == 502
    assert response.body["message"] == (
        f"reading s3://{BUCKET}/datasets/latest.json failed; "
        "the request id above finds the cause in the function's log"
    )


@pytest.mark.parametrize(
    ("pointer", "fragment"),
    [
        (b"not json", "is not valid JSON"),
        (b'["s3://x/"]', "must hold"),
        (b'{"sha256": "abc"}', "must hold"),
        (b'{"uri": "s3://another-bucket/datasets/abc/"}', "a prefix in this bucket"),
        (b'{"uri": "s3://textclf-test-artifacts/datasets/abc"}', "ending in '/'"),
    ],
)
def test_malformed_dataset_pointer_is_a_409(
    bucket: Any, invoke: Invoke, pointer: bytes, fragment: str
) -> None:
    bucket.put_object(Bucket=BUCKET, Key="datasets/latest.json", Body=pointer)
    response = invoke(training_handler, "train")
    assert response.status == 409
    assert fragment in response.body["message"]
    assert "textclf data --s3-uri" in response.body["message"]


def test_missing_source_bundle_is_a_409_saying_how_to_upload_it(bucket: Any, invoke: Invoke) -> None:
    bucket.delete_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz")
    response = invoke(training_handler, "train")
    assert response.status == 409
    assert f"s3://{BUCKET}/code/sourcedir.tar.gz does not exist" in response.body["message"]
    assert "textclf upload-source --s3-uri" in response.body["message"]


# ---------------------------------------------------------------- bad requests -> 4xx

INVALID = {
    "train_invalid_not_json": (400, "not valid JSON"),
    "train_invalid_unknown_field": (422, "optimizer: Extra inputs are not permitted"),
    "train_invalid_epochs": (422, "epochs: Input should be greater than or equal to 1"),
    "train_invalid_epochs_type": (422, "epochs: Input should be a valid integer"),
    "train_invalid_learning_rate": (422, "learning_rate: Input should be less than or equal to 0.01"),
    "train_invalid_batch_size": (422, "batch_size: Input should be less than or equal to 512"),
    "train_invalid_max_length": (422, "max_length: Input should be greater than or equal to 8"),
    "train_invalid_base_model": (422, "base_model: Input should be 'distilbert-base-uncased'"),
    "train_invalid_instance_type": (422, "instance_type: Input should be 'ml.g4dn.xlarge'"),
    "train_invalid_use_spot_type": (422, "use_spot: Input should be a valid boolean"),
    "train_invalid_allow_label_change_type": (422, "allow_label_change: Input should be a valid boolean"),
    "train_invalid_array_body": (422, "must be a JSON object"),
}


def test_every_invalid_train_event_is_listed_here() -> None:
    from .conftest import EVENTS

    assert {p.stem for p in EVENTS.glob("train_invalid_*.json")} == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_bad_train_requests_get_a_4xx_and_start_nothing(
    name: str, bucket: Any, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    status, fragment = INVALID[name]
    response = invoke(training_handler, name)
    assert response.status == status, response.body
    assert fragment in response.body["message"]
    assert created == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"learning_rate": 0}, "learning_rate: Input should be greater than 0"),
        ({"epochs": 21}, "epochs: Input should be less than or equal to 20"),
        ({"epochs": 2.5}, "epochs: Input should be a valid integer"),
        ({"max_train_samples": 0}, "max_train_samples: Input should be greater than or equal to 1"),
        ({"max_length": 513}, "max_length: Input should be less than or equal to 512"),
        ({"instance_type": "ml.p3.2xlarge"}, "instance_type"),
        ({"use_spot": 1}, "use_spot: Input should be a valid boolean"),
    ],
)
def test_each_limit_is_enforced(body: dict[str, Any], fragment: str, invoke: Invoke) -> None:
    response = invoke(training_handler, with_body(load_event("train"), body))
    assert response.status == 422
    assert fragment in response.body["message"]


def test_the_upper_learning_rate_bound_is_allowed() -> None:
    assert TrainRequest.model_validate({"learning_rate": 1e-2, "max_train_samples": 1}).learning_rate == 1e-2


# ---------------------------------------------------------------- SageMaker failures


def test_quota_exhausted_is_a_429(bucket: Any, invoke: Invoke) -> None:
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_client_error(
            "create_training_job",
            "ResourceLimitExceeded",
            "The account-level service limit 'ml.g5.xlarge for training job usage' is 0 Instances",
            400,
        )
        response = invoke(training_handler, "train")
    assert response.status == 429
    assert "ml.g5.xlarge" in response.body["message"]
    assert response.headers["retry-after"] == "30"


def test_throttled_create_is_a_503(bucket: Any, invoke: Invoke) -> None:
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_client_error("create_training_job", "ThrottlingException", "Rate exceeded", 400)
        response = invoke(training_handler, "train")
    assert response.status == 503
    assert "retry-after" in response.headers


def test_create_rejected_by_sagemaker_is_a_502_that_keeps_the_role_arn_in_the_log(
    bucket: Any, invoke: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_client_error(
            "create_training_job", "ValidationException", "Could not assume role " + ROLE_ARN, 400
        )
        response = invoke(training_handler, "train")
    assert response.status == 502
    assert response.body["message"].startswith("SageMaker CreateTrainingJob failed")
    assert ROLE_ARN not in json.dumps(response.body)
    assert any("Could not assume role " + ROLE_ARN in str(getattr(r, "cause", "")) for r in caplog.records)


def test_access_denied_says_an_operator_must_fix_the_role(bucket: Any, invoke: Invoke) -> None:
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_client_error(
            "create_training_job", "AccessDeniedException", f"User: {ROLE_ARN} is not authorized", 400
        )
        response = invoke(training_handler, "train")
    assert response.status == 502
    assert response.body["message"] == (
        "SageMaker CreateTrainingJob refused this function's credentials; an operator must fix its role"
    )


def test_create_timing_out_is_a_504(bucket: Any, invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def timeout(**kwargs: Any) -> Any:
        raise ReadTimeoutError(endpoint_url="https://api.sagemaker.us-east-1.amazonaws.com")

    monkeypatch.setattr(aws.sagemaker(), "create_training_job", timeout)
    response = invoke(training_handler, "train")
    assert response.status == 504


def test_a_retry_that_finds_its_own_job_reports_success(
    bucket: Any, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first attempt timed out after SageMaker created the job; the retry hits ResourceInUse.
    from textclf_api.logic import training as logic

    name = "textclf-20250101-000000-abcdef"
    monkeypatch.setattr(logic, "new_job_name", lambda prefix: name)
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_client_error(
            "create_training_job",
            "ResourceInUse",
            "Training job names must be unique",
            400,
            # The retry sends the same name (every other field is checked elsewhere).
            expected_params={k: ANY for k in expected_request(name, {"base_model": ""}, "")}
            | {"TrainingJobName": name},
        )
        # It describes the job of the name it generated, not any job.
        stubber.add_response(
            "describe_training_job", completed_job(name, status="InProgress"), {"TrainingJobName": name}
        )
        response = invoke(training_handler, "train")
    assert response.status == 202
    assert response.body["training_job_arn"].endswith("training-job/textclf-20250101-000000-abcdef")


def test_start_training_is_a_plain_function(bucket: Any) -> None:
    started = start_training(TrainRequest(epochs=1), job_name="textclf-20250101-000000-000001")
    assert started.training_job_name == "textclf-20250101-000000-000001"


# ---------------------------------------------------------------- GET /train/{job_name}


def completed_job(name: str, status: str = "Completed") -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/training-output/{name}/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": "Completed" if status == "Completed" else "Training",
        "HyperParameters": {},
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 14400, "MaxWaitTimeInSeconds": 28800},
        "CreationTime": datetime(2025, 1, 1, 12, 0, tzinfo=UTC),
        "TrainingStartTime": datetime(2025, 1, 1, 12, 3, tzinfo=UTC),
        "TrainingEndTime": datetime(2025, 1, 1, 12, 40, tzinfo=UTC),
        "EnableManagedSpotTraining": True,
        "BillableTimeInSeconds": 1100,
        "FinalMetricDataList": [
            {
                "MetricName": "validation_accuracy",
                "Value": 0.951,
                "Timestamp": datetime(2025, 1, 1, tzinfo=UTC),
            },
            {
                "MetricName": "validation_macro_f1",
                "Value": 0.948,
                "Timestamp": datetime(2025, 1, 1, tzinfo=UTC),
            },
            {"MetricName": "epoch", "Value": 3.0, "Timestamp": datetime(2025, 1, 1, tzinfo=UTC)},
        ],
    }


def test_status_reports_the_deploy_loops_record(
    moto: None, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textclf_api.logic.deploy_records import Records
    from textclf_api.settings import get_settings

    monkeypatch.setenv("DEPLOYMENTS_TABLE", "deployments")
    get_settings.cache_clear()
    create_id_table(aws.dynamodb(), "deployments")
    name = load_event("train_status")["pathParameters"]["job_name"]
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_response("describe_training_job", completed_job(name), {"TrainingJobName": name})
        response = invoke(training_handler, "train_status")
    assert response.body["deployment"] == {
        "status": "pending",
        "reason": "waiting for the deploy function",
        "model_version": None,
    }
    Records("deployments").claim(name)
    Records("deployments").update(
        name, status="rejected", reason="test accuracy 0.8 < 0.85", model_version="4"
    )
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_response("describe_training_job", completed_job(name), {"TrainingJobName": name})
        response = invoke(training_handler, "train_status")
    assert response.body["deployment"] == {
        "status": "rejected",
        "reason": "test accuracy 0.8 < 0.85",
        "model_version": "4",
    }


def test_status_of_a_completed_job(invoke: Invoke) -> None:
    name = load_event("train_status")["pathParameters"]["job_name"]
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_response("describe_training_job", completed_job(name), {"TrainingJobName": name})
        response = invoke(training_handler, "train_status")
    assert response.status == 200, response.body
    assert response.body == {
        "training_job_name": name,
        "training_job_arn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "status": "Completed",
        "secondary_status": "Completed",
        "failure_reason": None,
        "metrics": {"validation_accuracy": 0.951, "validation_macro_f1": 0.948, "epoch": 3.0},
        "model_artifact_uri": f"s3://{BUCKET}/training-output/{name}/output/model.tar.gz",
        "instance_type": "ml.g5.xlarge",
        "instance_count": 1,
        "use_spot": True,
        "created_at": "2025-01-01T12:00:00Z",
        "started_at": "2025-01-01T12:03:00Z",
        "ended_at": "2025-01-01T12:40:00Z",
        "billable_seconds": 1100,
        "reason": "manual",
        "deployment": None,
    }


def test_a_started_job_is_visible_at_its_location(bucket: Any, invoke: Invoke) -> None:
    started = invoke(training_handler, "train")
    event = load_event("train_status")
    name = started.body["training_job_name"]
    event["path"] = started.headers["location"]
    event["pathParameters"] = {"job_name": name}
    response = invoke(training_handler, event)
    assert response.status == 200, response.body
    assert response.body["training_job_name"] == name
    assert response.body["status"]


def test_unknown_job_is_404(moto: None, invoke: Invoke) -> None:
    response = invoke(training_handler, "train_status_unknown")
    assert response.status == 404
    assert "textclf-20240101-000000-ffffff" in response.body["message"]


def test_job_outside_the_prefix_is_404_without_asking_sagemaker(invoke: Invoke) -> None:
    event = load_event("train_status")
    event["path"] = "/train/someone-elses-job"
    event["pathParameters"] = {"job_name": "someone-elses-job"}
    with Stubber(aws.sagemaker()):  # any call would fail: nothing is queued
        response = invoke(training_handler, event)
    assert response.status == 404
    assert "textclf-" in response.body["message"]


def test_invalid_job_name_is_422(invoke: Invoke) -> None:
    response = invoke(training_handler, "train_status_invalid_name")
    assert response.status == 422
    assert "job_name" in response.body["message"]


def test_throttled_describe_is_503(invoke: Invoke) -> None:
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_client_error("describe_training_job", "ThrottlingException", "Rate exceeded", 400)
        response = invoke(training_handler, "train_status")
    assert response.status == 503
    assert "retry-after" in response.headers


# ---------------------------------------------------------------- Idempotency-Key and the job cap


@pytest.fixture
def idempotency_table(bucket: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    from textclf_api.settings import get_settings

    create_id_table(aws.dynamodb(), "idempotency")
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "idempotency")
    monkeypatch.setenv("MAX_CONCURRENT_TRAINING_JOBS", "5")
    get_settings.cache_clear()
    return "idempotency"


def with_key(body: dict[str, Any], key: str) -> dict[str, Any]:
    event = with_body(load_event("train"), body)
    event["headers"]["Idempotency-Key"] = key
    event["multiValueHeaders"]["Idempotency-Key"] = [key]
    return event


def test_same_idempotency_key_and_body_start_one_job(
    idempotency_table: str, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    first = invoke(training_handler, with_key({"epochs": 1}, "build-42"))
    again = invoke(training_handler, with_key({"epochs": 1}, "build-42"))
    assert (first.status, again.status) == (202, 202)
    assert again.body == first.body
    assert len(created) == 1
    # Another key is another job; so is a request without a key.
    other = invoke(training_handler, with_key({"epochs": 1}, "build-43"))
    assert other.body["training_job_name"] != first.body["training_job_name"]
    assert invoke(training_handler, with_body(load_event("train"), {"epochs": 1})).status == 202
    assert len(created) == 3


def test_an_idempotent_request_keeps_the_datasets_training_budget(
    idempotency_table: str, bucket: Any, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    """With an Idempotency-Key as without one, what the request leaves out comes from the dataset
    pointer's training defaults, not from POST /train's own defaults."""
    budget = {"epochs": 1, "learning_rate": 2e-4, "max_train_samples": 8000}
    pointer = {"uri": DATASET_URI, "training_defaults": {"max_length": 32, **budget}}
    bucket.put_object(Bucket=BUCKET, Key="datasets/latest.json", Body=json.dumps(pointer))
    assert invoke(training_handler, with_key({"max_train_samples": 4000}, "retrain-1")).status == 202
    sent = {k: json.loads(v) for k, v in created[0]["HyperParameters"].items()}
    assert (sent["epochs"], sent["learning_rate"], sent["max_train_samples"]) == (1, 2e-4, 4000)
    assert invoke(training_handler, with_key({}, "initial")).status == 202  # an empty body too
    sent = {k: json.loads(v) for k, v in created[1]["HyperParameters"].items()}
    assert (sent["epochs"], sent["learning_rate"], sent["max_train_samples"]) == (1, 2e-4, 8000)


def test_every_request_is_found_in_the_logs_by_its_route_and_job(
    idempotency_table: str, invoke: Invoke, logged: Logged
) -> None:
    """What the X-Ray annotations gave, as log keys: a replayed Idempotency-Key's answer names its
    job too, a status lookup's lines (a 404's) name the job asked for, and nothing carries over to
    the next request."""
    first = invoke(training_handler, with_key({"epochs": 1}, "build-7"))
    again = invoke(training_handler, with_key({"epochs": 1}, "build-7"))
    assert again.body == first.body
    answered = [line for line in logged() if line["message"] == "training job answered"]
    name = first.body["training_job_name"]
    assert [(line["training_job_name"], line["idempotency_key"]) for line in answered] == [
        (name, "build-7")
    ] * 2
    assert {line["route"] for line in answered} == {"POST /train"}

    assert invoke(training_handler, "train_status_unknown").status == 404
    (failed,) = [line for line in logged() if line["message"] == "request failed"]
    assert failed["route"] == "GET /train/{job_name}"
    assert failed["training_job_name"] == "textclf-20240101-000000-ffffff"

    assert invoke(training_handler, "train_invalid_epochs").status == 422
    (refused,) = [line for line in logged() if line["message"] == "request failed"]
    assert refused["route"] == "POST /train"
    assert "training_job_name" not in refused  # the previous request's key was cleared


def test_idempotency_key_with_another_body_is_refused(
    idempotency_table: str, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    assert invoke(training_handler, with_key({"epochs": 1}, "k-1")).status == 202
    reused = invoke(training_handler, with_key({"epochs": 2}, "k-1"))
    assert reused.status == 422
    assert reused.body["error"] == "IdempotencyKeyReused"
    assert "used in the last 24 h with another request body" in reused.body["message"]
    assert len(created) == 1


def test_malformed_idempotency_key_is_refused(
    idempotency_table: str, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    response = invoke(training_handler, with_key({}, "has spaces/and slashes"))
    assert response.status == 422
    assert "Idempotency-Key header must be 1-128" in response.body["message"]
    assert created == []


def test_running_jobs_beyond_the_cap_get_429(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.sagemaker.models import sagemaker_backends
    from textclf_api.settings import get_settings

    monkeypatch.setenv("MAX_CONCURRENT_TRAINING_JOBS", "1")
    get_settings.cache_clear()
    assert invoke(training_handler, "train").status == 202
    # moto finishes jobs at once; SageMaker would still be running this one.
    job = sagemaker_backends["123456789012"][REGION].training_jobs[created[0]["TrainingJobName"]]
    job.training_job_status = "InProgress"
    refused = invoke(training_handler, "train")
    assert refused.status == 429
    assert refused.headers["retry-after"] == "30"
    assert "MaxConcurrentTrainingJobs is 1" in refused.body["message"]
    assert len(created) == 1
    job.training_job_status = "Completed"
    assert invoke(training_handler, "train").status == 202


def test_a_replay_while_the_first_request_is_in_flight_is_409(
    idempotency_table: str, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    # The replay arrives while the first request is inside CreateTrainingJob: its key is stored
    # as INPROGRESS and no result exists yet, so the replay can neither start a job nor return one.
    replies: list[ApiResponse] = []

    def replay_now(**_: Any) -> None:
        if not replies:
            replies.append(invoke(training_handler, with_key({"epochs": 1}, "build-7")))

    events = aws.sagemaker().meta.events
    events.register("before-call.sagemaker.CreateTrainingJob", replay_now)
    try:
        first = invoke(training_handler, with_key({"epochs": 1}, "build-7"))
    finally:
        events.unregister("before-call.sagemaker.CreateTrainingJob", replay_now)
    (in_flight,) = replies
    assert first.status == 202, first.body
    assert in_flight.status == 409, in_flight.body
    assert in_flight.body["error"] == "Conflict"
    assert in_flight.body["message"] == (
        "a request with Idempotency-Key 'build-7' is still being processed; retry in a few seconds"
    )
    assert in_flight.headers["retry-after"] == "2"
    assert len(created) == 1
    # Once the first has finished, the same replay gets its job.
    after = invoke(training_handler, with_key({"epochs": 1}, "build-7"))
    assert (after.status, after.body) == (202, first.body)
    assert len(created) == 1


def test_an_idempotency_table_that_throttles_is_503_and_starts_nothing(
    idempotency_table: str, invoke: Invoke, created: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer
    from botocore.exceptions import ClientError

    def throttled(self: Any, data_record: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "PutItem",
        )

    # ProvisionedThroughputExceededException is DynamoDB's throttle; moto never sends it.
    monkeypatch.setattr(DynamoDBPersistenceLayer, "_put_record", throttled)
    response = invoke(training_handler, with_key({"epochs": 1}, "build-8"))
    assert response.status == 503, response.body
    assert response.headers["retry-after"] == "30"
    assert response.body["message"] == "the idempotency table is throttling requests; try again later"
    assert "ProvisionedThroughput" not in json.dumps(response.body)
    assert created == []


def test_a_missing_idempotency_table_is_502_and_starts_nothing(
    idempotency_table: str, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    aws.dynamodb().delete_table(TableName=idempotency_table)
    response = invoke(training_handler, with_key({"epochs": 1}, "build-9"))
    assert response.status == 502, response.body
    assert "retry-after" not in response.headers
    assert response.body["message"] == (
        "the idempotency table failed; the request id above finds the cause in the function's log"
    )
    assert "ResourceNotFound" not in json.dumps(response.body)
    assert created == []


def test_truncation_reaches_the_job_and_matches_train_py(
    bucket: Any, invoke: Invoke, created: list[dict[str, Any]]
) -> None:
    from typing import get_args

    from textclf_api import hyperparameters as hp
    from textclf_api.schemas import Truncation

    assert get_args(Truncation) == hp.BY_NAME["truncation"].choices
    event = with_body(load_event("train_defaults"), {"truncation": "head+tail"})
    response = invoke(training_handler, event)
    assert response.status == 202, response.body
    assert json.loads(created[0]["HyperParameters"]["truncation"]) == "head+tail"
    refused = invoke(training_handler, with_body(load_event("train_defaults"), {"truncation": "middle"}))
    assert refused.status == 422 and "truncation" in refused.body["message"]
