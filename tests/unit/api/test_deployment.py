"""The gated deploy loop (logic/deployment.py) against moto: registry, endpoint, records.

moto reports training jobs Completed at once with its own metric list and has no UpdateEndpoint;
the tests set a job's status and metrics in moto's backend (what SageMaker's would hold after a
real run) and answer UpdateEndpoint by switching the endpoint's config there, as SageMaker does
when a blue/green update finishes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from moto.ecr.models import ecr_backends
from moto.sagemaker.models import sagemaker_backends
from textclf_api import aws
from textclf_api.handlers import deploy as handler
from textclf_api.logic import artifacts, deploy_records, deployment
from textclf_api.settings import get_settings

from textclf.labels import LABELS
from textclf.local.control_plane import create_id_table

from .conftest import ACCOUNT, BUCKET, ENDPOINT, EVENTS, IMAGE, REGION, ROLE_ARN, FakeLambdaContext

GROUP = "textclf-models-test"
TABLE = "textclf-deployments-test"
INFERENCE_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:cpu"
#: The stack's repository of textclf's inference image (template InferenceRepository).
REPOSITORY = "textclf-inference-test"
REPOSITORY_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}"
NEWS = list(LABELS)


@pytest.fixture
def loop(moto: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "MODEL_PACKAGE_GROUP": GROUP,
        "DEPLOYMENTS_TABLE": TABLE,
        "INFERENCE_IMAGE_URI": INFERENCE_IMAGE,
        "INFERENCE_REPOSITORY_URI": REPOSITORY_URI,
        "GATE_MIN_ACCURACY": "0.85",
        "GATE_MAX_DROP": "0.005",
        "ROLLBACK_ALARMS": "textclf-errors,textclf-latency",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    create_id_table(aws.dynamodb(), TABLE)
    aws.s3().create_bucket(Bucket=BUCKET)
    aws.sagemaker().create_model_package_group(ModelPackageGroupName=GROUP)
    # The template's default: textclf's server, from a repository holding one image.
    aws.ecr().create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
    push_image("first")
    updates: list[dict[str, Any]] = []

    def update_endpoint(params: dict[str, Any], **_: Any) -> dict[str, Any]:
        # moto lacks UpdateEndpoint: record it and leave the endpoint Updating on the old config.
        updates.append(params)
        backend().endpoints[params["EndpointName"]].endpoint_status = "Updating"
        return {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{params['EndpointName']}"}

    events = aws.sagemaker().meta.events
    answer = _answer(update_endpoint)
    events.register("before-parameter-build.sagemaker.UpdateEndpoint", _remember)
    events.register("before-call.sagemaker.UpdateEndpoint", answer)
    # moto ignores EnableNetworkIsolation: the request itself is what the tests read.
    MODELS_SENT.clear()
    events.register("before-parameter-build.sagemaker.CreateModel", _sent_model)
    yield updates
    events.unregister("before-parameter-build.sagemaker.CreateModel", _sent_model)
    events.unregister("before-parameter-build.sagemaker.UpdateEndpoint", _remember)
    events.unregister("before-call.sagemaker.UpdateEndpoint", answer)
    get_settings.cache_clear()


_LAST: dict[str, Any] = {}
MODELS_SENT: list[dict[str, Any]] = []


def _sent_model(params: dict[str, Any], **_: Any) -> None:
    MODELS_SENT.append(json.loads(json.dumps(params)))


def approve(arn: str) -> None:
    """``textclf models promote``: UpdateModelPackage(Approved). SageMaker keeps the package's
    metadata; moto drops what the call does not resend, so the test resends it."""
    metadata = aws.sagemaker().describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties")
    aws.sagemaker().update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", CustomerMetadataProperties=metadata or {}
    )


def _remember(params: dict[str, Any], **_: Any) -> None:
    _LAST.clear()
    _LAST.update(json.loads(json.dumps(params)))


def _answer(fn: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
    def before_call(**kwargs: Any) -> Any:
        body = fn(dict(_LAST))
        return (type("R", (), {"status_code": 200, "headers": {}})(), body)

    return before_call


def backend() -> Any:
    return sagemaker_backends[ACCOUNT][REGION]


def push_image(tag: str, pushed_at: int | None = None, repository: str = REPOSITORY) -> str:
    """An image pushed to ECR (moto keeps manifests, not layers); returns its digest."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": f"sha256:{tag}"},
            # moto's digest is of the layer digests: one layer per tag, a digest per image.
            "layers": [{"size": 1, "digest": f"sha256:{hashlib.sha256(tag.encode()).hexdigest()}"}],
        }
    )
    image = aws.ecr().put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)["image"]
    if pushed_at is not None:  # ECR's clock, in whole seconds in moto
        (stored,) = [
            i for i in ecr_backends[ACCOUNT][REGION].repositories[repository].images if tag in i.image_tags
        ]
        stored.image_pushed_at = pushed_at
    return str(image["imageId"]["imageDigest"])


def served_model_image() -> str:
    desc = aws.sagemaker().describe_endpoint(EndpointName=ENDPOINT)
    config = aws.sagemaker().describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
    model = aws.sagemaker().describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return str(model["PrimaryContainer"]["Image"])


def model_archive(
    name: str,
    requirements: str = "--no-index\n--find-links wheels\nonnxruntime==1.24.1\n",
    labels: Any = NEWS,
) -> bytes:
    """A small model.tar.gz as train.py writes it (the files the deploy loop reads, and a marker);
    ``labels=None``: an archive whose meta names no label set."""
    buffer = io.BytesIO()
    meta: dict[str, Any] = {"runtime": "onnx-fp32", "trained_by": name}
    if labels is not None:
        meta["labels"] = labels
    files = {
        "textclf_meta.json": json.dumps(meta).encode(),
        "code/requirements.txt": requirements.encode(),
        "code/inference.py": b"# serving code\n",
        "baseline.json": json.dumps({"labels": labels, "trained_by": name}).encode(),
    }
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)  # the same bytes every call


def output_key(name: str) -> str:
    return f"training-output/{name}/output/model.tar.gz"


