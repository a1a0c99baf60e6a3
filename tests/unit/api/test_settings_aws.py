"""settings.py (environment) and aws.py (bounded clients, error mapping)."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from textclf_api import aws
from textclf_api.errors import (
    ConfigurationError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
)
from textclf_api.settings import Settings


def test_defaults_match_the_design() -> None:
    settings = Settings.from_env({})
    assert settings.dataset_pointer_key == "datasets/latest.json"
    assert settings.source_bundle_key == "code/sourcedir.tar.gz"
    assert settings.training_instance_type == "ml.g5.xlarge"
    assert settings.base_model == "distilbert-base-uncased"
    assert settings.training_job_prefix == "textclf"
    assert settings.training_max_wait_seconds == 2 * settings.training_max_runtime_seconds
    assert settings.endpoint_name is None


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"TRAINING_INSTANCE_TYPE": "ml.m5.large"}, "TRAINING_INSTANCE_TYPE"),
        ({"BASE_MODEL": "gpt2"}, "BASE_MODEL"),
        ({"TRAINING_JOB_PREFIX": "Upper"}, "TRAINING_JOB_PREFIX"),
        ({"TRAINING_JOB_PREFIX": "x" * 41}, "TRAINING_JOB_PREFIX"),
        ({"TRAINING_MAX_RUNTIME_SECONDS": "soon"}, "not an integer"),
        ({"TRAINING_MAX_RUNTIME_SECONDS": "3600", "TRAINING_MAX_WAIT_SECONDS": "60"}, "outside"),
        (
            {"ENDPOINT_MIN_INSTANCES": "3", "ENDPOINT_MAX_INSTANCES": "2"},
            "ENDPOINT_MAX_INSTANCES='2' is outside 3",
        ),
        ({"GATE_MAX_DROP": "lots"}, "GATE_MAX_DROP='lots' is not a number"),
        ({"GATE_MIN_ACCURACY": "85"}, "GATE_MIN_ACCURACY='85' is outside 0..1"),
        ({"ENDPOINT_TYPE": "Async"}, "ENDPOINT_TYPE='Async' is not one of RealTime, Serverless"),
    ],
)
def test_bad_environment_is_a_configuration_error(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as info:
        Settings.from_env(env)
    assert info.value.status == 503


def test_blank_is_unset_and_values_are_normalised() -> None:
    settings = Settings.from_env(
        {
            "BUCKET_NAME": "  ",
            "RETRY_AFTER_SECONDS": " 7 ",
            "DATASET_POINTER_KEY": "/d/latest.json",
            "CHECKPOINT_PREFIX": "/ck/",
            "ROLLBACK_ALARMS": " a, ,b ",
            "ENDPOINT_MIN_INSTANCES": "3",
            "TRAINING_MAX_RUNTIME_SECONDS": "100",
            "UNRELATED": "ignored",
        }
    )
    assert settings.bucket_name is None
    assert settings.retry_after_seconds == 7
    assert (settings.dataset_pointer_key, settings.checkpoint_prefix) == ("d/latest.json", "ck")
    assert settings.rollback_alarms == ("a", "b")
    # Defaults that follow another variable.
    assert settings.endpoint_max_instances == 3
    assert settings.training_max_wait_seconds == 200


def test_only_the_bad_variable_is_named() -> None:
    # TRAINING_MAX_WAIT_SECONDS's default depends on the bad variable; it is not blamed.
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"TRAINING_MAX_RUNTIME_SECONDS": "soon"})
    assert info.value.message == "environment variable TRAINING_MAX_RUNTIME_SECONDS='soon' is not an integer"


def test_require_names_the_missing_variable() -> None:
    with pytest.raises(ConfigurationError, match="BUCKET_NAME"):
        Settings.from_env({}).require("bucket_name")
    assert Settings.from_env({"BUCKET_NAME": " b "}).require("bucket_name") == "b"


def test_every_client_has_explicit_timeouts_and_bounded_retries() -> None:
    for client, budget in (
        (aws.sagemaker_runtime(), aws.RUNTIME_BUDGET),
        (aws.sagemaker(), aws.SAGEMAKER_BUDGET),
        (aws.s3(), aws.S3_BUDGET),
    ):
        config = client.meta.config
        assert config.connect_timeout == budget.connect_timeout
        assert config.read_timeout == budget.read_timeout
        assert config.retries == {"mode": "standard", "total_max_attempts": budget.max_attempts}


def test_worst_case_budgets_stay_well_inside_api_gateways_29_seconds() -> None:
    assert aws.Budget(1, 9, 2).worst_case_seconds() == 21
    assert aws.Budget(1, 2, 3).worst_case_seconds() == 3 * 3 + 1 + 2
    assert aws.RUNTIME_BUDGET.worst_case_seconds() < 29
    # POST /train: pointer + bundle from S3, then CreateTrainingJob.
    assert 2 * aws.S3_BUDGET.worst_case_seconds() + aws.SAGEMAKER_BUDGET.worst_case_seconds() < 29


def test_clients_honour_endpoint_url_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the local stack relies on: boto3 reads AWS_ENDPOINT_URL_<SERVICE> itself.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:8080")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5000")
    aws.reset_clients(session=True)
    try:
        assert aws.sagemaker_runtime().meta.endpoint_url == "http://127.0.0.1:8080"
        assert aws.s3().meta.endpoint_url == "http://127.0.0.1:5000"
        assert aws.sagemaker().meta.endpoint_url.startswith("https://api.sagemaker.")
    finally:
        monkeypatch.undo()
        aws.reset_clients(session=True)


def error(code: str, status: int = 400, message: str = "m") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ReadTimeoutError(endpoint_url="u"), UpstreamTimeoutError),
        (ConnectTimeoutError(endpoint_url="u"), UpstreamTimeoutError),
        (EndpointConnectionError(endpoint_url="u"), ServiceUnavailableError),
        (ConnectionClosedError(endpoint_url="u"), ServiceUnavailableError),
        (
            ResponseStreamingError(error="IncompleteRead(6 bytes read, 894 more expected)"),
            ServiceUnavailableError,
        ),
        (error("ThrottlingException"), ServiceUnavailableError),
        (error("SlowDown", 503), ServiceUnavailableError),
        (error("ProvisionedThroughputExceededException"), ServiceUnavailableError),
        (error("Whatever", 429), ServiceUnavailableError),
        (error("ServiceUnavailable", 503), ServiceUnavailableError),
        (error("AccessDeniedException", 403), UpstreamError),
        (error("InternalFailure", 500), UpstreamError),
        (RuntimeError("x"), UpstreamError),
    ],
)
def test_translate(exc: Exception, kind: type, monkeypatch: pytest.MonkeyPatch) -> None:
    result = aws.translate(exc, "thing", retry_after=7)
    assert type(result) is kind
    assert "thing" in result.message
    if kind is ServiceUnavailableError:
        assert result.headers() == {"Retry-After": "7"}
