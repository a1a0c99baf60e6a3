"""``textclf deploy``: the deploy function's rollout (logic/deployment.py) driven from the CLI.

moto for S3 and for what SageMaker calls moto implements; botocore's Stubber for the update and
failure paths (moto has no UpdateEndpoint). Requests are read as sent: moto drops
EnableNetworkIsolation.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws
from textclf_api.logic import artifacts, deployment

from textclf import deploy
from textclf.cli import main
from textclf.errors import UserError

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/textclf-sagemaker"
BUCKET = "artefacts"
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/textclf"
CPU_IMAGE = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/huggingface-pytorch-inference:{deploy.CPU_TAG}"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        yield


def test_image_uri_table() -> None:
    assert deploy.default_image_uri(REGION, "ml.m5.large") == CPU_IMAGE
    assert deploy.default_image_uri("eu-west-1", "ml.c6i.xlarge").startswith(
        "763104351884.dkr.ecr.eu-west-1."
    )
    gpu = deploy.default_image_uri("af-south-1", "ml.g5.xlarge")
    assert (
        gpu == f"626614931356.dkr.ecr.af-south-1.amazonaws.com/huggingface-pytorch-inference:{deploy.GPU_TAG}"
    )
    assert deploy.default_image_uri("cn-north-1", "ml.m5.large").startswith(
        "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/"
    )
    with pytest.raises(UserError, match="no Hugging Face inference image known for region 'xx-east-9'"):
        deploy.default_image_uri("xx-east-9", "ml.m5.large")
    with pytest.raises(UserError, match="Neuron"):
        deploy.is_gpu_instance("ml.inf2.xlarge")
    with pytest.raises(UserError, match="not of the form"):
        deploy.is_gpu_instance("m5.large")
    assert deploy.is_gpu_instance("ml.p4d.24xlarge") and not deploy.is_gpu_instance("ml.c7i.large")


def test_unique_names_fit_sagemaker_limits() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = deploy.unique_name("textclf", now)
    assert name.startswith("textclf-20260102-030405-") and len(name) == len("textclf-20260102-030405-") + 4
    assert deploy.unique_name("textclf", now) != name
    long = deploy.unique_name("e" * 80, now)
    assert len(long) == 63
    deploy.check_endpoint_name(long)
    with pytest.raises(UserError, match="endpoint name 'bad_name' is invalid"):
        deploy.check_endpoint_name("bad_name")


def admitted(body: bytes = b"archive bytes", offline: bool = True) -> artifacts.Artifact:
    """``body`` stored as an admitted archive (content-addressed, with S3's SHA-256) in moto."""
    sha256 = hashlib.sha256(body).hexdigest()
    key = artifacts.admitted_key(sha256)
    s3 = boto3.client("s3", region_name=REGION)
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, ChecksumAlgorithm="SHA256")
    return artifacts.Artifact(uri=f"s3://{BUCKET}/{key}", sha256=sha256, offline=offline)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """Every SageMaker request the code under test sends, by operation, as sent."""
    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    original = boto3.session.Session.client

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls[model.name].append(json.loads(json.dumps(params, default=str)))

    def client(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        made = original(self, service, *args, **kwargs)
        if service == "sagemaker":
            made.meta.events.register("before-parameter-build.sagemaker", record)
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)
    return calls


def test_create_with_moto(aws_env: None, sent: dict[str, list[dict[str, Any]]]) -> None:
    sm = boto3.client("sagemaker", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    artifact = admitted()
    lines: list[str] = []
    result = deploy.deploy(
        sm,
        s3,
        artifact=artifact,
        role_arn=ROLE,
        image_uri=CPU_IMAGE,
        environment={"TEXTCLF_NUM_THREADS": "2"},
        poll_s=0,
        echo=lines.append,
    )
    assert result.action == "created" and result.status == "InService"
    model = sm.describe_model(ModelName=result.model_name)
    assert model["PrimaryContainer"]["Image"] == CPU_IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == artifact.uri
    # The deploy function's container environment, plus the user's.
    assert model["PrimaryContainer"]["Environment"] == deployment.container_environment("RealTime") | {
        "TEXTCLF_NUM_THREADS": "2"
    }
    assert model["ExecutionRoleArn"] == ROLE
    # The archive installs nothing at start: isolated from the network, as the deploy function does.
    assert sent["CreateModel"][-1]["EnableNetworkIsolation"] is True
    config = sm.describe_endpoint_config(EndpointConfigName=result.endpoint_config_name)
    variant = config["ProductionVariants"][0]
    assert (variant["VariantName"], variant["ModelName"]) == ("AllTraffic", result.model_name)
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)
    endpoint = sm.describe_endpoint(EndpointName="textclf")
    assert endpoint["EndpointConfigName"] == result.endpoint_config_name
    assert any(line.startswith("endpoint textclf: InService") for line in lines)
    assert any("sha256 verified, network isolation on" in line for line in lines)


