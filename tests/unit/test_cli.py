"""CLI habits, through the real entry point: defaults in --help, AWS flags and stack outputs (moto),
--json, shell completion, -v after the command, one-line "run X first" errors."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from textclf import config
from textclf.aws_clients import STACK_STATE
from textclf.cli import build_parser, main

REGION = "us-east-1"
STACK = "textclf-test"
ROLE = "arn:aws:iam::123456789012:role/textclf-serving"
GROUP = "textclf-test-models"


def parsers(
    parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub-)command of the CLI with its words: (), ("eda",), ("models", "list"), ..."""
    parser = parser or build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


COMMANDS = [path for path, _ in parsers() if path]


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m textclf ARGS`` in a fresh process (the installed console script runs the same main)."""
    return subprocess.run(
        [sys.executable, "-m", "textclf", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


@pytest.fixture
def empty_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    artifacts = tmp_path / "fresh-artifacts"
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(artifacts))
    monkeypatch.chdir(tmp_path)
    return artifacts


# -- help -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_help_shows_every_default_and_no_path_of_this_machine(
    words: tuple[str, ...], empty_artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert str(empty_artifacts) not in text and str(Path.cwd()) not in text
    parser = dict(parsers())[words]
    formatter = parser._get_formatter()
    for action in parser._actions:
        switch = action.nargs == 0  # store_true and friends: off unless given
        if not action.option_strings or action.required or switch:
            continue
        shown = formatter._get_help_string(action) or ""
        assert "default" in shown, f"textclf {' '.join(words)} {action.option_strings[0]}: no default"
        if isinstance(action.default, Path | str) and "%(default)" in shown:
            assert not os.path.isabs(str(action.default)), action.option_strings


def test_top_level_help_explains_the_artifacts_folder() -> None:
    proc = cli("--help")
    assert proc.returncode == 0
    assert "TEXTCLF_ARTIFACTS" in proc.stdout and "<artifacts>" in proc.stdout
    assert "default: ./artifacts" in proc.stdout
    assert "completion" in proc.stdout


# -- -v anywhere -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["eda"], False),
        (["-v", "eda"], True),
        (["eda", "-v"], True),
        (["eda", "--verbose", "--sample", "3"], True),
        (["models", "list", "-v"], True),
        (["-v", "models", "list"], True),
    ],
)
def test_verbose_before_or_after_the_command(argv: list[str], verbose: bool) -> None:
    assert build_parser().parse_args(argv).verbose is verbose


def test_the_real_cli_takes_verbose_after_a_nested_option(empty_artifacts: Path) -> None:
    proc = cli("teardown", "--local", "-v", env={"TEXTCLF_ARTIFACTS": str(empty_artifacts)})
    assert proc.returncode == 2
    assert "unrecognized arguments" not in proc.stderr


# -- input missing: one line, exit 2 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "step"),
    [
        (["eda"], "textclf data"),
        (["train"], "textclf data"),
        (["evaluate"], "textclf data"),
        (["evaluate", "--no-baseline"], "textclf data"),
        (["leakage"], "textclf data"),
        (["bench-train"], "textclf data"),
        (["bench", "--quick"], "textclf data"),
        (["package"], "textclf train"),
        (["figures", "--out", "figures"], "textclf train"),
        (["explain", "Fed raises rates"], "textclf package"),
        (["predict", "--input", "in.txt", "--output", "-"], "textclf package"),
        (["serve-endpoint", "--port", "0"], "textclf package"),
        (["models", "list", "--local"], "make serve"),
        (["teardown", "--local"], "make serve"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_a_missing_input_names_the_step_that_makes_it(
    argv: list[str], step: str, empty_artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (empty_artifacts.parent / "in.txt").write_text("Fed raises rates\n", encoding="utf-8")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"textclf {argv[0]}: error: ")
    assert f"`{step}`" in err or f"{step} " in err, err


# -- shell completion -------------------------------------------------------------------------------


def test_bash_completion_names_every_command_and_completes() -> None:
    proc = cli("completion", "bash")
    assert proc.returncode == 0, proc.stderr
    script = proc.stdout
    check = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, check=False)
    assert check.returncode == 0, check.stderr
    top = {words[0] for words in COMMANDS}
    assert "completion" in top and "models" in top
    for name in top:
        assert name in script, name
    # Sourced, it completes a command, a nested command's flag and a choice.
    probe = (
        "source /dev/stdin; complete -p textclf >/dev/null || exit 3\n"
        "for line in 'textclf mod' 'textclf models list --js' 'textclf completion z'; do\n"
        '  read -ra COMP_WORDS <<< "$line"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n'
        '  COMP_LINE="$line"; COMP_POINT=${#line}; COMPREPLY=(); _shtab_textclf; echo "${COMPREPLY[*]}"\n'
        "done\n"
    )
    run = subprocess.run(["bash", "-c", probe], input=script, text=True, capture_output=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:3] == ["models", "--json", "zsh"]


def test_zsh_completion_script(capsys: pytest.CaptureFixture[str]) -> None:
    import shtab

    from textclf.commands.completion import SHELLS

    assert set(SHELLS) <= set(shtab.SUPPORTED_SHELLS)
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef textclf")
    assert "upload-source" in script and "--stack-name" in script


# -- AWS: --profile, --region, --stack-name (moto) -----------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # A profile of its own, so --profile is tested against a real config file.
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
    }.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "aws-config").write_text(f"[profile textclf-ci]\nregion = {REGION}\n", encoding="utf-8")
    (tmp_path / "aws-credentials").write_text(
        "[textclf-ci]\naws_access_key_id = testing\naws_secret_access_key = testing\n", encoding="utf-8"
    )
    with mock_aws():
        yield


def create_stack(endpoint_name: str = "news") -> str:
    """A small stack with the outputs and parameter the CLI reads; returns its bucket's name."""
    template = {
        "Parameters": {"EndpointName": {"Type": "String", "Default": "textclf"}},
        "Resources": {"ArtifactBucket": {"Type": "AWS::S3::Bucket"}},
        "Outputs": {
            "BucketName": {"Value": {"Ref": "ArtifactBucket"}},
            "ModelPackageGroup": {"Value": GROUP},
            "SageMakerServingRoleArn": {"Value": ROLE},
            "ApiUrl": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/prod"},
        },
    }
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "EndpointName", "ParameterValue": endpoint_name}],
    )
    outputs = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    return next(o["OutputValue"] for o in outputs if o["OutputKey"] == "BucketName")