def finished_job(
    name: str,
    status: str = "Completed",
    archive: bytes | None = None,
    hyperparameters: dict[str, str] | None = None,
    **metrics: float,
) -> None:
    """A training job as SageMaker holds it when it ends: status, FinalMetricDataList, its archive."""
    aws.s3().put_object(Bucket=BUCKET, Key=output_key(name), Body=archive or model_archive(name))
    aws.sagemaker().create_training_job(
        TrainingJobName=name,
        HyperParameters=hyperparameters or {},
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE_ARN,
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/training-output/"},
        ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    job = backend().training_jobs[name]
    job.training_job_status = status
    if status == "Failed":
        job.failure_reason = "AlgorithmError: out of memory"
    job.final_metric_data_list = [
        {"MetricName": k, "Value": v, "Timestamp": job.creation_time} for k, v in metrics.items()
    ]


def training_event(name: str, status: str = "Completed") -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "eventbridge" / "training_job_completed.json").read_text())
    event["detail"] |= {"TrainingJobName": name, "TrainingJobStatus": status}
    return event


def endpoint_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "eventbridge" / "endpoint_in_service.json").read_text())
    event["detail"]["EndpointName"] = ENDPOINT
    return event


def package_event(version: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "eventbridge" / "model_package_approved.json").read_text())
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/{version}"
    event["detail"] |= {
        "ModelPackageGroupName": GROUP,
        "ModelPackageArn": arn,
        "ModelPackageVersion": int(version),
    }
    return event


def finish_update(updates: list[dict[str, Any]], *, failure: str | None = None) -> None:
    """SageMaker finishing the last UpdateEndpoint: on the new config, or rolled back to the old one."""
    endpoint = backend().endpoints[ENDPOINT]
    endpoint.endpoint_status = "InService"
    if failure is None:
        endpoint.endpoint_config_name = updates[-1]["EndpointConfigName"]
    else:
        endpoint.failure_reason = failure


def serving_version() -> str | None:
    desc = aws.sagemaker().describe_endpoint(EndpointName=ENDPOINT)
    return deploy_records.version_of(desc["EndpointConfigName"])


def packages() -> list[deployment.Package]:
    return deployment.list_packages(get_settings())


def record(job: str) -> dict[str, str]:
    found = deploy_records.Records(TABLE).get(job)
    assert found is not None
    return found


def handle(event: dict[str, Any]) -> deployment.Outcome:
    return deployment.handle_event(event)


def serving_labels() -> dict[str, Any]:
    """What POST /feedback checks labels against: the deploy function's record of what serves."""
    from textclf_api.schemas import SERVING_LABELS_KEY

    record: dict[str, Any] = json.loads(
        aws.s3().get_object(Bucket=BUCKET, Key=SERVING_LABELS_KEY)["Body"].read()
    )
    return record


def test_first_model_passing_the_gate_is_registered_and_creates_the_endpoint(loop: Any) -> None:
    finished_job("textclf-a", test_accuracy=0.91, test_macro_f1=0.90, baseline_test_accuracy=0.88)
    outcome = handle(training_event("textclf-a"))
    assert (outcome.action, outcome.model_version) == ("deploying", "1")
    (package,) = packages()
    assert package.status == "Approved"
    assert package.metadata["test_accuracy"] == "0.910000"
    assert package.metadata["training_job"] == "textclf-a"
    assert "no model serving yet" in package.metadata["gate"]
    # Served from the admitted copy under models/, named and checked by its SHA-256.
    sha256 = hashlib.sha256(model_archive("textclf-a")).hexdigest()
    assert package.metadata["sha256"] == sha256
    assert package.model_data == f"s3://{BUCKET}/models/{sha256[:16]}/model.tar.gz"
    assert package.metadata["offline"] == "true"
    # The Model serves the job's own archive and reports the registry version.
    desc = aws.sagemaker().describe_endpoint(EndpointName=ENDPOINT)
    config = aws.sagemaker().describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
    model = aws.sagemaker().describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["Environment"] == {
        # A model-server worker per vCPU (MMS's default), one ONNX thread each (docs/benchmarks.md).
        "TEXTCLF_NUM_THREADS": "1",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "HF_HUB_OFFLINE": "1",  # the model is in the archive; never the Hub
        "TEXTCLF_MODEL_VERSION": "1",
    }
    assert model["PrimaryContainer"]["ModelDataUrl"] == package.model_data
    # textclf's server (the template's default), pinned by digest; the package records the DLC.
    (image,) = aws.ecr().describe_images(repositoryName=REPOSITORY)["imageDetails"]
    assert model["PrimaryContainer"]["Image"] == f"{REPOSITORY_URI}@{image['imageDigest']}"
    assert package.image == INFERENCE_IMAGE
    # Its requirements are vendored (--no-index): nothing needs the network at start.
    assert MODELS_SENT[-1]["EnableNetworkIsolation"] is True
    assert serving_version() == "1"
    assert record("textclf-a")["status"] == "deploying"
    # The endpoint's state-change event settles it.
    settled = handle(endpoint_event())
    assert (settled.action, settled.training_job_name) == ("deployed", "textclf-a")
    assert deploy_records.deployment_of("textclf-a", get_settings()) == deploy_records.Deployment(
        status="deployed", reason=f"serving on {desc['EndpointConfigName']}", model_version="1"
    )
    # Its whole label set, kept beside the admitted archive, is recorded as what serves now.
    assert json.loads(
        aws.s3().get_object(Bucket=BUCKET, Key=f"models/{sha256[:16]}/labels.json")["Body"].read()
    ) == {"labels": NEWS}
    # And its baseline.json, for the monitor.
    assert artifacts.recorded_baseline(aws.s3(), package.model_data) == {
        "labels": NEWS,
        "trained_by": "textclf-a",
    }
    published = serving_labels()
    assert (published["labels"], published["model_version"]) == (NEWS, "1")
    assert published["endpoint_config"] == desc["EndpointConfigName"]


