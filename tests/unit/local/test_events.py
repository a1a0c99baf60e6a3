"""The local EventBridge: the template's rules, matched as EventBridge matches, delivered to the
handlers asynchronously with Lambda's retries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from textclf import config
from textclf.local import template as tpl
from textclf.local.events import LocalEventBus, check_pattern, matches
from textclf.local.stack import local_resources

EVENTS = config.REPO_ROOT / "events" / "eventbridge"


def rules(**parameters: str) -> list[tpl.EventRule]:
    template = tpl.load_template(config.REPO_ROOT / "template.yaml")
    return tpl.event_rules(template, local_resources("us-east-1", "b", parameters))


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.stem)
def test_every_sample_event_reaches_its_function(path: Path) -> None:
    """events/eventbridge/ holds real event shapes; with the template's defaults each one matches
    exactly the rule of the function it is for (what `textclf invoke <Function> -e` sends)."""
    event = json.loads(path.read_text())
    if "alarmName" in event["detail"]:
        # The sample is a stack named textclf's; the local stack's alarms are textclf-local-*.
        assert not [r for r in rules() if matches(r.pattern, event)]
        event["detail"]["alarmName"] = event["detail"]["alarmName"].replace("textclf-", "textclf-local-", 1)
    matched = [(r.function, r.name) for r in rules() if matches(r.pattern, event)]
    expected = {
        "training_job_completed": ("DeployFunction", "TrainingJobEnded"),
        "training_job_failed": ("DeployFunction", "TrainingJobEnded"),
        "model_package_approved": ("DeployFunction", "ModelVersionApproved"),
        "endpoint_in_service": ("DeployFunction", "EndpointStateChanged"),
        "alarm_labels": ("RetrainFunction", "MonitorAlarm"),
    }[path.stem]
    assert matched == [expected]


def test_patterns_filter_what_the_function_must_not_see() -> None:
    completed = json.loads((EVENTS / "training_job_completed.json").read_text())
    rule = next(r for r in rules() if r.name == "TrainingJobEnded")
    other_stack = json.loads(json.dumps(completed))
    other_stack["detail"]["TrainingJobName"] = "someone-else-20250101-000000-aaaaaa"
    running = json.loads(json.dumps(completed))
    running["detail"]["TrainingJobStatus"] = "InProgress"
    assert matches(rule.pattern, completed)
    assert not matches(rule.pattern, other_stack)  # {"prefix": "textclf-"}
    assert not matches(rule.pattern, running)
    # Parameters reach the patterns: another job prefix, another endpoint.
    renamed = next(r for r in rules(TrainingJobPrefix="team-a") if r.name == "TrainingJobEnded")
    assert not matches(renamed.pattern, completed)
    endpoint = next(r for r in rules(EndpointName="other") if r.name == "EndpointStateChanged")
    assert not matches(endpoint.pattern, json.loads((EVENTS / "endpoint_in_service.json").read_text()))


def test_only_the_stacks_monitor_alarms_in_alarm_reach_the_retrain_function() -> None:
    event = json.loads((EVENTS / "alarm_labels.json").read_text())
    (rule,) = [r for r in rules() if r.function == "RetrainFunction"]
    for name in ("drift", "live-accuracy", "labels"):
        event["detail"]["alarmName"] = f"textclf-local-{name}"
        assert matches(rule.pattern, event)
        event["detail"]["state"]["value"] = "OK"
        assert not matches(rule.pattern, event)
        event["detail"]["state"]["value"] = "ALARM"
    event["detail"]["alarmName"] = "textclf-local-endpoint-5xx"  # a rollback guardrail, not a monitor alarm
    assert not matches(rule.pattern, event)


def test_unsupported_operators_are_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="supports only"):
        check_pattern({"detail": {"x": [{"numeric": [">", 1]}]}}, "Fn.Rule")
    with pytest.raises(ValueError, match="must be a list or an object"):
        check_pattern({"source": "aws.sagemaker"}, "Fn.Rule")


def test_delivery_is_asynchronous_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def flaky(event: dict[str, Any], context: Any) -> dict[str, str]:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return {"ok": context.function_name}

    import textclf.local.events as events_module

    monkeypatch.setattr(events_module.time, "sleep", lambda _s: None)
    rule = tpl.EventRule("Fn", "Rule", {"source": ["aws.sagemaker"], "detail-type": ["X"]})
    spec = tpl.FunctionSpec("Fn", "tests.unit.local.test_events.flaky_handler", 5, 128)
    bus = LocalEventBus([rule], [spec], region="eu-west-1")
    bus.functions["Fn"]._handler = flaky
    bus.start()
    try:
        event = bus.put("X", {"a": 1}, ["arn:x"])
        bus.put("Y", {"a": 2})  # no rule: nobody is called
        assert bus.wait_idle(10)
    finally:
        bus.stop()
    assert [c["id"] for c in calls] == [event["id"], event["id"]]  # retried once, same event
    assert event["region"] == "eu-west-1" and event["source"] == "aws.sagemaker"
    assert bus.delivered == [("Fn", event, {"ok": "Fn"})]
