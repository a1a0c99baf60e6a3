"""Data capture of the local endpoint: SageMaker's file layout and line format, written off the
request path (a stalled store drops and counts, never blocks), flushed at close, sampled."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textclf_api.logic.deployment import data_capture_config
from textclf_api.settings import Settings

from textclf.serving.capture import CaptureConfig, CaptureWriter, DirectoryStore, uuid4_strings

ENDPOINT = "textclf"
#: SageMaker's layout under the destination: <endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
KEY = re.compile(
    rf"^capture/{ENDPOINT}/AllTraffic/(\d{{4}})/(\d{{2}})/(\d{{2}})/(\d{{2}})/[0-9a-f-]{{36}}\.jsonl$"
)
INFERENCE_ID = "0f8c2a9e4b7d4c1e9a3b5d7f1e2c4a6b"
REQUEST = json.dumps({"inputs": ["Fed raises rates", "Ébola spreads"]}, ensure_ascii=False).encode()
REPLY = json.dumps({"predictions": [{"label": "business"}], "labels": ["business", "health"]}).encode()


class MemoryStore:
    """Whole objects by key; optionally held (a stalled S3) or failing."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()
        self.fail = False

    def __call__(self, bucket: str, key: str, body: bytes) -> None:
        self.entered.set()
        assert self.open.wait(30)
        if self.fail:
            raise ConnectionError("S3 is down")
        self.objects[(bucket, key)] = body

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for body in self.objects.values() for line in body.decode().splitlines()]


def config(percent: float = 100.0) -> CaptureConfig:
    settings = Settings.from_env(
        {"BUCKET_NAME": "bucket", "ENDPOINT_NAME": ENDPOINT, "CAPTURE_SAMPLING_PERCENT": str(percent)}
    )
    parsed = CaptureConfig.from_data_capture_config(data_capture_config(settings))
    assert parsed is not None
    return parsed


def writer(store: Any, percent: float = 100.0, **kwargs: Any) -> CaptureWriter:
    return CaptureWriter(config(percent), store, endpoint_name=ENDPOINT, variant="AllTraffic", **kwargs)


def test_the_deploy_functions_capture_config_is_what_the_local_endpoint_reads() -> None:
    settings = Settings.from_env({"BUCKET_NAME": "bucket", "CAPTURE_SAMPLING_PERCENT": "25"})
    assert data_capture_config(settings) == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 25,
        "DestinationS3Uri": "s3://bucket/capture/",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    assert CaptureConfig.from_data_capture_config(data_capture_config(settings)) == CaptureConfig(
        bucket="bucket", prefix="capture", sampling_percent=25.0, json_content_types=("application/json",)
    )
    # 0 turns it off; serverless endpoints have none; a hand deploy (no bucket) writes none.
    assert (
        data_capture_config(Settings.from_env({"BUCKET_NAME": "b", "CAPTURE_SAMPLING_PERCENT": "0"})) is None
    )
    assert data_capture_config(Settings.from_env({"BUCKET_NAME": "b", "ENDPOINT_TYPE": "Serverless"})) is None
    assert data_capture_config(Settings.from_env({})) is None
    assert (
        CaptureConfig.from_data_capture_config({"EnableCapture": False, "InitialSamplingPercentage": 100})
        is None
    )