def test_an_archive_that_needs_the_network_is_not_isolated(
    aws_env: None, sent: dict[str, list[dict[str, Any]]]
) -> None:
    sm = boto3.client("sagemaker", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    artifact = admitted(offline=False)
    deploy.deploy(sm, s3, artifact=artifact, role_arn=ROLE, image_uri=CPU_IMAGE, poll_s=0, echo=print)
    assert sent["CreateModel"][-1]["EnableNetworkIsolation"] is False


def test_bytes_that_are_not_the_admitted_ones_are_refused_before_any_sagemaker_call(aws_env: None) -> None:
    sm = boto3.client("sagemaker", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    artifact = admitted(b"the checked archive")
    # Someone rewrites the admitted object after it was checked: its SHA-256 no longer matches.
    key = artifact.uri.removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"other bytes", ChecksumAlgorithm="SHA256")
    with pytest.raises(
        UserError, match=r"refused: .* no longer has the sha256 recorded when it was admitted"
    ):
        deploy.deploy(sm, s3, artifact=artifact, role_arn=ROLE, image_uri=CPU_IMAGE, echo=print)
    # Bytes without S3's own SHA-256 at all (uploaded without a checksum) are not admitted either.
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"the checked archive")
    with pytest.raises(UserError, match="no longer has the sha256"):
        deploy.deploy(sm, s3, artifact=artifact, role_arn=ROLE, image_uri=CPU_IMAGE, echo=print)
    # An archive outside the admitted, content-addressed location is refused whatever its bytes.
    s3.put_object(Bucket=BUCKET, Key="elsewhere/model.tar.gz", Body=b"x", ChecksumAlgorithm="SHA256")
    outside = artifacts.Artifact(
        uri=f"s3://{BUCKET}/elsewhere/model.tar.gz", sha256=hashlib.sha256(b"x").hexdigest(), offline=True
    )
    with pytest.raises(UserError, match="points outside models/"):
        deploy.deploy(sm, s3, artifact=outside, role_arn=ROLE, image_uri=CPU_IMAGE, echo=print)
    assert sm.list_models()["Models"] == [] and sm.list_endpoints()["Endpoints"] == []


