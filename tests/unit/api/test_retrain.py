"""Retraining on feedback and the authority of labellers: the
(last label wins, quarantine, per-labeller share, recent holdout), the daily cap of POST /feedback,
the alarm -> retrain path (one job per alarm episode), the gate on the recent window and trusted
slice, and quarantine marking registered versions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from textclf_api import aws
from textclf_api.handlers import feedback as feedback_handler
from textclf_api.handlers import retrain as retrain_handler
from textclf_api.handlers import training as training_handler
from textclf_api.logic import artifacts, authority, deployment, feedback_sets, retrain
from textclf_api.logic.feedback import ground_truth_line
from textclf_api.logic.feedback_sets import Row
from textclf_api.settings import Settings, get_settings

from textclf.local.control_plane import create_id_table
from textclf.serving.capture import CaptureConfig, CaptureWriter

from .conftest import BUCKET, ENDPOINT, EVENTS, FakeLambdaContext, load_event, with_body

T0 = datetime(2014, 6, 2, 9, 0, tzinfo=UTC)
LABELS = ["business", "science_and_technology", "entertainment", "health"]
CHAMPION_DATA = f"s3://{BUCKET}/models/0123456789abcdef/model.tar.gz"


def rows(labeller: str, n: int, start: int = 0) -> list[Row]:
    return [
        Row(f"{labeller} {i}", "business", f"{labeller}-{i}", labeller, T0 + timedelta(seconds=start + i))
        for i in range(n)
    ]


# --------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------


def test_no_labeller_passes_the_share_of_the_new_rows() -> None:
    honest, poison = rows("honest", 100), rows("poison", 400, start=1000)
    kept, capped = feedback_sets.cap_per_labeller(honest + poison, 0.5)
    by = {name: sum(r.labeller == name for r in kept) for name in ("honest", "poison")}
    assert by == {"honest": 100, "poison": 100} and capped == {"poison": 300}
    assert [r for r in kept if r.labeller == "poison"] == poison[-100:]  # the newest are kept
    # Three labellers and a share of 0.2: nobody can be under it, so an equal split.
    three = rows("a", 100) + rows("b", 100) + rows("c", 1000)
    kept, capped = feedback_sets.cap_per_labeller(three, 0.2)
    assert len(kept) == 300 and capped == {"c": 900}
    # A lone labeller's rows are all kept: there is nobody to outweigh.
    assert feedback_sets.cap_per_labeller(honest, 0.5) == (honest, {})
    # Many labellers: the share binds exactly.
    many = [r for name in "abcdefghij" for r in rows(name, 10)] + rows("big", 100)
    kept, _ = feedback_sets.cap_per_labeller(many, 0.2)
    assert sum(r.labeller == "big" for r in kept) == 25 == 0.2 * len(kept)


def test_the_newest_share_is_held_out_at_least_fifty_rows() -> None:
    feedback = rows("a", 1000)
    train, recent = feedback_sets.split_recent(feedback, 0.2)
    assert (len(train), len(recent)) == (800, 200) and recent == feedback[-200:]
    train, recent = feedback_sets.split_recent(feedback[:100], 0.2)
    assert (len(train), len(recent)) == (50, 50)
    assert feedback_sets.split_recent(feedback[:30], 0.2) == ([], feedback[:30])
    assert feedback_sets.split_recent(feedback, 0.0) == (feedback, [])
    # After a retrain: the share is of the 400 rows new since the champion's feedback_until.
    since = feedback[599].received_at
    train, recent = feedback_sets.split_recent(feedback, 0.2, since)
    assert (len(train), len(recent)) == (920, 80) and recent == feedback[-80:]
    assert len(feedback_sets.split_recent(feedback, 0.2, feedback[-10].received_at)[1]) == 50


def test_a_package_reads_the_feedback_until_its_retrain_took_labels_to() -> None:
    from textclf_api.logic.deployment import Package

    package = Package(
        "3", "arn", "Approved", "image", "s3://b/m.tar.gz", {"feedback_until": "2014-06-01T00:00:00Z"}
    )
    assert package.feedback_until == datetime(2014, 6, 1, tzinfo=UTC)
    assert Package("1", "arn", "Approved", "image", "s3://b/m.tar.gz").feedback_until is None


def write_production(s3: Any, n: int, labellers: dict[str, Callable[[int], str | None]]) -> None:
    """``n`` captured predictions (text ``headline <i>``) and, per labeller, the label it posts for
    prediction i (None: none), one ground-truth file per labeller, received a minute apart."""
    clock = [T0.timestamp()]
    writer = CaptureWriter(
        CaptureConfig(bucket=BUCKET, prefix="capture", sampling_percent=100),
        lambda bucket, key, body: s3.put_object(Bucket=bucket, Key=key, Body=body),
        endpoint_name=ENDPOINT,
        variant="AllTraffic",
        flush_interval_s=3600,
        clock=lambda: clock[0],
    )
    reply = json.dumps({"predictions": [{"label": "business", "score": 0.9}], "model_version": "3"})
    for i in range(n):
        writer.offer(
            json.dumps({"inputs": [f"headline {i}"]}).encode(),
            "application/json",
            reply.encode(),
            inference_id=f"{i:032x}",
        )
    writer.close()
    for who, label_of in labellers.items():
        lines = []
        for i in range(n):
            label = label_of(i)
            when = T0 + timedelta(minutes=10 + i)
            if label is not None:
                stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                lines.append(ground_truth_line(f"{i:032x}-0", label, who, stamp))
        key = f"ground-truth/{T0:%Y/%m/%d/%H}/{who}.jsonl"
        s3.put_object(Bucket=BUCKET, Key=key, Body="".join(lines).encode())


def test_feedback_rows_join_the_captured_text_without_quarantined_labels(bucket: Any) -> None:
    write_production(
        bucket,
        100,
        {
            "alice": lambda i: LABELS[i % 4],
            "mallory": lambda i: "health" if i % 2 else None,  # relabels half of alice's items later
        },
    )
    until = T0 + timedelta(days=1)
    both = feedback_sets.build(bucket, BUCKET, ENDPOINT, until=until, max_share=1.0, recent_share=0.2)
    assert both.labels_read == 100 and both.unjoined == 0
    # Last label wins: mallory's, received after alice's, for the odd items.
    everything = both.feedback + both.recent
    assert {r.labeller for r in everything if int(r.prediction_id[:32], 16) % 2} == {"mallory"}

    authority.write_quarantine(
        bucket, BUCKET, {"mallory": authority.Quarantine("mallory", None, "wrong labels", T0)}
    )
    clean = feedback_sets.build(bucket, BUCKET, ENDPOINT, until=until, max_share=0.5, recent_share=0.2)
    assert clean.quarantined == 50 and clean.labels_read == 100
    rows_ = clean.feedback + clean.recent
    assert {r.labeller for r in rows_} == {"alice"} and len(rows_) == 100
    assert all(r.label == LABELS[int(r.prediction_id[:32], 16) % 4] for r in rows_)  # alice's labels back
    assert all(r.text == f"headline {int(r.prediction_id[:32], 16)}" for r in rows_)
    assert len(clean.recent) == 50 and min(r.received_at for r in clean.recent) > max(
        r.received_at for r in clean.feedback
    )
    # Content-addressed: the same rows, the same key.
    first = feedback_sets.upload_rows(bucket, BUCKET, clean.feedback)
    assert first == feedback_sets.upload_rows(bucket, BUCKET, clean.feedback)
    assert first is not None and first.startswith(f"s3://{BUCKET}/feedback-sets/")
    body = bucket.get_object(Bucket=BUCKET, Key=first.split("/", 3)[3])["Body"].read().decode()
    assert set(json.loads(body.splitlines()[0])) == {
        "text",
        "label",
        "prediction_id",
        "labeller",
        "received_at",
    }
    # A labeller quarantined from a time on keeps the labels sent before it.
    since = T0 + timedelta(minutes=10 + 50)
    authority.write_quarantine(bucket, BUCKET, {"mallory": authority.Quarantine("mallory", since, "", T0)})
    partial = feedback_sets.build(bucket, BUCKET, ENDPOINT, until=until, max_share=1.0, recent_share=0.2)
    assert partial.quarantined == 25


# --------------------------------------------------------------------------------------------
# POST /feedback: the daily cap
# --------------------------------------------------------------------------------------------


def test_feedback_past_the_daily_cap_is_refused_whole_and_nothing_is_stored(
    bucket: Any, invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_id_table(aws.dynamodb(), "feedback-counts")
    monkeypatch.setenv("FEEDBACK_COUNTS_TABLE", "feedback-counts")
    monkeypatch.setenv("FEEDBACK_DAILY_CAP", "3")
    get_settings.cache_clear()
    event = load_event("feedback")  # two items
    assert invoke(feedback_handler, event).status == 200
    refused = invoke(feedback_handler, event)  # 2 + 2 > 3
    assert refused.status == 429, refused.body
    assert refused.body["error"] == "QuotaExceeded" and "FeedbackDailyCap" in refused.body["message"]
    assert 0 < int(refused.headers["retry-after"]) <= 86400
    stored = bucket.list_objects_v2(Bucket=BUCKET, Prefix="ground-truth/").get("Contents", [])
    assert len(stored) == 1
    one = with_body(
        event, {"items": [{"prediction_id": "0f8c2a9e4b7d4c1e9a3b5d7f1e2c4a6b-0", "label": "health"}]}
    )
    assert invoke(feedback_handler, one).status == 200  # exactly up to the cap
    assert invoke(feedback_handler, one).status == 429
    labeller = json.loads(json.dumps(event))["requestContext"]["identity"]["userArn"]
    item = aws.dynamodb().get_item(
        TableName="feedback-counts",
        Key={"id": {"S": authority.count_key(labeller, datetime.now(UTC))}},
    )["Item"]
    assert item["items"] == {"N": "3"}


# --------------------------------------------------------------------------------------------
# Alarm -> retrain
# --------------------------------------------------------------------------------------------


def alarm_event(
    name: str = "textclf-labels", time: str = "2014-06-03T00:00:00Z", state: str = "ALARM"
) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "eventbridge" / "alarm_labels.json").read_text())
    event["time"] = time
    event["detail"]["alarmName"] = name
    event["detail"]["state"]["value"] = state
    return event


@pytest.fixture
def serving(bucket: Any, monkeypatch: pytest.MonkeyPatch) -> deployment.Package:
    """A champion (version 3) the endpoint serves, the idempotency table, the stack's name."""
    create_id_table(aws.dynamodb(), "idempotency")
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "idempotency")
    monkeypatch.setenv("STACK_NAME", "textclf")
    monkeypatch.setenv("TRUSTED_LABELLERS", "alice")
    get_settings.cache_clear()
    package = deployment.Package("3", "arn:package/3", "Approved", "image", CHAMPION_DATA, {})
    monkeypatch.setattr(deployment, "serving_version", lambda settings, sagemaker=None: "3")
    monkeypatch.setattr(deployment, "find_package", lambda version, settings, sagemaker=None: package)
    write_production(
        bucket,
        120,
        {
            "alice": lambda i: LABELS[i % 4] if i >= 20 else None,
            "bob": lambda i: LABELS[i % 4] if i < 20 else None,
        },
    )
    return package