def test_model_below_the_floor_is_rejected_and_nothing_is_deployed(loop: Any) -> None:
    finished_job("textclf-low", test_accuracy=0.80)
    outcome = handle(training_event("textclf-low"))
    assert outcome.action == "rejected"
    assert outcome.reason == "test accuracy 0.8000 is below GateMinAccuracy 0.8500"
    (package,) = packages()
    assert package.status == "Rejected" and package.metadata["gate"] == outcome.reason
    assert aws.sagemaker().list_endpoints()["Endpoints"] == []
    assert aws.sagemaker().list_models()["Models"] == []
    assert (record("textclf-low")["status"], record("textclf-low")["model_version"]) == ("rejected", "1")


def test_job_without_test_accuracy_is_rejected(loop: Any) -> None:
    finished_job("textclf-nometric", validation_accuracy=0.95)
    outcome = handle(training_event("textclf-nometric"))
    assert outcome.action == "rejected" and "no test_accuracy" in outcome.reason


def test_challenger_is_compared_with_the_champion_and_rolled_out_blue_green(loop: Any) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    handle(endpoint_event())
    # 0.894 < 0.900 - 0.005: refused, the champion keeps serving.
    finished_job("textclf-b", test_accuracy=0.894)
    refused = handle(training_event("textclf-b"))
    assert refused.action == "rejected"
    assert refused.reason == ("test accuracy 0.8940 is below version 1's 0.9000 minus GateMaxDrop 0.0050")
    assert loop == [] and serving_version() == "1"
    # 0.896 >= 0.895: within the allowed drop, rolled out with guardrails.
    finished_job("textclf-c", test_accuracy=0.896)
    outcome = handle(training_event("textclf-c"))
    assert (outcome.action, outcome.model_version) == ("deploying", "3"), outcome
    (update,) = loop
    assert update["EndpointName"] == ENDPOINT
    assert deploy_records.version_of(update["EndpointConfigName"]) == "3"
    assert update["DeploymentConfig"]["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": "textclf-errors"}, {"AlarmName": "textclf-latency"}]
    }
    assert (
        update["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"]
        == "ALL_AT_ONCE"
    )
    assert serving_version() == "1"  # the old fleet serves until the update finishes
    finish_update(loop)
    assert handle(endpoint_event()).action == "deployed"
    assert serving_version() == "3"
    assert record("textclf-c")["status"] == "deployed"
    assert record("textclf-a")["status"] == "deployed"  # it served, then was superseded