def test_cli_admits_a_local_archive_then_deploys(
    aws_env: None, sent: dict[str, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.tiny_model import make_tiny_model_dir
    from textclf.packaging import build_package

    model_dir = make_tiny_model_dir(tmp_path / "model")
    archive = build_package(model_dir, tmp_path / "model.tar.gz", runtime="torch", echo=lambda _: None).out
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="artefacts")
    argv = ["deploy", "--model-data", str(archive), "--role-arn", ROLE, "--poll", "0"]
    assert main([*argv, "--upload-to", "s3://artefacts/hand"]) == 0
    out = capsys.readouterr().out
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="artefacts")["Contents"]]
    # Content-addressed the way the deploy function admits archives, under the --upload-to prefix.
    assert keys == [artifacts.admitted_key(sha256, "hand")]
    assert "endpoint textclf created" in out
    sm = boto3.client("sagemaker", region_name=REGION)
    model_name = sm.list_models()["Models"][0]["ModelName"]
    assert (
        sm.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"]
        == f"s3://artefacts/{keys[0]}"
    )
    # textclf package vendors what it needs: the model runs without the network.
    assert sent["CreateModel"][-1]["EnableNetworkIsolation"] is True
    # The same archive again: not uploaded twice (content-addressed key).
    assert main([*argv, "--upload-to", "s3://artefacts/hand", "--endpoint-name", "second"]) == 0
    assert "already uploaded (same sha256)" in capsys.readouterr().out
    # Same key, other bytes (same size): uploaded again, never trusted by size.
    data = archive.read_bytes()
    s3.put_object(Bucket="artefacts", Key=keys[0], Body=data[:-1] + bytes([data[-1] ^ 1]))
    assert main([*argv, "--upload-to", "s3://artefacts/hand", "--endpoint-name", "third"]) == 0
    assert "exists with other or unverified bytes" in capsys.readouterr().out
    assert s3.get_object(Bucket="artefacts", Key=keys[0])["Body"].read() == data
    # Without --upload-to a local archive cannot be deployed.
    assert main(argv) == 2
    assert "needs --upload-to" in capsys.readouterr().err

    # A training job's output on S3: checked, then admitted into models/ of its bucket like the
    # deploy function does, and the Model serves the admitted copy, never the writable original.
    s3.upload_file(str(archive), "artefacts", "training-output/job/output/model.tar.gz")
    source = "s3://artefacts/training-output/job/output/model.tar.gz"
    assert (
        main(
            ["deploy", "--model-data", source, "--role-arn", ROLE, "--poll", "0", "--endpoint-name", "fourth"]
        )
        == 0
    )
    admitted_uri = f"s3://artefacts/{artifacts.admitted_key(sha256)}"
    assert f"admitted {source} as {admitted_uri}" in capsys.readouterr().out
    assert sent["CreateModel"][-1]["PrimaryContainer"]["ModelDataUrl"] == admitted_uri
    assert sent["CreateModel"][-1]["EnableNetworkIsolation"] is True
    # The admitted copy itself (a version's model data) deploys as it is.
    copies = len(s3.list_objects_v2(Bucket="artefacts")["Contents"])
    assert (
        main(
            [
                "deploy",
                "--model-data",
                admitted_uri,
                "--role-arn",
                ROLE,
                "--no-wait",
                "--endpoint-name",
                "fifth",
            ]
        )
        == 0
    )
    assert len(s3.list_objects_v2(Bucket="artefacts")["Contents"]) == copies
    assert sent["CreateModel"][-1]["PrimaryContainer"]["ModelDataUrl"] == admitted_uri


def test_archives_that_cannot_serve_are_refused_before_any_sagemaker_call(
    aws_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.tiny_model import make_tiny_model_dir

    # What a training job wrote before it packaged its own archive: model files, no code/.
    model_dir = make_tiny_model_dir(tmp_path / "model")
    bare = tmp_path / "bare.tar.gz"
    with tarfile.open(bare, "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="artefacts")
    s3.upload_file(str(bare), "artefacts", "training-output/job/output/model.tar.gz")
    uri = "s3://artefacts/training-output/job/output/model.tar.gz"
    assert main(["deploy", "--model-data", uri, "--role-arn", ROLE, "--poll", "0"]) == 2
    err = capsys.readouterr().err
    assert "cannot serve: code/inference.py is missing; code/lexical.py is missing" in err
    assert boto3.client("sagemaker", region_name=REGION).list_models()["Models"] == []
    # Not an archive at all, and a local one: one clear line each.
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    assert (
        main(["deploy", "--model-data", str(junk), "--role-arn", ROLE, "--upload-to", "s3://artefacts/m"])
        == 2
    )
    assert "is not a readable model.tar.gz" in capsys.readouterr().err
    assert main(["deploy", "--model-data", "s3://artefacts/missing.tar.gz", "--role-arn", ROLE]) == 2
    assert "cannot read s3://artefacts/missing.tar.gz" in capsys.readouterr().err


def test_check_archive_names_every_missing_piece(tmp_path: Path) -> None:
    from textclf.packaging.build import check_archive

    meta = tmp_path / "textclf_meta.json"
    meta.write_text('{"runtime": "onnx-int8", "max_length": 32}')
    head = tmp_path / "lexical_head.npz"
    head.write_bytes(b"x")
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(meta, arcname="textclf_meta.json")
        tar.add(head, arcname="lexical_head.npz")
    with pytest.raises(UserError) as err:
        check_archive(archive)
    message = str(err.value)
    for piece in ("config.json is missing", "model.onnx is missing", "code/requirements.txt is missing"):
        assert piece in message
    assert "no tokenizer" in message and "only one of lexical_vocab.txt and lexical_head.npz" in message


def _stubbed() -> tuple[Any, Stubber]:
    sm = boto3.client(
        "sagemaker",
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        aws_session_token="x",
    )
    return sm, Stubber(sm)


def _endpoint(status: str, config: str, reason: str | None = None) -> dict[str, Any]:
    desc: dict[str, Any] = {
        "EndpointName": "textclf",
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/textclf",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        "LastModifiedTime": datetime(2026, 1, 1, tzinfo=UTC),
    }
    if reason:
        desc["FailureReason"] = reason
    return desc


def _expect_creates(stub: Stubber, artifact: artifacts.Artifact) -> None:
    stub.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:{REGION}:123456789012:model/m"},
        {
            "ModelName": ANY,
            "PrimaryContainer": {
                "Image": CPU_IMAGE,
                "ModelDataUrl": artifact.uri,
                "Environment": deployment.container_environment("RealTime"),
            },
            "ExecutionRoleArn": ROLE,
            "EnableNetworkIsolation": True,
        },
    )
    stub.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint-config/c"},
        {"EndpointConfigName": ANY, "ProductionVariants": ANY},
    )


