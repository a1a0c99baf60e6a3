"""The local stack's schedules, alarms and Lambda Invoke API: the monitor runs on a real timer, its
alarms are evaluated after each run, and a change into ALARM is put on the event bus once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from textclf import config
from textclf.local import events as bus_events
from textclf.local import template as tpl
from textclf.local.alarms import DETAIL_TYPE, SOURCE, LocalAlarms
from textclf.local.functions import LocalFunction
from textclf.local.schedule import LocalLambdaApi, LocalScheduler, rate_seconds
from textclf.local.stack import local_resources
from textclf.serving.capture import CaptureConfig, CaptureWriter

#: The rule the retraining function subscribes with (the alarms' contract): what the events must match.
RETRAIN_PATTERN = {
    "source": ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    "detail": {
        "alarmName": ["textclf-local-drift", "textclf-local-live-accuracy", "textclf-local-labels"],
        "state": {"value": ["ALARM"]},
    },
}


def test_rates_parse_like_eventbridge() -> None:
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 days)") == 172800
    for bad in ("rate(1 hours)", "rate(2 minute)", "cron(0 * * * ? *)", "rate(0 minutes)", "hourly"):
        with pytest.raises(ValueError):
            rate_seconds(bad)


@pytest.fixture
def alarms() -> Iterator[tuple[LocalAlarms, list[dict[str, Any]], Any]]:
    template = tpl.load_template(config.REPO_ROOT / "template.yaml")
    specs = tpl.alarms(template, local_resources("us-east-1", "b", {}))
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
        put: list[dict[str, Any]] = []

        def publish(source: str, detail_type: str, detail: dict[str, Any], arns: Any) -> dict[str, Any]:
            event = {"source": source, "detail-type": detail_type, "detail": detail, "resources": list(arns)}
            put.append(event)
            return event

        local = LocalAlarms(
            specs, cloudwatch, publish, namespace="textclf", region="us-east-1", account_id="1"
        )
        local.install()
        yield local, put, cloudwatch


def _state(cloudwatch: Any, name: str) -> str:
    return str(cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"])


def test_one_event_per_change_into_alarm(alarms: Any) -> None:
    local, put, cloudwatch = alarms
    # The template's three monitor alarms, not the endpoint's (another namespace, evaluated by SageMaker).
    assert {s.name for s in local.specs} == {
        "textclf-local-drift",
        "textclf-local-live-accuracy",
        "textclf-local-labels",
    }
    quiet = {"LabelPsi": 0.05, "LiveAccuracyCount": 10.0, "LabelsSinceTraining": 20.0}
    assert local.evaluate(quiet) == [] and _state(cloudwatch, "textclf-local-drift") == "OK"
    # No LiveAccuracy (too few labels): missing data, not breaching.
    assert _state(cloudwatch, "textclf-local-live-accuracy") == "OK"
    (fired,) = local.evaluate(quiet | {"LabelPsi": 0.31})
    assert _state(cloudwatch, "textclf-local-drift") == "ALARM"
    detail = fired["detail"]
    assert (
        (fired["source"], fired["detail-type"])
        == (SOURCE, DETAIL_TYPE)
        == ("aws.cloudwatch", "CloudWatch Alarm State Change")
    )
    assert detail["alarmName"] == "textclf-local-drift"
    assert detail["state"]["value"] == "ALARM" and detail["previousState"]["value"] == "OK"
    assert "LabelPsi 0.31" in detail["state"]["reason"]
    metric = detail["configuration"]["metrics"][0]["metricStat"]["metric"]
    assert metric == {"namespace": "textclf", "name": "LabelPsi", "dimensions": {"Stack": "textclf-local"}}
    assert fired["resources"] == ["arn:aws:cloudwatch:us-east-1:1:alarm:textclf-local-drift"]
    assert bus_events.matches(RETRAIN_PATTERN, fired)
    # Still drifting: no second event for the same episode.
    assert local.evaluate(quiet | {"LabelPsi": 0.5}) == []
    # It clears, then drifts again: a new episode, a new event.
    assert local.evaluate(quiet) == [] and _state(cloudwatch, "textclf-local-drift") == "OK"
    assert len(local.evaluate(quiet | {"LabelPsi": 0.25})) == 1
    # Accuracy below the floor (published only with enough labels) and the label count at the threshold.
    both = local.evaluate(quiet | {"LabelPsi": 0.25, "LiveAccuracy": 0.7, "LabelsSinceTraining": 1000.0})
    assert sorted(e["detail"]["alarmName"] for e in both) == [
        "textclf-local-labels",
        "textclf-local-live-accuracy",
    ]
    assert len(put) == 4


def test_the_lambda_invoke_api_answers_like_lambda() -> None:
    function = LocalFunction("MonitorFunction", "json.dumps", 10, 128)
    function._handler = lambda event, context: {"echo": event, "metrics": {}}
    failing = LocalFunction("Broken", "json.dumps", 10, 128)

    def broken(event: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    failing._handler = broken
    rule = tpl.ScheduleRule("MonitorFunction", "Schedule", "rate(1 hour)")
    seen: list[Any] = []
    scheduler = LocalScheduler([rule], {"MonitorFunction": function, "Broken": failing}, region="us-east-1",
                               after_run=lambda name, result: seen.append((name, result)))  # fmt: skip
    api = LocalLambdaApi(scheduler)
    status, _, body = api.dispatch("POST", "/2015-03-31/functions/MonitorFunction/invocations", b'{"a": 1}')
    assert status == 200 and json.loads(body)["echo"] == {"a": 1} and seen[0][0] == "MonitorFunction"
    status, headers, body = api.dispatch("POST", "/2015-03-31/functions/Broken/invocations", b"{}")
    assert (status, headers["X-Amz-Function-Error"], json.loads(body)["errorMessage"]) == (
        200,
        "Unhandled",
        "boom",
    )
    status, headers, body = api.dispatch("POST", "/2015-03-31/functions/Nope/invocations", b"{}")
    assert status == 404 and headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert api.dispatch("POST", "/2015-03-31/functions/MonitorFunction/invocations", b"{not json")[0] == 400
    assert len(seen) == 1  # after_run only for scheduled functions' runs


def _drifting_production(s3: Any, bucket: str, endpoint: str) -> None:
    """A served model whose baseline expects half and half, and a window that answers 'a' 19 times in 20."""
    from tests.unit.api.test_vocabulary import shipped_baseline

    published = f"{datetime.now(UTC) - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}"
    record = {"model_version": "1", "model_data": f"s3://{bucket}/models/local/model.tar.gz",
              "labels": ["a", "b"], "published_at": published}  # fmt: skip
    s3.put_object(Bucket=bucket, Key="serving/labels.json", Body=json.dumps(record))
    baseline = {"labels": ["a", "b"], "label_prior": {"a": 0.5, "b": 0.5}, "mean_top_probability": 0.9,
                "vocabulary_sketch": shipped_baseline().vocabulary_sketch(["one two"])}  # fmt: skip
    s3.put_object(Bucket=bucket, Key="models/local/baseline.json", Body=json.dumps(baseline))
    at = (datetime.now(UTC) - timedelta(minutes=3)).timestamp()
    writer = CaptureWriter(
        CaptureConfig(bucket=bucket, prefix="capture", sampling_percent=100),
        lambda b, key, body: s3.put_object(Bucket=b, Key=key, Body=body),
        endpoint_name=endpoint, variant="AllTraffic", flush_interval_s=3600, clock=lambda: at,
    )  # fmt: skip
    labels = ["a"] * 19 + ["b"]
    reply = {"predictions": [{"label": lab, "score": 0.95, "scores": {lab: 0.95}} for lab in labels],
             "labels": ["a", "b"], "model_version": "1"}  # fmt: skip
    writer.offer(json.dumps({"inputs": ["one two"] * 20}).encode(), "application/json",
                 json.dumps(reply).encode(), inference_id="f" * 32)  # fmt: skip
    writer.close()


@pytest.mark.heavy  # a whole local stack (~15 s to start on 2 cores) and a few monitor runs
def test_the_local_stack_runs_the_monitor_on_its_timer_and_fires_the_drift_alarm_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from textclf.commands import monitor as command
    from textclf.local.stack import LocalStack, StackOptions, state_file

    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path))
    stack = LocalStack(
        StackOptions(
            endpoint_url="http://127.0.0.1:9",
            api_port=0,
            watch_interval_s=60,
            schedule_interval_s=0.5,
            # Predictions of the window only: fewer folders to list on each tick.
            parameters={"MonitorLookbackHours": "0"},
        )
    )
    stack.start()
    try:
        assert stack.scheduler is not None and stack.control_plane is not None
        (rule,) = stack.scheduler.rules
        assert (rule.function, rule.expression) == ("MonitorFunction", "rate(1 hour)")  # the template's
        assert "MonitorFunction every 0.5 s" in stack.banner()
        s3 = stack.control_plane.client("s3")
        _drifting_production(s3, stack.options.bucket, stack.options.endpoint_name)
        deadline = time.monotonic() + 60
        while not stack.alarm_events and time.monotonic() < deadline:
            time.sleep(0.2)
        runs = stack.scheduler.runs
        (event,) = stack.alarm_events
        assert event["detail"]["alarmName"] == "textclf-local-drift"  # type: ignore[index]
        assert event["source"] == "aws.cloudwatch" and bus_events.matches(RETRAIN_PATTERN, event)
        latest = json.loads(
            s3.get_object(Bucket=stack.options.bucket, Key="monitoring/latest.json")["Body"].read()
        )
        assert latest["predictions"] == 20 and latest["metrics"]["LabelPsi"] > 0.2
        # Another tick while the drift lasts: no second event.
        while stack.scheduler.runs < runs + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stack.scheduler.runs > runs and len(stack.alarm_events) == 1
        # GET /monitor through the local API Gateway, and `textclf monitor --run-now --local`
        # through the local Lambda Invoke API.
        got = httpx.get(f"{stack.api.url}/monitor", timeout=30)  # type: ignore[union-attr]
        assert got.status_code == 200 and got.json()["stack"] == "textclf-local"
        state = state_file()
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(stack.state()))
        png = tmp_path / "monitor.png"
        args = command_args(["monitor", "--local", "--run-now", "--png", str(png)])
        assert command.run(args) == 0
        assert png.stat().st_size > 5000
    finally:
        stack.stop()


def command_args(argv: list[str]) -> Any:
    from textclf.cli import build_parser

    return build_parser().parse_args(argv)
