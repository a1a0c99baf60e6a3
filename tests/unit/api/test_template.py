"""template.yaml: what it promises (checked by reading it) and that the AWS tools accept it.

The tool checks run the binaries of the tools virtualenv (.venv-tools: cfn-lint and aws-sam-cli pin
versions that conflict with the project's); `make test` creates it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from textclf_api import aws
from textclf_api.schemas import BASE_MODELS, GPU_INSTANCE_TYPES, MAX_TRAINING_INSTANCE_COUNT, GpuInstanceType

from tests.helpers.prerequisites import missing_prerequisite
from textclf.lambda_size import lambda_environment, measure, read_build, runtime_site, time_import

from .conftest import REPO

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

TEMPLATE = REPO / "template.yaml"
TOOLS = REPO / ".venv-tools" / "bin"
API_GATEWAY_TIMEOUT = 29


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as their long-form dicts."""


def _construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    return loaded


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in function["Properties"]["Policies"] for s in policy["Statement"]]


def actions(function: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for statement in statements(function):
        value = statement["Action"]
        found |= {value} if isinstance(value, str) else set(value)
    return found


def test_functions_runtime_handlers_and_tracing(template: dict[str, Any]) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.12"
    assert globals_["Tracing"] == "Active"
    assert globals_["CodeUri"] == "functions/"  # one code tree for all functions: nothing duplicated
    env = globals_["Environment"]["Variables"]
    assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(env)
    functions = resources(template, "AWS::Serverless::Function")
    handlers = {f["Properties"]["Handler"] for f in functions.values()}
    assert handlers == {
        "textclf_api.handlers.predict.lambda_handler",
        "textclf_api.handlers.health.lambda_handler",
        "textclf_api.handlers.training.lambda_handler",
        "textclf_api.handlers.transform.lambda_handler",
        "textclf_api.handlers.deploy.lambda_handler",
        "textclf_api.handlers.feedback.lambda_handler",
        "textclf_api.handlers.retrain.lambda_handler",
        "textclf_api.handlers.monitor.lambda_handler",
    }
    for function in functions.values():
        assert "CodeUri" not in function["Properties"] and "Runtime" not in function["Properties"]


def test_timeouts_cover_the_client_budgets_and_stay_below_api_gateway(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Serverless::Function")
    timeout = {name: f["Properties"]["Timeout"] for name, f in functions.items()}
    # The deploy and retrain functions are invoked by EventBridge, not behind API Gateway; the
    # monitor's long runs are its schedule's, and its one route (GET /monitor) reads one object.
    behind_the_api = {
        name: t for name, t in timeout.items() if name not in (*EVENT_FUNCTIONS, "MonitorFunction")
    }
    assert all(t < API_GATEWAY_TIMEOUT for t in behind_the_api.values())
    assert timeout["MonitorFunction"] > API_GATEWAY_TIMEOUT
    assert timeout["PredictFunction"] > aws.RUNTIME_BUDGET.worst_case_seconds()
    assert timeout["HealthFunction"] > aws.SAGEMAKER_BUDGET.worst_case_seconds()
    # POST /train: pointer + source bundle (S3), the running-job count, CreateTrainingJob, and the
    # idempotency record's put and update (DynamoDB).
    train_calls = (
        2 * aws.S3_BUDGET.worst_case_seconds()
        + aws.QUICK_BUDGET.worst_case_seconds()
        + aws.SAGEMAKER_BUDGET.worst_case_seconds()
        + 2 * aws.DYNAMODB_BUDGET.worst_case_seconds()
    )
    assert timeout["TrainingFunction"] > train_calls
    # POST /batch: ListObjectsV2, DescribeEndpoint + DescribeEndpointConfig (quick), CreateTransformJob.
    batch_calls = (
        aws.S3_BUDGET.worst_case_seconds()
        + 2 * aws.QUICK_BUDGET.worst_case_seconds()
        + aws.SAGEMAKER_BUDGET.worst_case_seconds()
    )
    assert timeout["BatchFunction"] > batch_calls
    # POST /feedback: the served label set (S3, cached), the daily count (DynamoDB), the one
    # PutObject of the labels, and the count given back when it fails.
    assert (
        timeout["FeedbackFunction"]
        > 2 * aws.S3_BUDGET.worst_case_seconds() + 2 * aws.DYNAMODB_BUDGET.worst_case_seconds()
    )
    # GET /train/{job}: DescribeTrainingJob and the deployment record.
    assert timeout["TrainingFunction"] > aws.SAGEMAKER_BUDGET.worst_case_seconds() + 3
    # A training job's event, the longest path of the deploy function (logic/deployment.py):
    # 12 SageMaker calls (describe job; champion: describe endpoint, list + describe package;
    # register + describe; roll out: describe endpoint, create model, config, update or delete +
    # create) and ECR's DescribeImages (the served image) on the same budget, 3 record writes,
    # the archive's read and copy, the admitted copy's HEAD, and the transfer itself: a 1 GB
    # archive at 20 MB/s.
    deploy_calls = (
        13 * aws.SAGEMAKER_BUDGET.worst_case_seconds()
        + 3 * aws.DYNAMODB_BUDGET.worst_case_seconds()
        + 2 * aws.ARTIFACT_BUDGET.worst_case_seconds()
        + aws.S3_BUDGET.worst_case_seconds()
        + 1000 / 20
    )
    assert timeout["DeployFunction"] > deploy_calls


#: Functions EventBridge invokes (no API route).
EVENT_FUNCTIONS = ("DeployFunction", "RetrainFunction")


def test_routes_and_iam_auth(template: dict[str, Any]) -> None:
    routes = {}
    for name, function in resources(template, "AWS::Serverless::Function").items():
        for event in function["Properties"]["Events"].values():
            if name in EVENT_FUNCTIONS:
                assert event["Type"] == "EventBridgeRule"
                continue
            if name == "MonitorFunction" and event["Type"] == "Schedule":
                continue
            assert event["Type"] == "Api"
            props = event["Properties"]
            assert props["RestApiId"] == {"Ref": "Api"}
            routes[(props["Method"].upper(), props["Path"])] = name
    assert routes == {
        ("POST", "/predict"): "PredictFunction",
        ("POST", "/explain"): "PredictFunction",
        ("GET", "/health"): "HealthFunction",
        ("GET", "/"): "HealthFunction",
        ("POST", "/train"): "TrainingFunction",
        ("GET", "/train/{job_name}"): "TrainingFunction",
        ("POST", "/batch"): "BatchFunction",
        ("GET", "/batch/{job_name}"): "BatchFunction",
        ("POST", "/feedback"): "FeedbackFunction",
        ("GET", "/monitor"): "MonitorFunction",
    }


@pytest.mark.parametrize(
    ("predict_auth", "expected"),
    [
        # API_KEY (the default): an x-api-key of the usage plan; AWS_IAM: SigV4; NONE: open.
        (None, (None, True)),
        ("API_KEY", (None, True)),
        ("AWS_IAM", ("AWS_IAM", False)),
        ("NONE", (None, False)),
    ],
)
def test_predict_auth_follows_the_parameter_and_the_rest_stays_fixed(
    template: dict[str, Any], predict_auth: str | None, expected: tuple[str | None, bool]
) -> None:
    from textclf.local import template as tpl

    overrides = {"PredictAuth": predict_auth} if predict_auth else {}
    routes = {(r.method, r.path): (r.auth, r.api_key_required) for r in tpl.routes(template, overrides)}
    assert routes == {
        ("POST", "/predict"): expected,
        ("POST", "/explain"): expected,  # same auth as /predict
        ("GET", "/health"): (None, False),  # public: load balancers and monitors call it
        ("GET", "/"): (None, False),  # the playground page: static; its calls carry the key
        ("POST", "/train"): ("AWS_IAM", False),
        ("GET", "/train/{job_name}"): ("AWS_IAM", False),
        ("POST", "/batch"): ("AWS_IAM", False),
        ("GET", "/batch/{job_name}"): ("AWS_IAM", False),
        ("POST", "/feedback"): ("AWS_IAM", False),  # FeedbackAuth's default: labellers are principals
        ("GET", "/monitor"): ("AWS_IAM", False),
    }
    # LanguageExtensions must run before SAM, or SAM reads the Fn::If in Auth as a literal.
    assert template["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


def test_api_keys_have_a_usage_plan_with_throttle_and_quota(template: dict[str, Any]) -> None:
    plan = template["Resources"]["Api"]["Properties"]["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert plan["Throttle"] == {
        "RateLimit": {"Ref": "ApiKeyRateLimit"},
        "BurstLimit": {"Ref": "ApiKeyBurstLimit"},
    }
    assert plan["Quota"] == {"Limit": {"Ref": "ApiKeyDailyQuota"}, "Period": "DAY"}
    # The key SAM creates for the plan is what the README tells users to read.
    assert template["Outputs"]["ApiKeyId"]["Value"] == {"Ref": "ApiApiKey"}


def test_health_and_train_have_their_own_low_throttles(template: dict[str, Any]) -> None:
    settings = {
        (m["ResourcePath"], m["HttpMethod"]): m
        for m in template["Resources"]["Api"]["Properties"]["MethodSettings"]
    }
    assert settings[("/~1health", "GET")]["ThrottlingRateLimit"] == {"Ref": "HealthRateLimit"}
    assert settings[("/~1train", "POST")]["ThrottlingRateLimit"] == {"Ref": "TrainRateLimit"}
    defaults = template["Parameters"]
    assert defaults["TrainRateLimit"]["Default"] < defaults["ThrottlingRateLimit"]["Default"]
    assert defaults["HealthRateLimit"]["Default"] < defaults["ThrottlingRateLimit"]["Default"]


def test_training_role_cannot_write_models_and_serving_role_reads_only_models(
    template: dict[str, Any],
) -> None:
    def statements(role: str) -> list[dict[str, Any]]:
        return [
            st
            for policy in template["Resources"][role]["Properties"]["Policies"]
            for st in policy["PolicyDocument"]["Statement"]
        ]

    def s3_resources(role: str, action: str) -> set[str]:
        found = set()
        for st in statements(role):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if action in actions:
                for res in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
                    if isinstance(res, dict) and "Fn::Sub" in res and "ArtifactBucket" in str(res):
                        found.add(str(res["Fn::Sub"]).split("}", 1)[1])
        return found

    assert s3_resources("SageMakerTrainingRole", "s3:PutObject") == {"/training-output/*", "/checkpoints/*"}
    # A retrain reads the champion's admitted archive (its champion channel) and its feedback files;
    # models/ stays the deploy function's to write.
    assert s3_resources("SageMakerTrainingRole", "s3:GetObject") == {
        "/datasets/*",
        "/code/*",
        "/checkpoints/*",
        "/feedback-sets/*",
        "/models/*",
    }
    # Endpoints read admitted models; Batch Transform jobs (same role) read batch input only and
    # write batch output only.
    assert s3_resources("SageMakerServingRole", "s3:GetObject") == {"/models/*", "/batch/input/*"}
    # ... and the endpoint's data capture (SageMaker writes it as the model's role).
    assert s3_resources("SageMakerServingRole", "s3:PutObject") == {"/batch/output/*", "/capture/*"}
    # ECR: the DLC registry account, never any account.
    for role in ("SageMakerTrainingRole", "SageMakerServingRole"):
        for st in statements(role):
            if "ecr:BatchGetImage" in st["Action"]:
                assert ":*:repository" not in json.dumps(st["Resource"])
    functions = template["Resources"]
    deploy_env = functions["DeployFunction"]["Properties"]["Environment"]["Variables"]
    train_env = functions["TrainingFunction"]["Properties"]["Environment"]["Variables"]
    assert deploy_env["SAGEMAKER_ROLE_ARN"] == {"Fn::GetAtt": ["SageMakerServingRole", "Arn"]}
    assert train_env["SAGEMAKER_ROLE_ARN"] == {"Fn::GetAtt": ["SageMakerTrainingRole", "Arn"]}


def test_training_jobs_are_limited_to_the_schemas_gpu_types(template: dict[str, Any]) -> None:
    # Both functions that start jobs: POST /train's and the retrain on a monitor alarm.
    for function in ("TrainingFunction", "RetrainFunction"):
        statements = template["Resources"][function]["Properties"]["Policies"][0]["Statement"]
        (create,) = [st for st in statements if st["Action"] == "sagemaker:CreateTrainingJob"]
        allowed = create["Condition"]["ForAllValues:StringEquals"]["sagemaker:InstanceTypes"]
        assert allowed == list(GPU_INSTANCE_TYPES), function
    props = template["Resources"]["TrainingFunction"]["Properties"]
    assert props["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "ReserveTrainingConcurrency",
            {"Ref": "TrainingReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }


def test_the_region_wide_api_gateway_setting_survives_the_stack(template: dict[str, Any]) -> None:
    res = template["Resources"]
    for name in ("ApiGatewayAccount", "ApiGatewayCloudWatchRole"):
        assert res[name]["DeletionPolicy"] == "Retain"
        assert res[name]["UpdateReplacePolicy"] == "Retain"
    # An operator can keep the role the region already uses instead of replacing it.
    assert res["ApiGatewayAccount"]["Properties"]["CloudWatchRoleArn"]["Fn::If"][2] == {
        "Ref": "ApiGatewayCloudWatchRoleArn"
    }


def test_api_stage_throttling_logging_and_tracing(template: dict[str, Any]) -> None:
    api = template["Resources"]["Api"]
    assert api["Type"] == "AWS::Serverless::Api"
    props = api["Properties"]
    settings = props["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert props["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "$context.requestId" in props["AccessLogSetting"]["Format"]
    assert props["TracingEnabled"] is True
    assert api["DependsOn"] == "ApiGatewayAccount"  # access logs need the account's CloudWatch role


def test_least_privilege_per_function(template: dict[str, Any]) -> None:
    functions = template["Resources"]
    endpoint_arn = {
        "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/${EndpointName}"
    }
    predict, health, training = (
        functions[n] for n in ("PredictFunction", "HealthFunction", "TrainingFunction")
    )
    assert actions(predict) == {"sagemaker:InvokeEndpoint"}
    assert [s["Resource"] for s in statements(predict)] == [endpoint_arn]
    assert actions(health) == {"sagemaker:DescribeEndpoint"}
    assert [s["Resource"] for s in statements(health)] == [endpoint_arn]
    assert actions(training) == {
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:AddTags",
        "sagemaker:ListTrainingJobs",
        "iam:PassRole",
        "s3:GetObject",
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    by_sid = {s["Sid"]: s for s in statements(training)}
    assert by_sid["TrainingJobsUnderPrefix"]["Resource"]["Fn::Sub"].endswith(
        ":training-job/${TrainingJobPrefix}-*"
    )
    assert by_sid["PassTheSageMakerRole"]["Resource"] == {"Fn::GetAtt": ["SageMakerTrainingRole", "Arn"]}
    assert by_sid["PassTheSageMakerRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert by_sid["CountRunningJobs"] == {
        "Sid": "CountRunningJobs",
        "Effect": "Allow",
        "Action": "sagemaker:ListTrainingJobs",  # no resource-level permissions exist for it
        "Resource": "*",
    }
    assert by_sid["ReadDeploymentRecords"]["Action"] == "dynamodb:GetItem"  # read only
    for statement in statements(training):
        resource = statement["Resource"]
        if statement["Sid"] == "CountRunningJobs":
            continue
        assert resource != "*"
        for item in resource if isinstance(resource, list) else [resource]:
            text = str(item)
            assert any(
                name in text
                for name in (
                    "ArtifactBucket",
                    "sagemaker",
                    "SageMakerTrainingRole",
                    "DeploymentsTable",
                    "IdempotencyTable",
                )
            ), text


def test_bucket_is_encrypted_private_versioned_and_tls_only(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    policy = template["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    deny = [s for s in policy if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_parameters_defaults_and_allow_lists_match_the_api(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["TrainingInstanceType"]["Default"] == "ml.g5.xlarge"
    assert tuple(params["TrainingInstanceType"]["AllowedValues"]) == GPU_INSTANCE_TYPES
    assert get_args(GpuInstanceType) == GPU_INSTANCE_TYPES  # the OpenAPI enum is the same list
    assert params["MaxTrainingInstanceCount"]["MaxValue"] == MAX_TRAINING_INSTANCE_COUNT
    train_env = template["Resources"]["TrainingFunction"]["Properties"]["Environment"]["Variables"]
    assert train_env["MAX_TRAINING_INSTANCE_COUNT"] == {"Ref": "MaxTrainingInstanceCount"}
    assert params["BaseModel"]["Default"] == "distilbert-base-uncased"
    assert tuple(params["BaseModel"]["AllowedValues"]) == BASE_MODELS
    assert params["TrainingImageTag"]["Default"].startswith("2.9.0-transformers5")
    assert {"EndpointName", "Stage", "TrainingImageUri"} <= set(params)


def test_the_retrain_function_hears_the_monitor_alarms_and_starts_jobs_like_post_train(
    template: dict[str, Any],
) -> None:
    from textclf_api.logic import retrain
    from textclf_api.schemas import FEEDBACK_SETS_PREFIX, QUARANTINE_KEY
    from textclf_api.settings import Settings

    res = template["Resources"]
    props = res["RetrainFunction"]["Properties"]
    (event,) = props["Events"].values()
    pattern = event["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.cloudwatch"] and pattern["detail-type"] == [retrain.ALARM_EVENT]
    assert pattern["detail"]["state"] == {"value": ["ALARM"]}
    # The names the function maps to reasons (<stack>-<suffix>), spelt as the alarms' AlarmName.
    assert pattern["detail"]["alarmName"] == [
        {"Fn::Sub": f"${{AWS::StackName}}-{suffix}"} for suffix in retrain.ALARM_REASONS
    ]
    env = props["Environment"]["Variables"]
    assert env["STACK_NAME"] == {"Ref": "AWS::StackName"}
    training_env = res["TrainingFunction"]["Properties"]["Environment"]["Variables"]
    # POST /train's path: every setting it reads (but the deployment records GET /train shows).
    assert {k: v for k, v in training_env.items() if k != "DEPLOYMENTS_TABLE"}.items() <= env.items()
    params = template["Parameters"]
    defaults = Settings.from_env({})
    assert params["FeedbackMaxShare"]["Default"] == defaults.feedback_max_share
    assert params["RecentHoldout"]["Default"] == defaults.recent_holdout
    assert params["FeedbackDailyCap"]["Default"] == defaults.feedback_daily_cap
    by_sid = {s["Sid"]: s for s in statements(res["RetrainFunction"])}
    assert by_sid["WriteFeedbackSets"]["Resource"] == {
        "Fn::Sub": "${ArtifactBucket.Arn}/" + FEEDBACK_SETS_PREFIX + "*"
    }
    assert {"Fn::Sub": "${ArtifactBucket.Arn}/" + QUARANTINE_KEY} in by_sid["ReadPointerSourceAndFeedback"][
        "Resource"
    ]
    feedback_env = res["FeedbackFunction"]["Properties"]["Environment"]["Variables"]
    assert feedback_env["FEEDBACK_COUNTS_TABLE"] == {"Ref": "FeedbackCountsTable"}
    assert res["FeedbackCountsTable"]["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expiration",
        "Enabled": True,
    }


def test_environment_covers_the_settings(template: dict[str, Any]) -> None:
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env |= template["Resources"]["TrainingFunction"]["Properties"]["Environment"]["Variables"]
    assert {
        "ENDPOINT_NAME",
        "BUCKET_NAME",
        "SAGEMAKER_ROLE_ARN",
        "TRAINING_IMAGE_URI",
        "TRAINING_INSTANCE_TYPE",
        "BASE_MODEL",
        "TRAINING_JOB_PREFIX",
        "DATASET_POINTER_KEY",
        "SOURCE_BUNDLE_KEY",
    } <= set(env)


def test_the_deploy_loop_resources(template: dict[str, Any]) -> None:
    from textclf_api.logic import deployment
    from textclf_api.settings import Settings

    res = template["Resources"]
    deploy = res["DeployFunction"]["Properties"]
    events = {name: e["Properties"]["Pattern"] for name, e in deploy["Events"].items()}
    assert events["TrainingJobEnded"]["detail-type"] == [deployment.TRAINING_EVENT]
    assert events["TrainingJobEnded"]["detail"] == {
        "TrainingJobName": [{"prefix": {"Fn::Sub": "${TrainingJobPrefix}-"}}],
        "TrainingJobStatus": sorted(
            deployment.TERMINAL_JOB_STATES, key=["Completed", "Failed", "Stopped"].index
        ),
    }
    assert events["ModelVersionApproved"]["detail-type"] == [deployment.PACKAGE_EVENT]
    assert events["ModelVersionApproved"]["detail"]["ModelApprovalStatus"] == ["Approved"]
    assert events["EndpointStateChanged"]["detail-type"] == [deployment.ENDPOINT_EVENT]
    assert events["EndpointStateChanged"]["detail"]["EndpointName"] == [{"Ref": "EndpointName"}]
    assert all(e["source"] == ["aws.sagemaker"] for e in events.values())
    # Every setting the loop reads is set by the template, from a parameter or a resource.
    env = deploy["Environment"]["Variables"]
    for name in (
        "MODEL_PACKAGE_GROUP",
        "DEPLOYMENTS_TABLE",
        "INFERENCE_IMAGE_URI",
        "INFERENCE_SERVER",
        "INFERENCE_SERVER_IMAGE_URI",
        "INFERENCE_REPOSITORY_URI",
        "GATE_MIN_ACCURACY",
        "GATE_MAX_DROP",
        "ENDPOINT_TYPE",
        "ENDPOINT_MIN_INSTANCES",
        "ENDPOINT_MAX_INSTANCES",
        "ROLLBACK_ALARMS",
    ):
        assert name in env, name
    assert env["GATE_MIN_ACCURACY"] == {"Ref": "GateMinAccuracy"}
    assert env["ROLLBACK_ALARMS"] == {
        "Fn::Join": [",", [{"Ref": "EndpointErrorsAlarm"}, {"Ref": "EndpointLatencyAlarm"}]]
    }
    params = template["Parameters"]
    assert params["EndpointType"]["AllowedValues"] == ["RealTime", "Serverless"]
    from textclf_api.settings import ENDPOINT_TYPES

    assert tuple(params["EndpointType"]["AllowedValues"]) == ENDPOINT_TYPES
    defaults = Settings.from_env({})
    assert params["GateMaxDrop"]["Default"] == defaults.gate_max_drop
    assert params["GateMinAccuracy"]["Default"] == defaults.gate_min_accuracy
    # The stack's inference image is the one `textclf deploy` uses for hand deploys.
    from textclf import deploy as cli_deploy

    assert params["InferenceImageTag"]["Default"] == cli_deploy.CPU_TAG
    # Alarms watch the variant the rollouts replace.
    for alarm in ("EndpointErrorsAlarm", "EndpointLatencyAlarm"):
        dims = {d["Name"]: d["Value"] for d in res[alarm]["Properties"]["Dimensions"]}
        assert dims == {"EndpointName": {"Ref": "EndpointName"}, "VariantName": deployment.VARIANT_NAME}
    # Stack deletion deletes the endpoint the function created.
    assert res["EndpointTeardown"]["Type"] == "Custom::EndpointTeardown"
    assert res["EndpointTeardown"]["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["DeployFunction", "Arn"]}
    assert res["IdempotencyTable"]["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expiration",
        "Enabled": True,
    }
    by_sid = {s["Sid"]: s for s in statements(res["DeployFunction"])}
    assert by_sid["RollOutToTheEndpoint"]["Resource"][0]["Fn::Sub"].endswith(":model/${EndpointName}-v*")
    assert "sagemaker:UpdateEndpoint" in by_sid["RollOutToTheEndpoint"]["Action"]


@pytest.mark.parametrize(
    ("feedback_auth", "route", "key_ids"),
    [
        (None, ("AWS_IAM", False), ""),  # the default: each IAM principal its own labeller
        ("AWS_IAM", ("AWS_IAM", False), ""),
        # A labeller key: API Gateway wants a key, the function wants it to be the labellers' one.
        ("API_KEY", (None, True), "local-LabellerApiKey"),
    ],
)
def test_feedback_takes_labellers_only_as_feedback_auth_says(
    template: dict[str, Any], feedback_auth: str | None, route: tuple[str | None, bool], key_ids: str
) -> None:
    from textclf.local import template as tpl

    overrides = {"FeedbackAuth": feedback_auth} if feedback_auth else {}
    routes = {(r.method, r.path): (r.auth, r.api_key_required) for r in tpl.routes(template, overrides)}
    assert routes[("POST", "/feedback")] == route
    local = tpl.LocalResources("us-east-1", "123456789012", "bucket", "arn:aws:iam::1:role/r", overrides)
    env = tpl.function_environment(template, "FeedbackFunction", local)
    assert env["FEEDBACK_AUTH"] == (feedback_auth or "AWS_IAM")
    assert env["LABELLER_API_KEY_IDS"] == key_ids
    params = template["Parameters"]
    from textclf_api.settings import FEEDBACK_AUTHS, Settings

    assert tuple(params["FeedbackAuth"]["AllowedValues"]) == FEEDBACK_AUTHS  # no NONE: labels train models
    assert params["FeedbackAuth"]["Default"] == Settings.from_env({}).feedback_auth


def test_labellers_have_their_own_usage_plan_key_and_quota(template: dict[str, Any]) -> None:
    res = template["Resources"]
    plan, key, link = (res[n] for n in ("LabellersUsagePlan", "LabellerApiKey", "LabellerUsagePlanKey"))
    assert {plan["Condition"], key["Condition"], link["Condition"]} == {"FeedbackUsesApiKey"}
    assert template["Conditions"]["FeedbackUsesApiKey"] == {
        "Fn::Equals": [{"Ref": "FeedbackAuth"}, "API_KEY"]
    }
    props = plan["Properties"]
    assert props["ApiStages"] == [{"ApiId": {"Ref": "Api"}, "Stage": {"Ref": "Api.Stage"}}]
    assert props["Throttle"] == {
        "RateLimit": {"Ref": "LabellerRateLimit"},
        "BurstLimit": {"Ref": "LabellerBurstLimit"},
    }
    assert props["Quota"] == {"Limit": {"Ref": "LabellerDailyQuota"}, "Period": "DAY"}
    assert link["Properties"] == {
        "KeyId": {"Ref": "LabellerApiKey"},
        "KeyType": "API_KEY",
        "UsagePlanId": {"Ref": "LabellersUsagePlan"},
    }
    # The function refuses every key but the labellers' (a predict key passes API Gateway).
    env = res["FeedbackFunction"]["Properties"]["Environment"]["Variables"]
    assert env["LABELLER_API_KEY_IDS"] == {"Fn::If": ["FeedbackUsesApiKey", {"Ref": "LabellerApiKey"}, ""]}
    assert template["Outputs"]["LabellerApiKeyId"] == {
        "Condition": "FeedbackUsesApiKey",
        "Description": template["Outputs"]["LabellerApiKeyId"]["Description"],
        "Value": {"Ref": "LabellerApiKey"},
    }
    # Its daily quota is below the predict keys': a labeller sends far less than clients predict.
    params = template["Parameters"]
    assert params["LabellerDailyQuota"]["Default"] < params["ApiKeyDailyQuota"]["Default"]


def test_capture_and_ground_truth_live_where_the_code_writes_them(template: dict[str, Any]) -> None:
    """The prefixes of schemas.py, the parameter's default and bounds, and who may write where."""
    from textclf_api.schemas import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, SERVING_LABELS_KEY
    from textclf_api.settings import Settings

    res = template["Resources"]
    param = template["Parameters"]["CaptureSamplingPercent"]
    assert (param["Default"], param["MinValue"], param["MaxValue"]) == (
        Settings.from_env({}).capture_sampling_percent,
        0,
        100,
    )
    deploy = res["DeployFunction"]["Properties"]
    assert deploy["Environment"]["Variables"]["CAPTURE_SAMPLING_PERCENT"] == {"Ref": "CaptureSamplingPercent"}
    serving = [
        st
        for policy in res["SageMakerServingRole"]["Properties"]["Policies"]
        for st in policy["PolicyDocument"]["Statement"]
    ]
    capture = next(st for st in serving if st["Sid"] == "WriteDataCapture")
    assert capture["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/" + CAPTURE_PREFIX + "*"}
    feedback = {st["Sid"]: st for st in statements(res["FeedbackFunction"])}
    assert actions(res["FeedbackFunction"]) == {"s3:GetObject", "s3:PutObject", "dynamodb:UpdateItem"}
    assert feedback["ReadTheServedLabels"]["Resource"] == {
        "Fn::Sub": "${ArtifactBucket.Arn}/" + SERVING_LABELS_KEY
    }
    assert feedback["WriteGroundTruth"]["Resource"] == {
        "Fn::Sub": "${ArtifactBucket.Arn}/" + GROUND_TRUTH_PREFIX + "*"
    }
    by_sid = {st["Sid"]: st for st in statements(res["DeployFunction"])}
    assert by_sid["RecordServedLabels"]["Resource"] == {
        "Fn::Sub": "${ArtifactBucket.Arn}/" + SERVING_LABELS_KEY
    }
    assert set(by_sid["ReadWhatServes"]["Action"]) == {
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:DescribeModel",
    }


def test_the_inference_server_picks_the_image_and_the_dlc_stays_the_fallback(
    template: dict[str, Any],
) -> None:
    from textclf_api.settings import DEFAULT_INFERENCE_SERVER, INFERENCE_SERVERS, Settings

    from textclf.bench.cloud import CLOUD_SERVERS

    params = template["Parameters"]
    # What the deploy function and `textclf bench --levels cloud` run by default is what the
    # template deploys by default: textclf's own server image.
    assert params["InferenceServer"]["Default"] == DEFAULT_INFERENCE_SERVER == "textclf"
    assert tuple(params["InferenceServer"]["AllowedValues"]) == INFERENCE_SERVERS
    assert set(CLOUD_SERVERS) == set(INFERENCE_SERVERS)
    assert params["InferenceServerImageUri"]["Default"] == ""
    pattern = re.compile(params["InferenceServerImageUri"]["AllowedPattern"])
    assert pattern.match("123456789012.dkr.ecr.eu-west-1.amazonaws.com/textclf-serve:60e39f8")
    assert not pattern.match("textclf-serve:latest")
    # The deploy function reads the server, the override and the stack's repository under the
    # names its settings give them; the DLC image is always set (serverless, dlc, the fallback).
    env = template["Resources"]["DeployFunction"]["Properties"]["Environment"]["Variables"]
    aliases = {f.alias: name for name, f in Settings.model_fields.items()}
    assert aliases["INFERENCE_SERVER"] == "inference_server"
    assert env["INFERENCE_SERVER"] == {"Ref": "InferenceServer"}
    assert aliases["INFERENCE_SERVER_IMAGE_URI"] == "inference_server_image_uri"
    assert env["INFERENCE_SERVER_IMAGE_URI"] == {"Ref": "InferenceServerImageUri"}
    assert aliases["INFERENCE_REPOSITORY_URI"] == "inference_repository_uri"
    assert env["INFERENCE_REPOSITORY_URI"] == {"Fn::GetAtt": ["InferenceRepository", "RepositoryUri"]}
    assert "huggingface-pytorch-inference:${InferenceImageTag}" in env["INFERENCE_IMAGE_URI"]["Fn::Sub"][0]
    # The stack's repository: scanned on push, immutable tags, the last images kept, its URI an output.
    repository = template["Resources"]["InferenceRepository"]
    assert repository["Type"] == "AWS::ECR::Repository"
    props = repository["Properties"]
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert props["ImageTagMutability"] == "IMMUTABLE"
    (rule,) = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert rule["selection"]["countType"] == "imageCountMoreThan" and rule["action"] == {"type": "expire"}
    output = template["Outputs"]["InferenceRepositoryUri"]
    assert output["Value"] == {"Fn::GetAtt": ["InferenceRepository", "RepositoryUri"]}
    # The deploy function may list that repository's images, nothing else in ECR.
    ecr = [st for st in statements(template["Resources"]["DeployFunction"]) if "ecr" in str(st["Action"])]
    assert ecr == [
        {
            "Sid": "FindTheInferenceImage",
            "Effect": "Allow",
            "Action": "ecr:DescribeImages",
            "Resource": {"Fn::GetAtt": ["InferenceRepository", "Arn"]},
        }
    ]
    # SageMaker pulls from the DLC's repository, the stack's, and an override's registry when given
    # (real-time only: serverless keeps the DLC).
    assert template["Conditions"]["UseInferenceImageOverride"] == {
        "Fn::And": [
            {"Fn::Equals": [{"Ref": "InferenceServer"}, "textclf"]},
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "InferenceServerImageUri"}, ""]}]},
            {"Fn::Equals": [{"Ref": "EndpointType"}, "RealTime"]},
        ]
    }
    role = template["Resources"]["SageMakerServingRole"]["Properties"]["Policies"]
    pull = next(
        st for p in role for st in p["PolicyDocument"]["Statement"] if st.get("Sid") == "PullInferenceImage"
    )
    assert pull["Resource"][1] == {"Fn::GetAtt": ["InferenceRepository", "Arn"]}
    assert pull["Resource"][2]["Fn::If"][0] == "UseInferenceImageOverride"


def test_the_inference_image_dockerfile_lints_clean() -> None:
    dockerfile = REPO / "docker" / "Dockerfile"
    result = run([tool("hadolint"), dockerfile])
    assert result.returncode == 0, result.stdout + result.stderr
    checkov = tool("checkov", REPO / ".venv-checkov" / "bin")
    result = run([checkov, "-f", dockerfile, "--framework", "dockerfile", "--compact", "-o", "json"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for check in json.loads(result.stdout)["results"]["skipped_checks"]:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]


def test_outputs(template: dict[str, Any]) -> None:
    assert {
        "ApiUrl",
        "ApiKeyId",
        "BucketName",
        "SageMakerTrainingRoleArn",
        "SageMakerServingRoleArn",
        "InferenceRepositoryUri",
    } <= set(template["Outputs"])


LAYER_DIR = REPO / "layers" / "dependencies"
#: What the Lambda runtime provides: bundling any of these would shadow it and multiply the size.
RUNTIME_PACKAGES = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
#: Measured 13.88 MB (docs/benchmarks.md, Lambda packages); the bound is the goal (≤ 15 MB with
#: layers) and catches a dependency creeping back.
MAX_FUNCTION_MB = 15


def layer_requirements() -> dict[str, str]:
    """name -> pinned version of the layer's requirements.txt (every line must pin exactly)."""
    pins = {}
    for raw in (LAYER_DIR / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"not pinned exactly: {line}"
            pins[name.strip().lower()] = version.strip()
    return pins


def test_every_function_gets_its_packages_from_the_one_layer(template: dict[str, Any]) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Layers"] == [{"Ref": "DependenciesLayer"}]
    for name, function in resources(template, "AWS::Serverless::Function").items():
        assert "Layers" not in function["Properties"], f"{name} replaces the Globals layers"
    (layer,) = resources(template, "AWS::Serverless::LayerVersion").values()
    assert layer["Metadata"]["BuildMethod"] == "makefile"  # sam's pip builder would follow deps to botocore
    assert layer["Properties"]["ContentUri"] == "layers/dependencies/"
    assert layer["Properties"]["CompatibleRuntimes"] == [globals_["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == globals_["Architectures"]
    assert layer["Metadata"]["BuildArchitecture"] in globals_["Architectures"]


def test_function_packages_hold_only_their_code() -> None:
    # No requirements.txt: sam build copies textclf_api and installs nothing into each function.
    assert not (REPO / "functions" / "requirements.txt").exists()


def test_layer_installs_exactly_its_pins_and_nothing_the_runtime_has() -> None:
    pins = layer_requirements()
    assert {"aws-lambda-powertools", "pydantic", "pydantic-core"} <= set(pins)
    assert not set(pins) & RUNTIME_PACKAGES
    assert not set(pins) & {"torch", "transformers", "numpy", "onnxruntime", "tokenizers", "sagemaker"}
    # No X-Ray SDK: Lambda's active tracing needs none (docs/api.md#observability). A handler
    # making a Tracer() again fails the built-handler tests below.
    assert not set(pins) & {"aws-xray-sdk", "wrapt"}
    makefile = (LAYER_DIR / "Makefile").read_text()
    # --no-deps: no requirement of a pinned package (botocore) is followed; the manylinux wheels for
    # the runtime's python whatever machine builds.
    for flag in ("--no-deps", "--only-binary=:all:", "--python-version 3.12", "manylinux2014_x86_64"):
        assert flag in makefile, flag


def test_layer_pins_are_what_the_tests_run_with() -> None:
    """The deployed functions run the powertools and pydantic the suite exercised."""
    pins = layer_requirements()
    for name in ("aws-lambda-powertools", "pydantic", "pydantic-core"):
        assert importlib.metadata.version(name) == pins[name], name


# ---------------------------------------------------------------- the AWS tools themselves


def tool(name: str, tools: Path = TOOLS) -> Path:
    path = tools / name
    if not path.exists():
        missing_prerequisite(
            f"{path} is missing", "run `make tools` (the template checks need cfn-lint, sam and checkov)"
        )
    return path


def tool_env() -> dict[str, str]:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    # sam build for the python3.12 runtime needs a python3.12 on PATH (pyenv's, where present).
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(pyenv_root.glob("versions/3.12.*/bin"))
    if candidates:
        env["PATH"] = f"{candidates[-1]}{os.pathsep}{env['PATH']}"
    return env


def run(args: list[str | Path], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=tool_env(),
        timeout=timeout,
    )


def test_cfn_lint_is_clean() -> None:
    result = run([tool("cfn-lint"), TEMPLATE])
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_finds_nothing_unexplained() -> None:
    """checkov passes: every finding is fixed, or skipped in the resource's Metadata with a reason."""
    checkov = tool("checkov", REPO / ".venv-checkov" / "bin")
    result = run([checkov, "-f", TEMPLATE, "--framework", "cloudformation", "--compact", "-o", "json"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    skipped = report["results"]["skipped_checks"]
    assert skipped, "expected the documented skips to be reported"
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]


def test_sam_validate_lint_is_clean() -> None:
    result = run([tool("sam"), "validate", "--lint", "--region", "us-east-1", "--template-file", TEMPLATE])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def python312() -> str:
    found = shutil.which("python3.12", path=tool_env()["PATH"])
    if not found:
        missing_prerequisite(
            "sam build needs a python3.12 interpreter on PATH for the python3.12 runtime",
            "install Python 3.12 (pyenv install 3.12) so the Makefile puts it on PATH",
        )
    return found


@pytest.fixture(scope="module")
def sam_build_dir() -> Path:
    sam = tool("sam")
    python312()
    # Inside the gitignored .aws-sam/, at a fixed place: sam keeps its cache manifest (build.toml)
    # next to the build dir, so re-runs reuse the downloaded wheels.
    work = REPO / ".aws-sam" / "pytest"
    build_dir = work / "build"
    shutil.rmtree(build_dir, ignore_errors=True)
    result = run(
        [
            sam,
            "build",
            "--template-file",
            TEMPLATE,
            "--build-dir",
            build_dir,
            "--cache-dir",
            work / "cache",
            "--cached",
            "--parallel",
        ],
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return build_dir


# Its own limit above sam's: a cold `sam build` downloads the layer's wheels (a minute or more on a
# fresh CI machine); pytest's default 300 s would cut it off before its own 600 s timeout. Sizes are
# deterministic for given pins, so the bound is asserted here; import time is `make lambda-size`'s.
@pytest.mark.timeout(660)
def test_sam_build_succeeds(template: dict[str, Any], sam_build_dir: Path) -> None:
    build_dir = sam_build_dir
    layer = build_dir / "DependenciesLayer" / "python"
    assert (layer / "aws_lambda_powertools").is_dir() and not (layer / "aws_xray_sdk").exists()
    assert list((layer / "pydantic_core").glob("*cpython-312*.so")), "pydantic-core built for 3.12"
    assert list((layer / "pydantic" / "__pycache__").glob("*.cpython-312.pyc")), "bytecode for the runtime"
    figures = measure(build_dir, python=None, runs=0)
    assert {f.name for f in figures} == set(resources(template, "AWS::Serverless::Function"))
    for figure in figures:
        root = build_dir / figure.name
        assert sorted(p.name for p in root.iterdir()) == ["textclf_api"], "a function holds only its code"
        assert figure.total_bytes <= MAX_FUNCTION_MB * 1_000_000, (
            f"{figure.name}: {figure.total_bytes / 1e6:.1f} MB"
        )
    shipped = {p.name for p in layer.iterdir()}
    assert not shipped & {"boto3", "botocore", "s3transfer", "urllib3", "torch", "transformers"}


@pytest.mark.timeout(660)
def test_every_handler_imports_from_its_build_and_layer_alone(sam_build_dir: Path) -> None:
    """The layer holds everything the handlers import: a python3.12 that sees only a function's
    build folder, its layer and the runtime's boto3 (no virtualenv) imports each handler."""
    builds = read_build(sam_build_dir)
    runtime = runtime_site(sam_build_dir.parent, python312())
    for build in builds:
        wall, _cpu = time_import(build, python312(), runtime, runs=1)  # raises UserError on failure
        assert wall[0] > 0, build.name


# Runs in a python3.12 that sees only a function's build folder, its layers and the runtime's boto3:
# argv = [handler module, os.pathsep-joined sys.path entries, *event files]; prints one JSON line
# per event with the handler's response, or the exception it raised.
_RUN_EVENTS = """
import importlib, json, os, sys
sys.path[0:0] = sys.argv[2].split(os.pathsep)
handler = importlib.import_module(sys.argv[1]).lambda_handler

class Context:
    function_name = log_group_name = log_stream_name = "fn"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    aws_request_id = "0f6d7c3e-0000-4000-8000-000000000000"
    def get_remaining_time_in_millis(self):
        return 20000

for path in sys.argv[3:]:
    with open(path) as f:
        event = json.load(f)
    try:
        print(json.dumps({"event": path, "response": handler(event, Context())}))
    except Exception as exc:
        print(json.dumps({"event": path, "raised": type(exc).__module__ + "." + type(exc).__name__}))
"""


def function_events(template: dict[str, Any], function: str) -> list[Path]:
    """The sample events (events/) of ``function``'s API routes; EventBridge samples for the others."""
    events = template["Resources"][function]["Properties"].get("Events", {}).values()
    api = [e["Properties"] for e in events if e["Type"] == "Api"]
    routes = {(props["Method"].upper(), props["Path"]) for props in api}
    if not routes:
        return sorted((REPO / "events" / "eventbridge").glob("*.json"))
    found = []
    for path in sorted((REPO / "events").glob("*.json")):
        event = json.loads(path.read_text())
        if (event.get("httpMethod"), event.get("resource")) in routes:
            found.append(path)
    return found


@pytest.mark.timeout(660)
def test_every_sample_event_runs_through_the_built_handler(
    template: dict[str, Any], sam_build_dir: Path
) -> None:
    """Every sample event through each handler as built, with only its layer and the runtime's boto3:
    the code paths a handler imports lazily (request validation, Logger and Metrics on invocation,
    boto3 clients) load from the pruned layer (layers/dependencies/Makefile EXCLUDE). AWS is a
    closed local port, so calls fail fast: the API answers 503 (never a 500), the EventBridge
    handler raises botocore's connection error (EventBridge retries it)."""
    runtime = runtime_site(sam_build_dir.parent, python312())
    for build in read_build(sam_build_dir):
        events = function_events(template, build.name)
        assert events, build.name
        paths = [str(build.code_dir), *(str(layer / "python") for layer in build.layer_dirs), str(runtime)]
        env = lambda_environment(build) | {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        done = subprocess.run(
            [python312(), "-B", "-S", "-E", "-c", _RUN_EVENTS, build.handler_module, os.pathsep.join(paths)]
            + [str(e) for e in events],
            capture_output=True,
            text=True,
            env=env,
            cwd=build.code_dir,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{build.name}: {done.stderr[-2000:]}"
        outcomes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"event"')]
        assert len(outcomes) == len(events), build.name
        for outcome in outcomes:
            name = f"{build.name} {Path(outcome['event']).name}"
            if "raised" in outcome:
                assert outcome["raised"] == "botocore.exceptions.EndpointConnectionError", name
                assert build.name in EVENT_FUNCTIONS, name
            elif build.name in EVENT_FUNCTIONS:  # an event it does not act on: its outcome says why
                assert outcome["response"]["action"] == "ignored", name
            else:
                assert outcome["response"]["statusCode"] in {200, 400, 415, 422, 503}, name


def test_the_monitor_runs_on_its_schedule_and_its_alarms_watch_what_it_publishes(
    template: dict[str, Any],
) -> None:
    from textclf_api.logic import monitor
    from textclf_api.settings import Settings

    res = template["Resources"]
    params = template["Parameters"]
    fn = res["MonitorFunction"]["Properties"]
    assert fn["Events"]["Schedule"]["Properties"]["Schedule"] == {"Ref": "MonitorSchedule"}
    assert params["MonitorSchedule"]["Default"] == "rate(1 hour)"
    assert fn["Events"]["LatestReport"]["Properties"]["Auth"] == {"Authorizer": "AWS_IAM"}
    env = fn["Environment"]["Variables"]
    # Every setting the monitor reads is given by the template.
    aliases = {Settings.model_fields[f].alias for f in Settings.model_fields if f.startswith("monitor_")}
    assert aliases | {"STACK_NAME", "BUCKET_NAME", "MODEL_PACKAGE_GROUP"} <= set(env) | {
        "MONITOR_WINDOW_MINUTES"
    }
    assert env["MONITOR_MIN_LABELS"] == {"Ref": "MonitorMinLabels"}
    # The three alarms: the metric names the monitor publishes, its namespace and dimension, and
    # no alarm on a window that could not be measured.
    alarms = {
        "DriftAlarm": ("LabelPsi", "MonitorMaxPsi", "GreaterThanThreshold", "-drift"),
        "LiveAccuracyAlarm": ("LiveAccuracy", "MonitorMinAccuracy", "LessThanThreshold", "-live-accuracy"),
        "LabelsAlarm": (
            "LabelsSinceTraining",
            "RetrainAfterLabels",
            "GreaterThanOrEqualToThreshold",
            "-labels",
        ),
    }
    for name, (metric, threshold, operator, suffix) in alarms.items():
        alarm = res[name]["Properties"]
        assert alarm["Namespace"] == monitor.NAMESPACE
        assert alarm["Dimensions"] == [{"Name": "Stack", "Value": {"Ref": "AWS::StackName"}}]
        assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            metric, {"Ref": threshold}, operator,
        )  # fmt: skip
        assert alarm["AlarmName"] == {"Fn::Sub": "${AWS::StackName}" + suffix}
        assert alarm["TreatMissingData"] == "notBreaching"
    assert params["MonitorMaxPsi"]["Default"] == 0.2 and params["MonitorMinAccuracy"]["Default"] == 0.8
    assert params["MonitorMinLabels"]["Default"] == 200 and params["RetrainAfterLabels"]["Default"] == 1000
    # Least privilege: reads production, writes only its reports, metrics only in its namespace.
    by_sid = {st["Sid"]: st for st in statements(res["MonitorFunction"])}
    assert by_sid["WriteReports"]["Resource"] == {"Fn::Sub": "${ArtifactBucket.Arn}/monitoring/*"}
    assert by_sid["PublishMonitorMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "textclf"}
    }
    assert actions(res["MonitorFunction"]) == {
        "s3:GetObject", "s3:ListBucket", "s3:PutObject", "sagemaker:ListModelPackages",
        "sagemaker:DescribeModelPackage", "cloudwatch:PutMetricData",
    }  # fmt: skip