def _expect_update(stub: Stubber, name: str) -> None:
    """The deploy function's UpdateEndpoint for a hand deploy: blue/green, all at once, no bake time
    (no alarms to watch), the flags' fleet rather than the current one."""
    stub.add_response(
        "update_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {
            "EndpointName": "textclf",
            "EndpointConfigName": name,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                    "TerminationWaitInSeconds": 0,
                    "MaximumExecutionTimeoutInSeconds": 3600,
                }
            },
            "RetainAllVariantProperties": False,
        },
    )


def _run(sm: Any, lines: list[str], artifact: artifacts.Artifact) -> deploy.DeployResult:
    return deploy.deploy(
        sm,
        boto3.client("s3", region_name=REGION),
        artifact=artifact,
        role_arn=ROLE,
        image_uri=CPU_IMAGE,
        poll_s=0,
        echo=lines.append,
        sleep=lambda _: None,
    )


class _Names:
    """Fixes the generated name so stubbed DescribeEndpoint answers can refer to it."""

    name = "textclf-20260101-000000-abcd"


@pytest.fixture
def fixed_name(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(deploy, "unique_name", lambda prefix, now=None: _Names.name)
    return _Names.name


def test_update_existing_endpoint_waits_for_new_config(fixed_name: str) -> None:
    artifact = admitted()
    sm, stub = _stubbed()
    stub.add_response("describe_endpoint", _endpoint("InService", "old-config"), {"EndpointName": "textclf"})
    _expect_creates(stub, artifact)
    _expect_update(stub, fixed_name)
    stub.add_response("describe_endpoint", _endpoint("Updating", "old-config"), {"EndpointName": "textclf"})
    stub.add_response("describe_endpoint", _endpoint("Updating", "old-config"), {"EndpointName": "textclf"})
    stub.add_response("describe_endpoint", _endpoint("InService", fixed_name), {"EndpointName": "textclf"})
    lines: list[str] = []
    with stub:
        result = _run(sm, lines, artifact)
    stub.assert_no_pending_responses()
    assert (result.action, result.status, result.endpoint_config_name) == ("updated", "InService", fixed_name)
    assert [line.split(" (")[0] for line in lines if line.startswith("endpoint ")] == [
        "endpoint textclf: Updating",
        "endpoint textclf: InService",
    ]
    assert "UpdateEndpoint textclf (was old-config)" in lines


def test_rolled_back_update_is_reported_with_its_reason(fixed_name: str) -> None:
    artifact = admitted()
    sm, stub = _stubbed()
    stub.add_response("describe_endpoint", _endpoint("InService", "old-config"), {"EndpointName": "textclf"})
    _expect_creates(stub, artifact)
    _expect_update(stub, fixed_name)
    stub.add_response("describe_endpoint", _endpoint("Updating", "old-config"), {"EndpointName": "textclf"})
    stub.add_response(
        "describe_endpoint",
        _endpoint("InService", "old-config", "The primary container did not pass the ping health check"),
        {"EndpointName": "textclf"},
    )
    with (
        stub,
        pytest.raises(
            UserError,
            match=rf"rollout of {fixed_name} ended; the endpoint serves old-config: The primary container",
        ),
    ):
        _run(sm, [], artifact)


def test_failed_create_reports_failure_reason(fixed_name: str) -> None:
    artifact = admitted()
    sm, stub = _stubbed()
    stub.add_client_error(
        "describe_endpoint",
        "ValidationException",
        'Could not find endpoint "textclf".',
        expected_params={"EndpointName": "textclf"},
    )
    _expect_creates(stub, artifact)
    stub.add_response(
        "create_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {"EndpointName": "textclf", "EndpointConfigName": fixed_name},
    )
    stub.add_response("describe_endpoint", _endpoint("Creating", fixed_name), {"EndpointName": "textclf"})
    stub.add_response(
        "describe_endpoint",
        _endpoint("Failed", fixed_name, "pip install failed"),
        {"EndpointName": "textclf"},
    )
    with (
        stub,
        pytest.raises(
            UserError,
            match=r"endpoint textclf: the endpoint failed: pip install failed "
            r".*/aws/sagemaker/Endpoints/textclf",
        ),
    ):
        _run(sm, [], artifact)


def test_timeout(fixed_name: str) -> None:
    artifact = admitted()
    sm, stub = _stubbed()
    stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "textclf".')
    _expect_creates(stub, artifact)
    stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN})
    for _ in range(3):
        stub.add_response("describe_endpoint", _endpoint("Creating", fixed_name))
    ticks = iter(range(0, 10_000, 100))
    with stub, pytest.raises(UserError, match="still Creating after"):
        deploy.deploy(
            sm,
            boto3.client("s3", region_name=REGION),
            artifact=artifact,
            role_arn=ROLE,
            image_uri=CPU_IMAGE,
            timeout_s=150,
            poll_s=1,
            echo=lambda _: None,
            sleep=lambda _: None,
            clock=lambda: float(next(ticks)),
        )