def test_an_alarm_episode_starts_one_retrain_with_the_feedback_channels(
    serving: deployment.Package, record: Callable[[Any, str], list[dict[str, Any]]]
) -> None:
    created = record(aws.sagemaker(), "CreateTrainingJob")
    first = retrain_handler.lambda_handler(alarm_event(), FakeLambdaContext())
    again = retrain_handler.lambda_handler(alarm_event(), FakeLambdaContext())  # EventBridge repeats it
    assert first["action"] == "started" and first["retrain_reason"] == "labels"
    assert again["training_job_name"] == first["training_job_name"] and len(created) == 1
    job = created[0]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels["champion"] == CHAMPION_DATA
    assert channels["feedback"].startswith(f"s3://{BUCKET}/feedback-sets/") and channels["feedback"].endswith(
        ".jsonl"
    )
    hyper = {k: json.loads(v) for k, v in job["HyperParameters"].items()}
    assert hyper["retrain_reason"] == "labels" and hyper["feedback_until"] == "2014-06-03T00:00:00Z"
    assert hyper["trusted_labellers"] == "alice" and hyper["parent_dataset"].endswith(
        "/datasets/0123456789ab/"
    )
    # 120 rows: the newest 50 (alice's) held out; of the 70 older, bob's 20 and alice's 50, capped
    # at an equal share (FeedbackMaxShare 0.5): alice keeps her newest 20.
    assert json.loads(hyper["feedback_rows"]) == {"alice": 20, "bob": 20}
    manifest_key = hyper["feedback_manifest"].split("/", 3)[3]
    manifest = json.loads(aws.s3().get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    assert manifest["recent_rows"] == 50 and manifest["recent_per_labeller"] == {"alice": 50}
    assert (
        manifest["capped_per_labeller"] == {"alice": 30}
        and manifest["feedback_until"] == hyper["feedback_until"]
    )
    # The next episode of the same alarm (a later change to ALARM) is another run.
    later = retrain_handler.lambda_handler(alarm_event(time="2014-06-10T00:00:00Z"), FakeLambdaContext())
    assert later["action"] == "started" and len(created) == 2
    assert later["training_job_name"] != first["training_job_name"]


def test_alarms_that_do_not_start_a_retrain(
    serving: deployment.Package, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    assert retrain.handle_event(alarm_event(state="OK"), settings).action == "ignored"
    assert retrain.handle_event(alarm_event(name="other-drift"), settings).action == "ignored"
    assert retrain.handle_event(load_event("eventbridge/endpoint_in_service"), settings).action == "ignored"
    assert retrain.handle_event(alarm_event("textclf-drift"), settings).retrain_reason == "drift"
    # A job of this stack still runs: its model is judged first.
    monkeypatch.setattr(
        retrain, "why_not_now", lambda settings: "training job textclf-x of this stack is still running"
    )
    skipped = retrain.handle_event(
        alarm_event("textclf-live-accuracy", time="2014-06-04T00:00:00Z"), settings
    )
    assert (skipped.action, skipped.retrain_reason) == (
        "skipped",
        "accuracy",
    ) and "still running" in skipped.reason
    monkeypatch.setattr(retrain, "why_not_now", lambda settings: None)
    monkeypatch.setattr(deployment, "serving_version", lambda settings, sagemaker=None: None)
    nothing = retrain.handle_event(alarm_event(time="2014-06-05T00:00:00Z"), settings)
    assert nothing.action == "skipped" and "no model serves" in nothing.reason


def test_training_status_says_why_the_job_exists(
    invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.stub import Stubber

    from .test_training import completed_job

    name = load_event("train_status")["pathParameters"]["job_name"]
    job = completed_job(name) | {"HyperParameters": {"retrain_reason": '"drift"', "epochs": "3"}}
    with Stubber(aws.sagemaker()) as stubber:
        stubber.add_response("describe_training_job", job, {"TrainingJobName": name})
        response = invoke(training_handler, "train_status")
    assert response.status == 200 and response.body["reason"] == "drift"


# --------------------------------------------------------------------------------------------
# The gate
# --------------------------------------------------------------------------------------------


def test_a_challenger_better_on_the_old_test_split_but_worse_on_the_recent_window_is_refused() -> None:
    settings = Settings.from_env({"GATE_MIN_ACCURACY": "0.8", "GATE_MAX_DROP": "0.005"})
    champion = deployment.Champion("3", 0.90)
    poisoned = {
        "test_accuracy": 0.92,  # better than the champion on the fixed test split...
        "champion_test_accuracy": 0.90,
        "recent_accuracy": 0.71,  # ... but the poisoned rows taught it the new news wrong
        "champion_recent_accuracy": 0.84,
    }
    influence = {
        "honest": artifacts.Influence(rows=800, confident=500, disagreement=0.04),
        "mallory": artifacts.Influence(rows=800, confident=520, disagreement=0.93),
    }
    decision = deployment.gate(poisoned, champion, settings, influence=influence)
    assert not decision.approved
    assert decision.reason.startswith("recent feedback window accuracy 0.7100 is below the champion's 0.8400")
    assert decision.reason.endswith(
        "; labellers whose rows moved it: mallory (93% of 520 confident rows contradict the champion)"
    )  # not the honest labeller beside them
    close = influence | {"sloppy": artifacts.Influence(rows=90, confident=60, disagreement=0.6)}
    named = deployment.gate(poisoned, champion, settings, influence=close).reason
    assert named.index("mallory") < named.index("sloppy (60% of 60") and "honest" not in named
    # The trusted slice judges the same way; within GateMaxDrop everywhere it passes.
    trusted = poisoned | {
        "recent_accuracy": 0.85,
        "trusted_accuracy": 0.70,
        "champion_trusted_accuracy": 0.88,
    }
    assert deployment.gate(trusted, champion, settings).reason.startswith("trusted slice accuracy 0.7000")
    fine = trusted | {"trusted_accuracy": 0.88}
    assert deployment.gate(fine, champion, settings).approved
    # The champion scored in the same job on the test split counts too.
    worse = fine | {"test_accuracy": 0.905, "champion_test_accuracy": 0.93}
    assert deployment.gate(worse, champion, settings).reason.startswith("test split accuracy 0.9050")


def test_influence_is_read_from_the_archive_meta() -> None:
    meta = {"retraining": {"labellers": {"m": {"rows": 5, "confident": 4, "disagreement": 0.75}, "x": {}}}}
    assert artifacts._influence(meta) == {"m": artifacts.Influence(5, 4, 0.75)}


# --------------------------------------------------------------------------------------------
# Quarantine
# --------------------------------------------------------------------------------------------


def test_quarantine_file_is_the_shared_format(bucket: Any) -> None:
    since = datetime(2014, 6, 1, tzinfo=UTC)
    authority.write_quarantine(bucket, BUCKET, {"k1": authority.Quarantine("k1", since, "poison", T0)})
    document = json.loads(bucket.get_object(Bucket=BUCKET, Key="feedback/quarantine.json")["Body"].read())
    assert document == {
        "labellers": {
            "k1": {"since": "2014-06-01T00:00:00Z", "reason": "poison", "at": "2014-06-02T09:00:00Z"}
        }
    }
    assert authority.read_quarantine(bucket, BUCKET)["k1"].since == since
    with pytest.raises(ValueError, match="labellers"):
        authority.parse_quarantine({"nobody": 1})


def test_quarantine_marks_versions_trained_on_the_labeller_and_the_loop_skips_them(
    bucket: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from textclf.cli import main

    sm = aws.sagemaker()
    sm.create_model_package_group(ModelPackageGroupName="textclf-models")
    manifest = f"s3://{BUCKET}/feedback-sets/m.json"
    bucket.put_object(
        Bucket=BUCKET, Key="feedback-sets/m.json", Body=json.dumps({"feedback_per_labeller": {"mallory": 9}})
    )
    for meta in ({"feedback_manifest": manifest, "feedback_until": "2014-06-03T00:00:00Z"}, {}):
        sm.create_model_package(
            ModelPackageGroupName="textclf-models",
            InferenceSpecification={
                "Containers": [{"Image": "image", "ModelDataUrl": CHAMPION_DATA}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="Approved",
            CustomerMetadataProperties={"training_job": "textclf-1", **meta},
        )
    code = main(
        [
            "feedback",
            "quarantine",
            "--labeller",
            "mallory",
            "--reason",
            "poison",
            "--bucket",
            BUCKET,
            "--region",
            "us-east-1",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "version 1 of textclf-models trained on their labels" in out and "version 2" not in out
    settings = Settings.from_env({"MODEL_PACKAGE_GROUP": "textclf-models", "ENDPOINT_NAME": ENDPOINT})
    first, second = deployment.list_packages(settings)
    assert (
        first.metadata[deployment.QUARANTINED_KEY] == "mallory"
        and deployment.QUARANTINED_KEY not in second.metadata
    )
    assert first.metadata["feedback_manifest"] == manifest  # the rest of the metadata kept
    monkeypatch.setenv("MODEL_PACKAGE_GROUP", "textclf-models")
    outcome = deployment.on_model_package(
        {"ModelPackageGroupName": "textclf-models", "ModelPackageArn": first.arn}, settings
    )
    assert outcome.action == "ignored" and "quarantined" in outcome.reason
    assert main(["feedback", "list", "--json", "--bucket", BUCKET, "--region", "us-east-1"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["labellers"]["mallory"]["quarantined"]["reason"] == "poison"
    assert (
        main(["feedback", "release", "--labeller", "mallory", "--bucket", BUCKET, "--region", "us-east-1"])
        == 0
    )
    assert authority.read_quarantine(bucket, BUCKET) == {}
    assert (
        main(["feedback", "release", "--labeller", "mallory", "--bucket", BUCKET, "--region", "us-east-1"])
        == 2
    )


def test_the_stacks_retrain_request_sets_the_recipe(
    serving: deployment.Package,
    monkeypatch: pytest.MonkeyPatch,
    record: Callable[[Any, str], list[dict[str, Any]]],
) -> None:
    created = record(aws.sagemaker(), "CreateTrainingJob")
    monkeypatch.setenv("RETRAIN_REQUEST", '{"epochs": 1, "max_train_samples": 2000}')
    get_settings.cache_clear()
    assert retrain.handle_event(alarm_event(), get_settings()).action == "started"
    hyper = {k: json.loads(v) for k, v in created[0]["HyperParameters"].items()}
    assert (hyper["epochs"], hyper["max_train_samples"]) == (1, 2000)
    monkeypatch.setenv("RETRAIN_REQUEST", '{"epochs": 0}')
    get_settings.cache_clear()
    refused = retrain.handle_event(alarm_event(time="2014-06-20T00:00:00Z"), get_settings())
    assert refused.action == "skipped" and "RETRAIN_REQUEST" in refused.reason and len(created) == 1


def test_a_refused_start_ends_the_episode_and_an_aws_failure_is_retried(
    serving: deployment.Package, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textclf_api.errors import QuotaExceededError, ServiceUnavailableError
    from textclf_api.logic import training

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise QuotaExceededError("2 training jobs of this stack are running", retry_after=30)

    monkeypatch.setattr(training, "start_training_once", refuse)
    outcome = retrain.handle_event(alarm_event(), get_settings())
    assert outcome.action == "skipped" and "2 training jobs" in outcome.reason

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise ServiceUnavailableError("S3 is slow", retry_after=30)

    monkeypatch.setattr(training, "start_training_once", unavailable)
    with pytest.raises(ServiceUnavailableError):  # EventBridge retries the event
        retrain.handle_event(alarm_event(), get_settings())