def test_canary_on_fleets_of_two_or_more(loop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDPOINT_MIN_INSTANCES", "2")
    monkeypatch.setenv("ENDPOINT_MAX_INSTANCES", "4")
    get_settings.cache_clear()
    config = deployment.deployment_config(get_settings())
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY" and routing["CanarySize"] == {"Type": "INSTANCE_COUNT", "Value": 1}
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    handle(endpoint_event())
    # Autoscaling registered once the endpoint is InService.
    targets = aws.autoscaling().describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [
        (f"endpoint/{ENDPOINT}/variant/AllTraffic", 2, 4)
    ]
    policy = aws.autoscaling().describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"][0]
    spec = policy["TargetTrackingScalingPolicyConfiguration"]
    assert (
        spec["PredefinedMetricSpecification"]["PredefinedMetricType"]
        == "SageMakerVariantInvocationsPerInstance"
    )
    finished_job("textclf-b", test_accuracy=0.91)
    handle(training_event("textclf-b"))
    assert loop[-1]["RetainAllVariantProperties"] is True


def test_duplicate_and_out_of_order_events_do_nothing_twice(loop: Any) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    backend().training_jobs["textclf-a"].training_job_status = "InProgress"
    # A Completed event for a job SageMaker still describes as running: wait for the real one.
    early = handle(training_event("textclf-a"))
    assert early.action == "ignored" and "InProgress" in early.reason
    backend().training_jobs["textclf-a"].training_job_status = "Completed"
    assert handle(training_event("textclf-a")).action == "deploying"
    again = handle(training_event("textclf-a"))
    assert again.action == "duplicate"
    # An InProgress event arriving after the Completed one changes nothing either.
    assert handle(training_event("textclf-a", "InProgress")).action == "duplicate"
    assert len(packages()) == 1
    assert len(aws.sagemaker().list_endpoint_configs()["EndpointConfigs"]) == 1
    # The registry's own Approved event for the package the job just registered: no second rollout.
    assert handle(package_event("1")).action in ("duplicate", "ignored")
    assert len(aws.sagemaker().list_endpoint_configs()["EndpointConfigs"]) == 1


def test_failed_or_stopped_job_is_recorded_and_never_deployed(loop: Any) -> None:
    finished_job("textclf-f", status="Failed")
    outcome = handle(training_event("textclf-f", "Failed"))
    assert outcome.action == "failed"
    assert outcome.reason == "training job Failed: AlgorithmError: out of memory"
    finished_job("textclf-s", status="Stopped", test_accuracy=0.99)
    assert handle(training_event("textclf-s", "Stopped")).action == "failed"
    assert packages() == [] and aws.sagemaker().list_endpoints()["Endpoints"] == []
    assert record("textclf-s")["status"] == "failed"


def test_other_stacks_jobs_are_ignored(loop: Any) -> None:
    outcome = handle(training_event("someone-else-job"))
    assert outcome.action == "ignored" and packages() == []


def test_promoting_an_earlier_version_rolls_back(loop: Any) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    handle(endpoint_event())
    finished_job("textclf-b", test_accuracy=0.92)
    handle(training_event("textclf-b"))
    finish_update(loop)
    handle(endpoint_event())
    assert serving_version() == "2"
    # textclf models promote 1 = UpdateModelPackage(Approved) -> the registry's event.
    v1 = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/1"
    approve(v1)
    outcome = handle(package_event("1"))
    assert (outcome.action, outcome.model_version) == ("deploying", "1")
    assert deploy_records.version_of(loop[-1]["EndpointConfigName"]) == "1"
    finish_update(loop)
    assert handle(endpoint_event()).action == "deployed"
    assert serving_version() == "1"
    assert record("textclf-a")["status"] == "deployed"
    assert record("textclf-b")["status"] == "rolled_back"
    assert record("textclf-b")["reason"] == "version 1 was promoted back"
    # Approving the version that already serves does nothing.
    assert handle(package_event("1")).action == "ignored"


def settle(loop: list[dict[str, Any]], state: str, config: str | None, failure: str | None) -> None:
    """SageMaker ending the last UpdateEndpoint in ``state``, serving ``config`` (None: the old one)."""
    endpoint = backend().endpoints[ENDPOINT]
    endpoint.endpoint_status = state
    if config is not None:
        endpoint.endpoint_config_name = config
    endpoint.failure_reason = failure


ALARM = "Alarm textclf-errors went into ALARM during the baking period"


@pytest.mark.parametrize(
    ("state", "failure", "action", "reason"),
    [
        # InService on the old config after an alarm: SageMaker's automatic rollback.
        ("InService", ALARM, "rolled_back", "rollout of {new} ended; the endpoint serves {old}: " + ALARM),
        # InService on the old config for another reason (new fleet failed its health checks).
        (
            "InService",
            "The primary container for production variant AllTraffic did not pass the ping health check",
            "failed",
            "rollout of {new} ended; the endpoint serves {old}: The primary container for production "
            "variant AllTraffic did not pass the ping health check",
        ),
        ("InService", None, "failed", "rollout of {new} ended; the endpoint serves {old}: no reason given"),
        # The endpoint itself Failed.
        (
            "Failed",
            "Unable to provision instances",
            "failed",
            "the endpoint failed: Unable to provision instances",
        ),
        ("Failed", None, "failed", "the endpoint failed: no reason given"),
    ],
    ids=["alarm-rollback", "health-check", "no-reason", "endpoint-failed", "endpoint-failed-no-reason"],
)
def test_every_way_an_update_ends_without_the_new_config_is_recorded(
    loop: Any, state: str, failure: str | None, action: str, reason: str
) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    handle(endpoint_event())
    old = aws.sagemaker().describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    finished_job("textclf-b", test_accuracy=0.91)
    handle(training_event("textclf-b"))
    new = loop[-1]["EndpointConfigName"]
    settle(loop, state, None, failure)
    outcome = handle(endpoint_event())
    expected = reason.format(new=new, old=old)
    assert (outcome.action, outcome.training_job_name, outcome.model_version) == (action, "textclf-b", "2")
    assert outcome.reason == expected
    assert record("textclf-b")["status"] == action
    assert record("textclf-b")["reason"] == expected
    # The version that served before is still the one marked deployed, and still serves.
    assert record("textclf-a")["status"] == "deployed"
    assert record("textclf-a")["model_version"] == "1"
    assert serving_version() == "1"
    # Settled once: a repeated event finds nothing deploying and changes no record.
    again = handle(endpoint_event())
    assert again.action == "ignored" and again.training_job_name is None
    assert record("textclf-b")["status"] == action
    assert record("textclf-a")["status"] == "deployed"


def test_an_event_for_another_endpoint_or_a_deleted_one_changes_nothing(loop: Any) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    other = endpoint_event()
    other["detail"]["EndpointName"] = "someone-elses-endpoint"
    assert handle(other) == deployment.Outcome("ignored", reason="another endpoint")
    assert record("textclf-a")["status"] == "deploying"
    aws.sagemaker().delete_endpoint(EndpointName=ENDPOINT)
    gone = handle(endpoint_event())
    assert gone == deployment.Outcome("ignored", reason="the endpoint does not exist (deleted)")
    assert record("textclf-a")["status"] == "deploying"


# The one set `textclf deploy` refuses on too (tests/unit/serving/test_deploy.py pins its members).
@pytest.mark.parametrize("busy", sorted(deployment.BUSY_ENDPOINT_STATES))
def test_rollout_waits_for_a_busy_endpoint(loop: Any, busy: str) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    backend().endpoints[ENDPOINT].endpoint_status = busy
    finished_job("textclf-b", test_accuracy=0.92)
    queued = handle(training_event("textclf-b"))
    assert queued.action == "queued" and loop == []
    assert queued.reason == f"waiting for the endpoint ({busy}); rolled out when it is InService"
    # An event while it is still busy changes nothing.
    assert handle(endpoint_event()).reason == f"endpoint {busy}"
    assert record("textclf-b")["status"] == "pending"
    backend().endpoints[ENDPOINT].endpoint_status = "InService"
    started = handle(endpoint_event())
    assert (started.action, started.model_version) == ("deploying", "2")
    assert deploy_records.version_of(loop[-1]["EndpointConfigName"]) == "2"


def test_a_failed_endpoint_is_replaced(loop: Any) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    backend().endpoints[ENDPOINT].endpoint_status = "Failed"
    finished_job("textclf-b", test_accuracy=0.92)
    outcome = handle(training_event("textclf-b"))
    # A Failed endpoint cannot be updated: deleted and created anew on the new version's config
    # (`textclf deploy` refuses instead: it cannot leave a deletion to finish by itself).
    assert (outcome.action, outcome.reason) == ("deploying", "creating the endpoint")
    assert loop == [] and serving_version() == "2"


def test_the_cli_rolls_out_with_its_own_clients_and_settings(loop: Any) -> None:
    """What `textclf deploy` calls: the same rollout, given clients and settings; the caller decides
    about a Failed endpoint, the busy states are the function's."""
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    (package,) = packages()
    settings = get_settings()
    clients = deployment.Clients(sagemaker=aws.sagemaker(), s3=aws.s3())
    release = deployment.Release(package.image, package.model_data, package.metadata)
    backend().endpoints[ENDPOINT].endpoint_status = "Updating"
    assert deployment.change_endpoint(release, "n-1", settings, clients) == deployment.Change(
        "queued", "Updating"
    )
    backend().endpoints[ENDPOINT].endpoint_status = "Failed"
    with pytest.raises(deployment.EndpointFailedError):
        deployment.change_endpoint(release, "n-2", settings, clients, replace_failed=False)
    # Neither call created anything: only version 1's Model exists.
    serving = aws.sagemaker().describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    assert [m["ModelName"] for m in aws.sagemaker().list_models()["Models"]] == [serving]


def test_textclf_models_lists_and_promotes_through_the_functions_registry_reads(
    loop: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from textclf.cli import main

    finished_job("textclf-a", test_accuracy=0.90, baseline_test_accuracy=0.88)
    handle(training_event("textclf-a"))
    handle(endpoint_event())
    finished_job("textclf-b", test_accuracy=0.80)
    handle(training_event("textclf-b"))  # rejected by the gate
    names = ["--group", GROUP, "--endpoint-name", ENDPOINT, "--region", REGION]
    assert main(["models", "list", *names]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{GROUP} (endpoint {ENDPOINT} serves version 1):"
    first = out[2].split()
    assert first[:5] + first[-1:] == ["*", "1", "Approved", "0.9000", "0.8800", "textclf-a"]
    assert first[5].startswith("20")  # created
    assert out[3] == f"{'':11}gate: {packages()[0].metadata['gate']}"
    assert out[4].split()[:4] == ["2", "Rejected", "0.8000", "-"]
    # Promoting the rejected version approves it; the registry's event rolls it out.
    assert main(["models", "promote", "2", *names]) == 0
    assert packages()[1].status == "Approved"
    assert main(["models", "promote", "7", *names]) == 2
    assert f"{GROUP} has no version 7" in capsys.readouterr().err
    # No endpoint (torn down): listed as serving none of them.
    assert main(["teardown", "--endpoint-name", ENDPOINT, "--region", REGION]) == 0
    assert main(["models", "list", *names]) == 0
    assert "serves version none of these" in capsys.readouterr().out


def test_serverless_endpoint_config(loop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDPOINT_TYPE", "Serverless")
    monkeypatch.setenv("SERVERLESS_MEMORY_MB", "4096")
    get_settings.cache_clear()
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    name = aws.sagemaker().describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    variant = aws.sagemaker().describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 10}
    assert "InstanceType" not in variant
    # One model-server worker (one model copy in the memory it has), using every core.
    model = aws.sagemaker().describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
    assert model["Environment"]["SAGEMAKER_MODEL_SERVER_WORKERS"] == "1"
    assert "TEXTCLF_NUM_THREADS" not in model["Environment"]
    # Serverless endpoints keep the DLC, whatever the repository holds.
    assert model["Image"] == INFERENCE_IMAGE
    assert record("textclf-a")["reason"] == "creating the endpoint"


def test_teardown_deletes_the_endpoint(loop: Any) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    assert deployment.teardown(ENDPOINT) == [f"deleted endpoint {ENDPOINT}"]
    assert aws.sagemaker().list_endpoints()["Endpoints"] == []
    assert deployment.teardown(ENDPOINT) == []


def test_handler_answers_events_and_the_stack_deletion(loop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    assert handler.lambda_handler(training_event("textclf-a"), FakeLambdaContext())["action"] == "deploying"
    # CloudFormation's Delete of Custom::EndpointTeardown: the endpoint goes, the answer is PUT.
    sent: list[bytes] = []

    class Reply:
        def __enter__(self) -> Reply:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def urlopen(request: Any, timeout: float) -> Reply:
        assert request.get_method() == "PUT" and request.full_url == "https://cfn.example/response"
        sent.append(request.data)
        return Reply()

    monkeypatch.setattr(handler.urllib.request, "urlopen", urlopen)
    event = {
        "RequestType": "Delete",
        "ResponseURL": "https://cfn.example/response",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/textclf/1",
        "RequestId": "r-1",
        "LogicalResourceId": "EndpointTeardown",
        "PhysicalResourceId": "EndpointTeardown-teardown",
    }
    body = handler.lambda_handler(event, FakeLambdaContext())
    assert body["Status"] == "SUCCESS" and body["Data"]["Done"] == f"deleted endpoint {ENDPOINT}"
    assert json.loads(sent[0]) == body
    assert aws.sagemaker().list_endpoints()["Endpoints"] == []


def test_a_rollout_that_cannot_start_is_recorded_and_retried_by_promote(
    loop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    # The execution role setting is gone: CreateModel cannot be called.
    monkeypatch.delenv("SAGEMAKER_ROLE_ARN")
    get_settings.cache_clear()
    outcome = handle(training_event("textclf-a"))
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", ROLE_ARN)
    get_settings.cache_clear()
    assert outcome.action == "failed"
    assert "rollout of version 1 could not start" in outcome.reason
    assert "textclf models promote 1" in outcome.reason
    assert record("textclf-a")["status"] == "failed"
    assert handle(training_event("textclf-a")).action == "duplicate"  # a retried event: no second try
    approve(f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/1")
    assert handle(package_event("1")).action == "deploying"  # the promote retries it


# --------------------------------------------------------------------------------------------
# Trusted artifacts: only admitted bytes are served
# --------------------------------------------------------------------------------------------


def test_a_truncated_archive_is_refused_and_never_registered(loop: Any) -> None:
    finished_job("textclf-cut", archive=model_archive("textclf-cut")[:-40], test_accuracy=0.95)
    outcome = handle(training_event("textclf-cut"))
    assert outcome.action == "failed"
    assert outcome.reason.startswith("model artifact refused: the model artifact is ")
    assert packages() == []
    assert aws.sagemaker().list_models()["Models"] == []
    assert record("textclf-cut")["status"] == "failed"


def test_an_archive_without_textclf_meta_is_refused(loop: Any) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("code/inference.py")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"x=1"))
    finished_job("textclf-foreign", archive=buffer.getvalue(), test_accuracy=0.95)
    outcome = handle(training_event("textclf-foreign"))
    assert outcome.action == "failed"
    assert "has no textclf_meta.json" in outcome.reason


def test_requirements_from_an_index_keep_the_network(loop: Any) -> None:
    finished_job(
        "textclf-net", archive=model_archive("textclf-net", "onnxruntime==1.24.1\n"), test_accuracy=0.95
    )
    assert handle(training_event("textclf-net")).action == "deploying"
    (package,) = packages()
    assert package.metadata["offline"] == "false"
    assert MODELS_SENT[-1]["EnableNetworkIsolation"] is False


def test_an_admitted_archive_rewritten_later_is_not_rolled_out(loop: Any) -> None:
    finished_job("textclf-v1", test_accuracy=0.95)
    handle(training_event("textclf-v1"))
    handle(endpoint_event())
    finished_job("textclf-v2", test_accuracy=0.96)
    handle(training_event("textclf-v2"))
    finish_update(loop)
    handle(endpoint_event())
    assert serving_version() == "2"
    # Someone with write access to models/ swaps version 1's bytes; promoting it must refuse.
    first = packages()[0]
    key = first.model_data.removeprefix(f"s3://{BUCKET}/")
    aws.s3().put_object(Bucket=BUCKET, Key=key, Body=model_archive("evil"), ChecksumAlgorithm="SHA256")
    approve(first.arn)
    outcome = handle(package_event("1"))
    assert outcome.action == "failed"
    assert "no longer has the sha256 recorded when it was admitted" in outcome.reason
    assert serving_version() == "2"


def test_a_package_registered_by_hand_without_a_hash_is_not_served(loop: Any) -> None:
    arn = aws.sagemaker().create_model_package(
        ModelPackageGroupName=GROUP,
        InferenceSpecification={
            "Containers": [{"Image": INFERENCE_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{output_key('x')}"}],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus="Approved",
    )["ModelPackageArn"]
    outcome = handle(package_event(arn.rsplit("/", 1)[-1]))
    assert outcome.action == "failed"
    assert "records no sha256" in outcome.reason
    assert aws.sagemaker().list_models()["Models"] == []


# --------------------------------------------------------------------------------------------
# The label set: a model answering with other labels replaces the champion only when asked to
# --------------------------------------------------------------------------------------------

SPAM = ["ham", "spam"]
ALLOW = {"allow_label_change": "true"}  # as POST /train sends it (JSON-encoded)


def serve_news_model() -> None:
    finished_job("textclf-news", test_accuracy=0.90)
    handle(training_event("textclf-news"))
    handle(endpoint_event())
    assert serving_version() == "1"


def test_packages_record_the_label_set_they_answer_with(loop: Any) -> None:
    serve_news_model()
    (package,) = packages()
    assert json.loads(package.metadata["labels"]) == NEWS
    assert package.metadata["labels_sha256"] == hashlib.sha256(json.dumps(NEWS).encode()).hexdigest()
    assert deployment.champion(get_settings()) == deployment.Champion("1", 0.90, package.labels)


def test_a_challenger_with_another_label_set_is_refused_naming_both(loop: Any) -> None:
    serve_news_model()
    finished_job("textclf-spam", archive=model_archive("textclf-spam", labels=SPAM), test_accuracy=0.99)
    outcome = handle(training_event("textclf-spam"))
    assert outcome.action == "rejected"
    assert outcome.reason == (
        f"the label set (or its order) changed: version 1 serves labels {json.dumps(NEWS)}, this model "
        f"has {json.dumps(SPAM)}; train with allow_label_change: true to replace the serving model"
    )
    assert packages()[1].status == "Rejected" and packages()[1].metadata["gate"] == outcome.reason[:256]
    # GET /train/{job} shows it, as it shows the gate's other refusals.
    shown = deploy_records.deployment_of("textclf-spam", get_settings())
    assert shown is not None and (shown.status, shown.reason) == ("rejected", outcome.reason)
    assert loop == [] and serving_version() == "1"


def test_the_same_labels_in_another_order_are_another_label_set(loop: Any) -> None:
    serve_news_model()
    shuffled = NEWS[::-1]
    finished_job("textclf-order", archive=model_archive("textclf-order", labels=shuffled), test_accuracy=0.95)
    outcome = handle(training_event("textclf-order"))
    assert outcome.action == "rejected" and json.dumps(shuffled) in outcome.reason


def test_allow_label_change_lets_it_replace_the_champion(loop: Any) -> None:
    serve_news_model()
    # Below the champion's accuracy minus GateMaxDrop, above the floor: another task's figure is
    # not compared with the champion's.
    finished_job(
        "textclf-spam",
        archive=model_archive("textclf-spam", labels=SPAM),
        hyperparameters=ALLOW,
        test_accuracy=0.86,
    )
    outcome = handle(training_event("textclf-spam"))
    assert (outcome.action, outcome.model_version) == ("deploying", "2"), outcome
    assert packages()[1].metadata["gate"] == (
        "test accuracy 0.8600 >= GateMinAccuracy 0.8500; labels differ from version 1's, "
        "allowed by allow_label_change (accuracy not compared)"
    )
    assert json.loads(packages()[1].metadata["labels"]) == SPAM
    finish_update(loop)
    assert handle(endpoint_event()).action == "deployed" and serving_version() == "2"
    # Feedback is checked against the new set from now on.
    assert (serving_labels()["labels"], serving_labels()["model_version"]) == (SPAM, "2")
    # The new champion's set is what the next model is held to.
    finished_job("textclf-news-again", test_accuracy=0.95)
    again = handle(training_event("textclf-news-again"))
    assert again.action == "rejected" and f"version 2 serves labels {json.dumps(SPAM)}" in again.reason
    # GateMinAccuracy still applies to a model allowed to change the labels.
    finished_job(
        "textclf-low",
        archive=model_archive("textclf-low", labels=["a", "b"]),
        hyperparameters=ALLOW,
        test_accuracy=0.5,
    )
    assert handle(training_event("textclf-low")).reason.endswith("is below GateMinAccuracy 0.8500")


def test_an_archive_naming_no_labels_cannot_replace_one_that_does(loop: Any) -> None:
    serve_news_model()
    finished_job("textclf-bare", archive=model_archive("textclf-bare", labels=None), test_accuracy=0.95)
    outcome = handle(training_event("textclf-bare"))
    assert outcome.action == "rejected" and "this model's archive names no label set" in outcome.reason


def test_a_champion_registered_before_packages_recorded_labels_is_not_compared(loop: Any) -> None:
    finished_job("textclf-old", archive=model_archive("textclf-old", labels=None), test_accuracy=0.90)
    handle(training_event("textclf-old"))
    handle(endpoint_event())
    assert "labels_sha256" not in packages()[0].metadata
    finished_job("textclf-spam", archive=model_archive("textclf-spam", labels=SPAM), test_accuracy=0.95)
    assert handle(training_event("textclf-spam")).action == "deploying"


def test_a_long_label_set_is_shortened_for_people_and_compared_exactly(loop: Any) -> None:
    many = [f"contract_clause_category_{i:02d}" for i in range(12)]
    finished_job("textclf-12", archive=model_archive("textclf-12", labels=many), test_accuracy=0.90)
    handle(training_event("textclf-12"))
    handle(endpoint_event())
    shown = packages()[0].metadata["labels"]
    assert len(shown) <= 256 and shown.endswith(", ... (12 labels)]")
    # Differing only in the last label, past what is shown: still another set.
    other = [*many[:-1], "contract_clause_category_99"]
    finished_job("textclf-12b", archive=model_archive("textclf-12b", labels=other), test_accuracy=0.95)
    assert handle(training_event("textclf-12b")).action == "rejected"
    finished_job("textclf-12c", archive=model_archive("textclf-12c", labels=many), test_accuracy=0.95)
    assert handle(training_event("textclf-12c")).action == "deploying"


@pytest.mark.parametrize("labels", ["business", ["a", "a"], ["a", ""], [1, 2]], ids=str)
def test_an_archive_with_a_malformed_label_list_is_refused(loop: Any, labels: Any) -> None:
    finished_job("textclf-bad", archive=model_archive("textclf-bad", labels=labels), test_accuracy=0.95)
    outcome = handle(training_event("textclf-bad"))
    assert outcome.action == "failed" and "labels must be a list of distinct label names" in outcome.reason
    assert packages() == []


def retrain_archive(name: str, labellers: dict[str, dict[str, float]]) -> bytes:
    """A retrain's archive: the job recorded each feedback labeller's disagreement with the champion."""
    buffer = io.BytesIO()
    meta = {"runtime": "onnx-fp32", "labels": NEWS, "retraining": {"labellers": labellers}}
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = json.dumps(meta).encode()
        info = tarfile.TarInfo("textclf_meta.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


RETRAIN = {
    "retrain_reason": '"labels"',
    "feedback_until": '"2014-07-01T00:00:00Z"',
    "feedback_rows": json.dumps(json.dumps({"alice": 800, "mallory": 800})),
    "feedback_manifest": '"s3://bucket/feedback-sets/abc.json"',
}


def test_a_retrain_that_poisoned_rows_made_worse_on_the_recent_window_is_refused_naming_them(
    loop: Any,
) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    handle(endpoint_event())
    archive = retrain_archive(
        "textclf-b",
        {
            "alice": {"rows": 800, "confident": 500, "disagreement": 0.03},
            "mallory": {"rows": 800, "confident": 510, "disagreement": 0.94},
        },
    )
    metrics = {"champion_recent_accuracy": 0.86, "recent_accuracy": 0.74, "champion_test_accuracy": 0.90}
    finished_job("textclf-b", archive=archive, hyperparameters=RETRAIN, test_accuracy=0.91, **metrics)
    outcome = handle(training_event("textclf-b"))
    assert outcome.action == "rejected" and loop == []
    assert outcome.reason.startswith("recent feedback window accuracy 0.7400 is below the champion's 0.8600")
    assert "labellers whose rows moved it: mallory (94% of 510" in outcome.reason
    (_, refused) = packages()
    assert refused.status == "Rejected" and refused.metadata["retrain_reason"] == "labels"
    assert refused.metadata["feedback_until"] == "2014-07-01T00:00:00Z"
    assert refused.metadata["recent_accuracy"] == "0.740000"


def test_a_job_trained_on_labels_quarantined_meanwhile_is_refused_and_marked(loop: Any) -> None:
    from textclf_api.logic import authority

    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    handle(endpoint_event())
    when = datetime(2014, 6, 15, tzinfo=UTC)
    authority.write_quarantine(aws.s3(), BUCKET, {"mallory": authority.Quarantine("mallory", when, "", when)})
    finished_job("textclf-b", hyperparameters=RETRAIN, test_accuracy=0.95)
    outcome = handle(training_event("textclf-b"))
    assert (outcome.action, outcome.reason) == (
        "rejected",
        "trained on labels of quarantined labeller(s) mallory",
    )
    (_, refused) = packages()
    assert refused.metadata[deployment.QUARANTINED_KEY] == "mallory"
    # Quarantined only from after the job's feedback window: nothing it saw, so it is judged as usual.
    later = datetime(2014, 7, 2, tzinfo=UTC)
    authority.write_quarantine(
        aws.s3(), BUCKET, {"mallory": authority.Quarantine("mallory", later, "", later)}
    )
    finished_job("textclf-c", hyperparameters=RETRAIN, test_accuracy=0.95)
    assert handle(training_event("textclf-c")).action == "deploying"


def monitor_alarms(**states: str) -> Callable[[], dict[str, str]]:
    """The stack's three monitor alarms in the given states (``live_accuracy`` for live-accuracy);
    returns a reader of their states."""
    cloudwatch = aws.cloudwatch()
    for suffix in ("drift", "live-accuracy", "labels"):
        cloudwatch.put_metric_alarm(
            AlarmName=f"textclf-{suffix}", MetricName="M", Namespace="textclf", Statistic="Maximum",
            Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
        )  # fmt: skip
        state = states.get(suffix.replace("-", "_"))
        if state:
            cloudwatch.set_alarm_state(AlarmName=f"textclf-{suffix}", StateValue=state, StateReason="test")

    def read() -> dict[str, str]:
        alarms = cloudwatch.describe_alarms(AlarmNamePrefix="textclf-")["MetricAlarms"]
        return {a["AlarmName"]: a["StateValue"] for a in alarms}

    return read


def test_a_refused_retrain_re_arms_the_labels_alarm_only(loop: Any) -> None:
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    handle(endpoint_event())
    states = monitor_alarms(labels="ALARM", drift="ALARM")
    metrics = {"champion_recent_accuracy": 0.86, "recent_accuracy": 0.80, "champion_test_accuracy": 0.90}
    finished_job("textclf-b", archive=retrain_archive("textclf-b", {}), hyperparameters=RETRAIN,
                 test_accuracy=0.91, **metrics)  # fmt: skip
    assert handle(training_event("textclf-b")).action == "rejected"
    # The labels it took count as tried: the next episode needs new ones. The drift the refused
    # model could not mend stays in its episode (re-armed, it would retrain on the same evidence).
    assert states() == {"textclf-labels": "OK", "textclf-drift": "ALARM", "textclf-live-accuracy": "OK"}
    (labels,) = aws.cloudwatch().describe_alarms(AlarmNames=["textclf-labels"])["MetricAlarms"]
    assert labels["StateReason"] == "version 2 was refused: labels count from its feedback window"
    # A refused job no retrain started (by hand, no retrain_reason) leaves the alarms alone.
    states = monitor_alarms(labels="ALARM")
    finished_job("textclf-c", test_accuracy=0.10)
    assert handle(training_event("textclf-c")).action == "rejected"
    assert states()["textclf-labels"] == "ALARM"


def test_a_new_model_serving_re_arms_the_monitor_alarms_still_in_alarm(loop: Any) -> None:
    states = monitor_alarms(labels="ALARM", drift="OK")
    cloudwatch = aws.cloudwatch()

    finished_job("textclf-a", test_accuracy=0.91)
    handle(training_event("textclf-a"))
    # Still rolling out: the model the alarm judged serves, so its episode goes on.
    assert states()["textclf-labels"] == "ALARM"
    before = states()
    assert handle(endpoint_event()).action == "deployed"
    # The retrained model serves: back to OK, so the next breach is a new episode (a new event);
    # alarms not in ALARM are left as they were.
    assert states() == {**before, "textclf-labels": "OK"}
    (labels,) = cloudwatch.describe_alarms(AlarmNames=["textclf-labels"])["MetricAlarms"]
    assert labels["StateReason"] == "version 1 now serves: the monitor judges it afresh"


# --------------------------------------------------------------------------------------------
# Which server answers: textclf's image by default, the DLC as the fallback
# --------------------------------------------------------------------------------------------


def test_the_newest_image_of_the_repository_serves_pinned_by_its_digest(loop: Any) -> None:
    older = push_image("older", pushed_at=1_000)
    newest = push_image("newest", pushed_at=3_000)
    push_image("middle", pushed_at=2_000)  # pushed last, built earlier: the clock decides
    ecr_backends[ACCOUNT][REGION].repositories[REPOSITORY].images[0].image_pushed_at = 500
    finished_job("textclf-a", test_accuracy=0.90)
    outcome = handle(training_event("textclf-a"))
    assert (outcome.action, outcome.reason) == ("deploying", "creating the endpoint")
    assert served_model_image() == f"{REPOSITORY_URI}@{newest}" != f"{REPOSITORY_URI}@{older}"


def test_the_override_uri_serves_as_given(loop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    override = "210987654321.dkr.ecr.us-east-1.amazonaws.com/team/textclf-serve:60e39f8"
    monkeypatch.setenv("INFERENCE_SERVER_IMAGE_URI", override)
    get_settings.cache_clear()
    finished_job("textclf-a", test_accuracy=0.90)
    handle(training_event("textclf-a"))
    assert served_model_image() == override


@pytest.mark.parametrize("repository", ["empty", "missing"])
def test_without_a_textclf_image_the_dlc_serves_and_the_record_says_why(
    loop: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, repository: str
) -> None:
    uri = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/textclf-{repository}"
    if repository == "empty":
        aws.ecr().create_repository(repositoryName=f"textclf-{repository}")
    monkeypatch.setenv("INFERENCE_REPOSITORY_URI", uri)
    get_settings.cache_clear()
    finished_job("textclf-a", test_accuracy=0.90)
    outcome = handle(training_event("textclf-a"))
    why = f"served by the HF DLC: no textclf image in {uri} yet (make inference-image ECR_REPO={uri})"
    assert (outcome.action, outcome.reason) == ("deploying", f"creating the endpoint; {why}")
    assert served_model_image() == INFERENCE_IMAGE
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [why]
    # GET /train/{job} still says which server answers once the rollout settled.
    handle(endpoint_event())
    shown = deploy_records.deployment_of("textclf-a", get_settings())
    assert shown is not None and shown.status == "deployed"
    assert shown.reason is not None and shown.reason.endswith(f"; {why}")
    # An image pushed meanwhile serves from the next rollout on, and the note is gone.
    digest = push_image("late", repository=f"textclf-{repository}") if repository == "empty" else None
    finished_job("textclf-b", test_accuracy=0.91)
    handle(training_event("textclf-b"))
    finish_update(loop)
    settled = handle(endpoint_event())
    if digest is not None:
        assert served_model_image() == f"{uri}@{digest}"
        assert settled.reason.startswith("serving on") and "DLC" not in settled.reason


def test_inference_server_dlc_serves_the_dlc(loop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_SERVER", "dlc")
    get_settings.cache_clear()
    finished_job("textclf-a", test_accuracy=0.90)
    outcome = handle(training_event("textclf-a"))
    assert served_model_image() == INFERENCE_IMAGE
    assert outcome.reason == "creating the endpoint"


def test_an_ecr_error_falls_back_to_the_dlc_naming_it() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError
    from textclf_api.logic import inference_image
    from textclf_api.settings import Settings

    class Refusing:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def get_paginator(self, _: str) -> Any:
            raise self.exc

    settings = Settings.from_env({"INFERENCE_REPOSITORY_URI": REPOSITORY_URI})
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeImages")
    offline = EndpointConnectionError(endpoint_url="https://api.ecr.us-east-1.amazonaws.com")
    assert inference_image.served_image(settings, INFERENCE_IMAGE, Refusing(denied)) == (
        inference_image.ServedImage(
            INFERENCE_IMAGE, f"served by the HF DLC: could not list {REPOSITORY_URI} (AccessDeniedException)"
        )
    )
    fallen = inference_image.served_image(settings, INFERENCE_IMAGE, Refusing(offline))
    assert fallen.uri == INFERENCE_IMAGE and "EndpointConnectionError" in fallen.fallback
    unset = inference_image.served_image(Settings.from_env({}), INFERENCE_IMAGE, Refusing(denied))
    assert unset.uri == INFERENCE_IMAGE and "INFERENCE_REPOSITORY_URI" in unset.fallback