def test_the_busy_states_are_the_deploy_functions() -> None:
    # One set for both paths: transitional states only. UpdateRollbackFailed is not one -- it never
    # ends by itself, and an update is what repairs it.
    assert {
        "Creating",
        "Updating",
        "SystemUpdating",
        "RollingBack",
        "Deleting",
    } == deployment.BUSY_ENDPOINT_STATES
    assert not any(isinstance(value, (set, frozenset, tuple)) for value in vars(deploy).values())


@pytest.mark.parametrize("busy", sorted(deployment.BUSY_ENDPOINT_STATES))
def test_a_busy_endpoint_is_refused_and_nothing_is_created(fixed_name: str, busy: str) -> None:
    sm, stub = _stubbed()
    stub.add_response("describe_endpoint", _endpoint(busy, "old"))
    with stub, pytest.raises(UserError, match=f"is {busy}; wait until it is InService"):
        _run(sm, [], admitted())
    stub.assert_no_pending_responses()  # nothing was created


def test_a_failed_endpoint_is_refused_not_replaced(fixed_name: str) -> None:
    sm, stub = _stubbed()
    stub.add_response("describe_endpoint", _endpoint("Failed", "old", "boom"))
    with (
        stub,
        pytest.raises(UserError, match=r"is Failed \(boom\); a failed endpoint cannot be updated: delete it"),
    ):
        _run(sm, [], admitted())
    stub.assert_no_pending_responses()  # nothing was created or deleted


def test_aws_errors_become_one_line_user_errors(fixed_name: str) -> None:
    sm, stub = _stubbed()
    stub.add_client_error("describe_endpoint", "ValidationException", 'Could not find endpoint "textclf".')
    stub.add_client_error("create_model", "AccessDeniedException", "not authorized to perform iam:PassRole")
    with stub, pytest.raises(UserError, match="CreateModel failed: AccessDeniedException: not authorized"):
        _run(sm, [], admitted())