def test_a_line_has_sagemakers_fields_and_the_inference_id() -> None:
    store = MemoryStore()
    at = datetime(2014, 4, 1, 13, 59, 58, tzinfo=UTC).timestamp()
    capture = writer(store, clock=lambda: at)
    assert capture.offer(REQUEST, "application/json", REPLY, "application/json", INFERENCE_ID)
    assert capture.offer(b"\x00\xffbinary", "application/octet-stream", REPLY)  # no InferenceId sent
    capture.flush()
    ((bucket, key),) = store.objects
    assert bucket == "bucket"
    assert KEY.match(key) and KEY.match(key).groups() == ("2014", "04", "01", "13")  # type: ignore[union-attr]
    first, second = store.lines()
    assert set(first) == {"captureData", "eventMetadata", "eventVersion"}
    assert first["eventVersion"] == "0"
    assert first["captureData"] == {
        "endpointInput": {
            "observedContentType": "application/json",
            "mode": "INPUT",
            "data": REQUEST.decode(),  # JSON kept as text (CaptureContentTypeHeader)
            "encoding": "JSON",
        },
        "endpointOutput": {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": REPLY.decode(),
            "encoding": "JSON",
        },
    }
    metadata = first["eventMetadata"]
    assert set(metadata) == {"eventId", "inferenceId", "inferenceTime"}
    assert metadata["inferenceId"] == INFERENCE_ID
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", metadata["eventId"]
    )
    assert metadata["inferenceTime"] == "2014-04-01T13:59:58Z"
    # A type not listed as JSON is captured base64, as SageMaker does; no inference id, no field.
    assert second["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(second["captureData"]["endpointInput"]["data"]) == b"\x00\xffbinary"
    assert "inferenceId" not in second["eventMetadata"]
    assert second["eventMetadata"]["eventId"] != metadata["eventId"]


def test_records_go_to_the_folder_of_their_hour_one_whole_file_each() -> None:
    store = MemoryStore()
    times = iter(datetime(2014, 4, 1, h, 59, tzinfo=UTC).timestamp() for h in (13, 13, 14))
    capture = writer(store, clock=lambda: next(times))
    for _ in range(3):
        capture.offer(REQUEST, "application/json", REPLY)
    capture.flush()
    hours = sorted((KEY.match(key).group(4), body.count(b"\n")) for (_, key), body in store.objects.items())  # type: ignore[union-attr]
    assert hours == [("13", 2), ("14", 1)]


def test_a_stalled_store_never_blocks_an_offer_full_buffers_drop_and_count() -> None:
    store = MemoryStore()
    store.open.clear()  # S3 hangs
    capture = writer(store, max_buffered=100, flush_interval_s=0.01).start()
    capture.offer(REQUEST, "application/json", REPLY)
    assert store.entered.wait(10)  # the writer thread is stuck in the store with that record
    results: list[bool] = []
    offering = threading.Thread(
        target=lambda: results.extend(capture.offer(REQUEST, "x", REPLY) for _ in range(5000))
    )
    offering.start()
    offering.join(30)
    assert not offering.is_alive(), "an offer waited for the stalled store"
    assert results.count(True) == 100 and results.count(False) == 4900
    assert capture.stats.dropped == 4900
    store.open.set()  # S3 is back: what was buffered is written, the dropped are not
    capture.close()
    assert len(store.lines()) == 101
    assert capture.stats.written == 101 and capture.stats.lost == 0


def test_close_flushes_the_buffer_and_a_failed_store_is_retried() -> None:
    store = MemoryStore()
    capture = writer(store, flush_interval_s=3600).start()  # only close() flushes
    for i in range(7):
        capture.offer(REQUEST, "application/json", REPLY, inference_id=f"{i:032x}")
    store.fail = True
    capture.flush()
    assert store.objects == {} and capture.stats.failed_writes == 1
    store.fail = False
    capture.close()
    assert sorted(line["eventMetadata"]["inferenceId"] for line in store.lines()) == [
        f"{i:032x}" for i in range(7)
    ]
    assert capture.stats.written == 7 and capture.stats.files == 1


def test_files_a_dead_store_cannot_take_are_bounded_and_counted() -> None:
    store = MemoryStore()
    store.fail = True
    capture = writer(store, max_buffered=10)
    for _ in range(3):
        for _ in range(4):
            capture.offer(REQUEST, "application/json", REPLY)
        capture.flush()
    # 12 records waited in 3 files; the oldest file went once they passed the bound.
    assert capture.stats.lost == 4 and capture.stats.written == 0


@pytest.mark.parametrize("percent", [1, 30, 100])
def test_sampling_takes_the_configured_share(percent: int) -> None:
    store = MemoryStore()
    capture = writer(store, percent, seed=20, max_buffered=20_000)
    n = 20_000
    taken = sum(capture.offer(REQUEST, "application/json", REPLY) for _ in range(n))
    # Binomial: within 5 standard deviations of n * p (a fixed seed makes it the same every run).
    p = percent / 100
    assert abs(taken - n * p) <= 5 * (n * p * (1 - p)) ** 0.5 + 1e-9
    assert capture.stats.sampled_out == n - taken
    capture.flush()
    assert len(store.lines()) == taken


def test_event_ids_are_distinct_version_4_uuids() -> None:
    ids = uuid4_strings(1000)
    assert len(set(ids)) == 1000
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)


def test_the_directory_store_writes_each_file_whole(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    capture = CaptureWriter(
        CaptureConfig(bucket="", prefix="", sampling_percent=100),
        store,
        endpoint_name=ENDPOINT,
        variant="AllTraffic",
    )
    capture.offer(REQUEST, "application/json", REPLY, inference_id=INFERENCE_ID)
    capture.flush()
    (path,) = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert path.relative_to(tmp_path).parts[:2] == (ENDPOINT, "AllTraffic") and path.suffix == ".jsonl"
    assert json.loads(path.read_text())["eventMetadata"]["inferenceId"] == INFERENCE_ID