def register_versions(accuracies: list[float]) -> None:
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    for i, accuracy in enumerate(accuracies, 1):
        sm.create_model_package(
            ModelPackageGroupName=GROUP,
            InferenceSpecification={
                "Containers": [{"Image": "image", "ModelDataUrl": f"s3://b/models/{i}/model.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="Approved",
            CustomerMetadataProperties={"test_accuracy": f"{accuracy:.6f}", "training_job": f"job-{i}"},
        )


def test_stack_outputs_drive_models_list_json(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    create_stack()
    register_versions([0.91, 0.93])
    assert main(["models", "list", "--stack-name", STACK, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)  # the whole of stdout is one JSON document
    assert (document["group"], document["endpoint"], document["serving_version"]) == (GROUP, "news", None)
    assert [v["version"] for v in document["versions"]] == [1, 2]
    assert [v["test_accuracy"] for v in document["versions"]] == [0.91, 0.93]
    assert document["versions"][0]["training_job"] == "job-1"
    assert document["versions"][0]["status"] == "Approved" and document["versions"][0]["created"]
    # The same through a named profile and an explicit region; the table says the same.
    assert main(["models", "list", "--stack-name", STACK, "--profile", "textclf-ci", "--region", REGION]) == 0
    table = capsys.readouterr().out
    assert GROUP in table and "0.9300" in table and "job-2" in table


def test_teardown_json_reads_the_endpoint_name_from_the_stack(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_stack(endpoint_name="news-prod")
    assert main(["teardown", "--stack-name", STACK, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"endpoint": "news-prod", "existed": False, "done": []}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["models", "list", "--stack-name", "nope"], "--stack-name nope: no such stack in us-east-1"),
        (["teardown", "--profile", "missing"], "--profile missing: no such profile"),
        (["data", "--stack-name", "nope"], "--stack-name nope: no such stack"),
        (["upload-source"], "pass --s3-uri, --stack-name (upload to the stack's bucket) or --out"),
        (["teardown", "--stack-name", STACK, "--local"], "not allowed with argument"),
    ],
)
def test_aws_flag_mistakes_are_one_line(
    argv: list[str], message: str, aws: None, empty_artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_upload_source_to_the_stacks_bucket(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = create_stack()
    assert main(["upload-source", "--stack-name", STACK]) == 0
    assert f"s3://{bucket}/code/sourcedir.tar.gz" in capsys.readouterr().out
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key="code/sourcedir.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(body["Body"].read())) as tar:
        assert "train.py" in tar.getnames()


@pytest.mark.heavy  # packages a tiny model
def test_deploy_takes_role_bucket_and_endpoint_from_the_stack(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.tiny_model import make_tiny_model_dir
    from textclf.packaging import build_package

    monkeypatch.delenv("SAGEMAKER_ROLE_ARN", raising=False)
    archive = build_package(
        make_tiny_model_dir(tmp_path / "model"),
        tmp_path / "model.tar.gz",
        runtime="torch",
        echo=lambda _: None,
    ).out
    bucket = create_stack(endpoint_name="news")
    argv = ["deploy", "--model-data", str(archive), "--stack-name", STACK, "--poll", "0", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["endpoint_name"], result["action"], result["status"]) == ("news", "created", "InService")
    sm = boto3.client("sagemaker", region_name=REGION)
    container = sm.describe_model(ModelName=result["model_name"])
    assert container["ExecutionRoleArn"] == ROLE
    key = container["PrimaryContainer"]["ModelDataUrl"].removeprefix(f"s3://{bucket}/")
    assert key.startswith("models/") and key.endswith("/model.tar.gz")


# -- contracts with template.yaml ---------------------------------------------------------------------


def test_the_names_the_cli_reads_are_the_templates() -> None:
    from textclf.commands.data import DATASETS_PREFIX
    from textclf.commands.deploy import MODELS_PREFIX
    from textclf.commands.upload_source import SOURCE_PREFIX
    from textclf.data.s3 import POINTER
    from textclf.local.template import load_template

    template: dict[str, Any] = load_template(config.REPO_ROOT / "template.yaml")
    for kind, name in STACK_STATE.values():
        section = template["Outputs"] if kind == "output" else template["Parameters"]
        assert name in section, f"template.yaml has no {kind} {name}"
    text = (config.REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
    assert f"DATASET_POINTER_KEY: {DATASETS_PREFIX}/{POINTER}" in text
    assert f"SOURCE_BUNDLE_KEY: {SOURCE_PREFIX}/sourcedir.tar.gz" in text
    assert "${ArtifactBucket.Arn}/" + MODELS_PREFIX + "/*" in text


def test_invoke_runs_a_function_with_its_deployed_environment(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from textclf_api.logic import health
    from textclf_api.settings import get_settings

    from textclf.local import template as tpl
    from textclf.local.stack import LOCAL_BUCKET, local_resources

    # The stack's HealthFunction runs with the template's variables, its endpoint renamed.
    template = tpl.load_template(config.REPO_ROOT / "template.yaml")
    variables = tpl.function_environment(
        template, "HealthFunction", local_resources(REGION, LOCAL_BUCKET, {})
    )
    stack = {
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
            },
            "HealthFunction": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Handler": "app.handler",
                    "Runtime": "python3.12",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": "def handler(event, context): pass"},
                    "Environment": {"Variables": {**variables, "ENDPOINT_NAME": "deployed-name"}},
                },
            },
        }
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=STACK, TemplateBody=json.dumps(stack)
    )
    saved = dict(os.environ)  # invoke sets the function's variables in this process, as Lambda would
    get_settings.cache_clear()
    health.reset_cache()
    try:
        event = config.REPO_ROOT / "events" / "health.json"
        assert main(["invoke", "HealthFunction", "--event", str(event), "--stack-name", STACK]) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        health.reset_cache()
    out = capsys.readouterr().out
    response = json.loads(out[out.index('{\n  "statusCode"') :])
    assert json.loads(response["body"])["endpoint"]["name"] == "deployed-name"
    # A function the stack lacks: one line naming it.
    event = str(config.REPO_ROOT / "events" / "health.json")
    assert main(["invoke", "PredictFunction", "--event", event, "--stack-name", STACK]) == 2
    assert "cannot read PredictFunction's configuration" in capsys.readouterr().err
