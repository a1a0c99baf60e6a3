"""The monitor over real capture (the endpoint's CaptureWriter) and feedback lines (POST
/feedback's format) in moto's S3: every figure of the report checked against a hand computation."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from scipy import stats
from textclf_api import aws
from textclf_api.handlers import monitor as handler
from textclf_api.logic import deployment, monitor, production
from textclf_api.logic.feedback import ground_truth_line
from textclf_api.schemas import MONITOR_LATEST_KEY, QUARANTINE_KEY, SERVING_LABELS_KEY
from textclf_api.settings import get_settings

from textclf.serving.capture import CaptureConfig, CaptureWriter

from .conftest import BUCKET, ENDPOINT, FakeLambdaContext
from .test_vocabulary import shipped_baseline

END = datetime(2014, 5, 1, 12, 0, 0, tzinfo=UTC)
MODEL_DATA = f"s3://{BUCKET}/models/0123456789abcdef/model.tar.gz"


def _at(hh: int, mm: int) -> datetime:
    return datetime(2014, 5, 1, hh, mm, tzinfo=UTC)


def _capture(s3: Any, when: datetime, inference_id: str, answers: list[tuple[str, str, float]]) -> None:
    """One invocation answered at ``when``: (text, label, score) per input."""
    writer = CaptureWriter(
        CaptureConfig(bucket=BUCKET, prefix="capture", sampling_percent=100),
        lambda bucket, key, body: s3.put_object(Bucket=bucket, Key=key, Body=body),
        endpoint_name=ENDPOINT, variant="AllTraffic", flush_interval_s=3600, clock=when.timestamp,
    )  # fmt: skip
    reply = {
        "predictions": [{"label": lab, "score": sc, "scores": {lab: sc}} for _, lab, sc in answers],
        "labels": ["a", "b"],
        "model_version": "3",
    }
    writer.offer(json.dumps({"inputs": [t for t, _, _ in answers]}).encode(), "application/json",
                 json.dumps(reply).encode(), inference_id=inference_id)  # fmt: skip
    writer.close()


def _feedback(s3: Any, lines: list[tuple[str, str, str, datetime]]) -> None:
    for i, (pid, label, labeller, when) in enumerate(lines):
        key = f"ground-truth/{when:%Y/%m/%d/%H}/{i:04d}.jsonl"
        s3.put_object(Bucket=BUCKET, Key=key, Body=ground_truth_line(pid, label, labeller, monitor.iso(when)))


@pytest.fixture
def production_window(bucket: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MONITOR_MIN_LABELS", "2")
    monkeypatch.setenv("STACK_NAME", "textclf-test-stack")
    get_settings.cache_clear()
    s3 = aws.s3()
    s3.put_object(Bucket=BUCKET, Key=SERVING_LABELS_KEY, Body=json.dumps({
        "model_version": "3", "model_data": MODEL_DATA, "labels": ["a", "b"],
        "published_at": "2014-05-01T10:00:00+00:00"}))  # fmt: skip
    base = shipped_baseline()
    record = {
        "labels": ["a", "b"],
        "label_prior": {"a": 0.5, "b": 0.5},
        "mean_top_probability": 0.9,
        "token_length_quantiles": {"p50": 2.0, "p90": 2.0, "p99": 2.0},
        "vocabulary_sketch": base.vocabulary_sketch(["Alpha beta", "gamma"]),
        "rows": 2,
        "source": "validation",
    }
    s3.put_object(Bucket=BUCKET, Key="models/0123456789abcdef/baseline.json", Body=json.dumps(record))
    _capture(s3, _at(10, 30), "old", [("alpha", "a", 0.95)])  # before the window, within the lookback
    _capture(
        s3, _at(11, 10), "w1", [("alpha beta", "a", 0.95), ("gamma delta", "b", 0.6), ("alpha", "a", 0.95)]
    )
    _capture(s3, _at(11, 20), "w2", [("beta", "a", 0.8)])
    _capture(s3, _at(12, 0), "next", [("after the window", "b", 0.99)])  # the next window's
    # A monitor that crashed elsewhere, or a writer cut mid-line: a torn file in the window.
    s3.put_object(
        Bucket=BUCKET, Key=f"capture/{ENDPOINT}/AllTraffic/2014/05/01/11/torn.jsonl", Body=b'{"captureData"'
    )
    quarantined = {"mallory": {"since": None, "reason": "test", "at": "2014-05-01T09:00:00Z"}}
    s3.put_object(Bucket=BUCKET, Key=QUARANTINE_KEY, Body=json.dumps({"labellers": quarantined}))
    _feedback(s3, [
        ("old-0", "a", "alice", _at(11, 5)),
        ("w1-0", "a", "alice", _at(11, 15)),
        ("w1-1", "a", "alice", _at(11, 16)),
        ("w1-0", "b", "bob", _at(11, 30)),  # later: its label wins
        ("unknown-0", "a", "alice", _at(11, 40)),  # an id the capture never saw
        ("w1-2", "b", "mallory", _at(11, 45)),  # quarantined
        ("w2-0", "a", "carol", _at(10, 50)),  # before the window, after the model started serving
        ("w2-0", "a", "carol", _at(9, 50)),  # before the model served: not new to it
    ])  # fmt: skip
    return s3


def test_a_window_of_production_is_reported_with_hand_computed_figures(production_window: Any) -> None:
    clients = monitor.Clients(production_window, aws.sagemaker(), aws.cloudwatch())
    report = monitor.run(get_settings(), END + timedelta(seconds=42), clients)

    assert (report.window.start, report.window.end) == (_at(11, 0), END)
    assert report.model_version == "3" and report.baseline_available
    assert report.predictions == 4
    assert report.capture["unreadable"] == 1  # the torn line, skipped
    drift = report.label_drift
    assert drift.counts == {"a": 3, "b": 1} and drift.shares == {"a": 0.75, "b": 0.25}
    assert drift.psi == pytest.approx(0.25 * math.log(1.5) + 0.25 * math.log(2))
    assert (drift.chi_square, drift.chi_square_dof) == (pytest.approx(1.0), 1)
    assert drift.chi_square_p == pytest.approx(stats.chi2.sf(1.0, 1))
    assert report.confidence.mean_top_probability == pytest.approx(0.825)
    assert report.confidence.drop == pytest.approx(0.075)
    # Tokens alpha beta gamma delta alpha beta; training saw all but "delta".
    assert (report.novelty.unseen, report.novelty.tokens, report.novelty.share) == (
        1,
        6,
        pytest.approx(1 / 6),
    )

    live = report.live
    # old-0 (a, right), w1-0 (bob's b, wrong), w1-1 (a, model b: wrong); unknown-0 unjoined; mallory out.
    assert (live.labels, live.joined, live.unknown_ids, live.quarantined) == (4, 3, 1, 1)
    assert live.accuracy == pytest.approx(1 / 3) and live.published
    assert live.macro_f1 == pytest.approx(0.25)
    assert (live.wilson_low, live.wilson_high) == pytest.approx(
        tuple(stats.binomtest(1, 3).proportion_ci(method="wilson"))
    )
    since = report.labels_since_training
    # Since the model started serving (no registry here): w2-0 old-0 w1-0 w1-1 unknown-0.
    assert (since.count, since.since, since.since_source) == (5, _at(10, 0), "published_at")

    by_name = {row.labeller: row for row in report.labellers}
    assert set(by_name) == {"alice", "bob", "mallory"}  # carol labelled before the window
    alice, bob, mallory = by_name["alice"], by_name["bob"], by_name["mallory"]
    assert (alice.labels, alice.confident, alice.disagree_with_confident) == (4, 2, 0)
    assert (bob.confident, bob.disagreement_rate) == (1, 1.0)
    assert (alice.shared_with_others, alice.agreement_with_others) == (1, 0.0)
    assert mallory.quarantined and not alice.quarantined
    assert not any(row.flagged for row in report.labellers)  # too few labels to judge

    assert report.metrics == {
        "Predictions": 4.0,
        "LabelPsi": pytest.approx(drift.psi),
        "LabelChiSquareP": pytest.approx(drift.chi_square_p),
        "MeanTopProbability": pytest.approx(0.825),
        "Novelty": pytest.approx(1 / 6),
        "LiveAccuracy": pytest.approx(1 / 3),
        "LiveAccuracyCount": 3.0,
        "FeedbackLabels": 4.0,
        "LabelsSinceTraining": 5.0,
    }
    # Stored twice (the window's own key, and latest) and published under the stack's dimension.
    stored = json.loads(
        production_window.get_object(Bucket=BUCKET, Key="monitoring/reports/2014-05-01T12:00:00Z.json")[
            "Body"
        ].read()
    )
    assert stored == json.loads(
        production_window.get_object(Bucket=BUCKET, Key=MONITOR_LATEST_KEY)["Body"].read()
    )
    assert stored["metrics"]["LabelPsi"] == pytest.approx(drift.psi)
    listed = aws.cloudwatch().list_metrics(Namespace="textclf")["Metrics"]
    assert {m["MetricName"] for m in listed} == set(report.metrics)
    assert all(m["Dimensions"] == [{"Name": "Stack", "Value": "textclf-test-stack"}] for m in listed)

    # A second run over the same window (a retry after a crash) counts nothing twice.
    again = monitor.run(get_settings(), END + timedelta(seconds=50), clients)
    assert again.metrics == report.metrics


def test_accuracy_is_not_published_below_the_label_floor(
    production_window: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_MIN_LABELS", "4")
    get_settings.cache_clear()
    report = monitor.build_report(
        get_settings(), END, monitor.Clients(production_window, aws.sagemaker(), aws.cloudwatch())
    )
    assert report.live.joined == 3 and not report.live.published
    assert "LiveAccuracy" not in report.metrics and report.metrics["LiveAccuracyCount"] == 3.0


def _registry(
    monkeypatch: pytest.MonkeyPatch, versions: dict[str, tuple[Literal["Approved", "Rejected"], str]]
) -> Any:
    """The stack's model package group with ``versions`` (version -> approval, feedback_until or
    ""), registered in order; returns the SageMaker client."""
    group = "textclf-models-test"
    monkeypatch.setenv("MODEL_PACKAGE_GROUP", group)
    get_settings.cache_clear()
    sagemaker = aws.sagemaker()
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    for status, until in versions.values():
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            InferenceSpecification={"Containers": [{"Image": "img", "ModelDataUrl": MODEL_DATA}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]},
            CustomerMetadataProperties={"feedback_until": until} if until else {},
            ModelApprovalStatus=status,
        )  # fmt: skip
    return sagemaker


def _labels_since(s3: Any, sagemaker: Any) -> tuple[Any, str, int]:
    report = monitor.build_report(get_settings(), END, monitor.Clients(s3, sagemaker, aws.cloudwatch()))
    since = report.labels_since_training
    return since.since, since.since_source, since.count


def test_labels_count_from_the_serving_packages_feedback_until(
    production_window: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    approved: tuple[Literal["Approved"], str] = ("Approved", "")
    sagemaker = _registry(
        monkeypatch, {"1": approved, "2": approved, "3": ("Approved", "2014-05-01T11:20:00Z")}
    )
    # After 11:20: w1-0 (bob), unknown-0 (mallory's w1-2 is quarantined).
    assert _labels_since(production_window, sagemaker) == (_at(11, 20), "feedback_until", 2)


def test_labels_a_later_refused_retrain_took_are_not_counted_again(
    production_window: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    approved: tuple[Literal["Approved"], str] = ("Approved", "")
    sagemaker = _registry(monkeypatch, {
        "1": approved, "2": approved, "3": ("Approved", "2014-05-01T10:00:00Z"),
        "4": ("Rejected", "2014-05-01T11:20:00Z"), "5": ("Rejected", ""),
    })  # fmt: skip
    # Version 3 serves; 4, a retrain, was refused having taken labels until 11:20; 5 took none.
    assert _labels_since(production_window, sagemaker) == (_at(11, 20), "later_retrain", 2)
    # A version before the serving one moves nothing.
    production_window.put_object(Bucket=BUCKET, Key=SERVING_LABELS_KEY, Body=json.dumps({
        "model_version": "4", "model_data": MODEL_DATA, "labels": ["a", "b"],
        "published_at": "2014-05-01T10:00:00+00:00"}))  # fmt: skip
    assert _labels_since(production_window, sagemaker) == (_at(11, 20), "feedback_until", 2)
    production_window.put_object(Bucket=BUCKET, Key=SERVING_LABELS_KEY, Body=json.dumps({
        "model_version": "3", "model_data": MODEL_DATA, "labels": ["a", "b"],
        "published_at": "2014-05-01T10:00:00+00:00"}))  # fmt: skip
    sagemaker.update_model_package(
        ModelPackageArn=deployment.find_package("4", get_settings(), sagemaker).arn,  # type: ignore[union-attr]
        CustomerMetadataProperties={"feedback_until": "2014-05-01T09:00:00Z"},
    )
    # A later retrain whose labels end before the serving model's: the serving model's count.
    assert _labels_since(production_window, sagemaker) == (_at(10, 0), "feedback_until", 5)


def test_a_labeller_who_contradicts_confident_answers_is_flagged() -> None:
    t = _at(11, 0)
    known = {f"p{i}-0": production.Prediction(f"p{i}-0", "x", "a", 0.97, "3", t) for i in range(80)}
    items = []
    for i in range(80):
        items.append(production.GroundTruth(f"p{i}-0", "b" if i < 4 else "a", "honest-1", t))
        items.append(production.GroundTruth(f"p{i}-0", "b" if 10 <= i < 16 else "a", "honest-2", t))
        if i < 60:
            items.append(production.GroundTruth(f"p{i}-0", "b" if i % 3 else "a", "poisoner", t))
    rows = {r.labeller: r for r in monitor.labeller_agreement(items, known, {})}
    assert rows["poisoner"].flagged and rows["poisoner"].disagreement_rate == pytest.approx(40 / 60)
    assert "contradicts 67%" in str(rows["poisoner"].reason)
    assert not rows["honest-1"].flagged and not rows["honest-2"].flagged
    # Agreement with others: honest-1 and honest-2 agree on 70 of 80 items, the poisoner less.
    assert rows["poisoner"].agreement_with_others is not None
    assert rows["poisoner"].agreement_with_others < rows["honest-1"].agreement_with_others  # type: ignore[operator]


def test_get_monitor_answers_404_before_the_first_run_then_the_report(
    production_window: Any, invoke: Any
) -> None:
    context = {"requestId": "r1", "resourcePath": "/monitor", "httpMethod": "GET"}
    event = {
        "httpMethod": "GET",
        "path": "/monitor",
        "resource": "/monitor",
        "headers": {},
        "requestContext": context,
    }
    missing = invoke(handler, event)
    assert missing.status == 404 and "no monitor report yet" in missing.body["message"]
    ran = handler.lambda_handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, FakeLambdaContext()
    )
    assert ran["window"]["minutes"] == 60
    found = invoke(handler, event)
    assert found.status == 200 and found.body["window"] == ran["window"]
