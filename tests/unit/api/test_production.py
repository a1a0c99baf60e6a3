"""The one reader of capture and ground truth, fed by the real writers (the local endpoint's capture
writer and POST /feedback's line format) through S3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from textclf_api import aws
from textclf_api.logic import production
from textclf_api.logic.feedback import ground_truth_line

from textclf.serving.capture import CaptureConfig, CaptureWriter

from .conftest import BUCKET

T0 = datetime(2014, 5, 1, 10, 59, 58, tzinfo=UTC)


def _reply(labels: list[str]) -> bytes:
    answers = [{"label": lab, "score": 0.9, "scores": {lab: 0.9}} for lab in labels]
    return json.dumps({"predictions": answers, "labels": ["a", "b"], "model_version": "v1"}).encode()


def _write_capture(s3: Any, clock: list[float]) -> CaptureWriter:
    config = CaptureConfig(bucket=BUCKET, prefix="capture", sampling_percent=100)
    writer = CaptureWriter(
        config,
        lambda bucket, key, body: s3.put_object(Bucket=bucket, Key=key, Body=body),
        endpoint_name="ep",
        variant="AllTraffic",
        flush_interval_s=3600,
        clock=lambda: clock[0],
    )
    return writer


def test_predictions_and_labels_join_across_hours_and_files(bucket: Any) -> None:
    s3 = aws.s3()
    clock = [T0.timestamp()]
    writer = _write_capture(s3, clock)
    writer.offer(json.dumps({"inputs": ["x one", "x two"]}).encode(), "application/json",
                 _reply(["a", "b"]), inference_id="id1")  # fmt: skip
    writer.offer(json.dumps({"inputs": "x three"}).encode(), "application/json",
                 _reply(["b"]), inference_id="id2")  # fmt: skip
    writer.offer(b'{"inputs": "no id"}', "application/json", _reply(["a"]))  # a call without InferenceId
    writer.flush()
    clock[0] += 3.0  # the next hour: another folder
    writer.offer(b'{"inputs": "x four"}', "application/json", _reply(["a"]), inference_id="id3")
    writer.close()
    # A crash mid-write elsewhere left a torn line in a file of its own.
    s3.put_object(
        Bucket=BUCKET, Key="capture/ep/AllTraffic/2014/05/01/11/torn.jsonl", Body=b'{"captureData": {'
    )

    gt = [
        ground_truth_line("id1-0", "b", "alice", "2014-05-01T11:00:00.000Z"),
        ground_truth_line("id1-0", "a", "bob", "2014-05-01T11:30:00.000Z"),  # later: wins
        ground_truth_line("id3-0", "b", "alice", "2014-05-01T11:10:00.000Z"),
        ground_truth_line("unknown-0", "a", "alice", "2014-05-01T11:10:00.000Z"),
    ]
    # Newest first in one file, oldest in another: the latest received wins whatever the order.
    s3.put_object(Bucket=BUCKET, Key="ground-truth/2014/05/01/11/b.jsonl", Body=gt[1].encode())
    s3.put_object(Bucket=BUCKET, Key="ground-truth/2014/05/01/11/a.jsonl",
                  Body=(gt[0] + gt[2] + gt[3] + "{torn").encode())  # fmt: skip

    stats = production.ReadStats()
    end = T0 + timedelta(hours=2)
    seen = list(production.captured(s3, BUCKET, "ep", start=T0, end=end, stats=stats))
    assert [(p.prediction_id, p.text, p.label) for p in seen] == [
        ("id1-0", "x one", "a"), ("id1-1", "x two", "b"), ("id2-0", "x three", "b"), ("id3-0", "x four", "a"),
    ]  # fmt: skip
    assert {p.model_version for p in seen} == {"v1"}
    assert seen[-1].time == datetime(2014, 5, 1, 11, 0, 1, tzinfo=UTC)
    assert stats.without_id == 1 and stats.unreadable == 1 and stats.files == 3

    labels = production.latest_labels(production.ground_truth(s3, BUCKET, start=T0, end=end, stats=stats))
    assert stats.unreadable == 2  # the torn ground-truth line too
    assert {k: (v.label, v.labeller) for k, v in labels.items()} == {
        "id1-0": ("a", "bob"), "id3-0": ("b", "alice"), "unknown-0": ("a", "alice"),
    }  # fmt: skip
    joined = production.join(seen + seen[:1], labels)  # captured twice: counts once
    assert sorted((p.prediction_id, p.label, g.label) for p, g in joined) == [
        ("id1-0", "a", "a"), ("id3-0", "a", "b"),
    ]  # fmt: skip

    # Only the range asked for: the first hour alone holds id1 and id2.
    later = T0 + timedelta(seconds=2)
    first = list(production.captured(s3, BUCKET, "ep", start=T0, end=later, stats=production.ReadStats()))
    assert {p.prediction_id for p in first} == {"id1-0", "id1-1", "id2-0"}


def test_explanations_and_base64_bodies_are_read() -> None:
    import base64

    reply = {"label": "b", "score": 0.7, "model_version": "v2", "tokens": []}
    line = json.dumps(
        {
            "captureData": {
                "endpointInput": {"data": base64.b64encode(b'{"inputs": "hi", "explain": true}').decode(),
                                  "encoding": "BASE64", "mode": "INPUT"},
                "endpointOutput": {"data": json.dumps(reply), "encoding": "JSON", "mode": "OUTPUT"},
            },
            "eventMetadata": {"eventId": "e", "inferenceId": "abc", "inferenceTime": "2014-05-01T10:00:00Z"},
            "eventVersion": "0",
        }
    )  # fmt: skip
    (p,) = production.parse_capture_line(line)
    assert (p.prediction_id, p.text, p.label, p.score, p.model_version) == ("abc-0", "hi", "b", 0.7, "v2")


def test_hour_prefixes_cover_the_range() -> None:
    start = datetime(2014, 5, 31, 23, 30, tzinfo=UTC)
    assert production.hour_prefixes("g/", start, start + timedelta(hours=1)) == [
        "g/2014/05/31/23/", "g/2014/06/01/00/",
    ]  # fmt: skip
    assert production.hour_prefixes("g/", start, start) == []
    # Whole days, months and years inside a long range are one folder each.
    long = production.hour_prefixes("g/", start, datetime(2016, 3, 2, 1, 10, tzinfo=UTC))
    assert long == [
        "g/2014/05/31/23/", "g/2014/06/", "g/2014/07/", "g/2014/08/", "g/2014/09/", "g/2014/10/",
        "g/2014/11/", "g/2014/12/", "g/2015/", "g/2016/01/", "g/2016/02/", "g/2016/03/01/",
        "g/2016/03/02/00/", "g/2016/03/02/01/",
    ]  # fmt: skip
