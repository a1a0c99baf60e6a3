"""The local endpoint's HTTP contract, with a tiny real model: SageMaker shapes, 503 when full."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config

from tests.helpers.tiny_model import make_tiny_model_dir
from textclf.errors import UserError
from textclf.labels import LABELS
from textclf.serving.batcher import MicroBatcher
from textclf.serving.endpoint import LocalEndpoint, ServingModel
from textclf.serving.model_store import extract_archive, resolve_model_dir
from textclf.serving.net import bind_socket
from textclf.serving.servers import ServerThread

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

ENDPOINT = "unit-endpoint"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.tar.gz from ``textclf package`` (torch runtime) of an untrained tiny model."""
    from textclf.packaging import build_package

    root = tmp_path_factory.mktemp("archive")
    model_dir = make_tiny_model_dir(root / "model")
    return build_package(model_dir, root / "model.tar.gz", runtime="torch", echo=lambda _line: None).out


@pytest.fixture(scope="module")
def model(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingModel]:
    import torch

    # One intra-op thread for a hidden-size-32 model (more only adds synchronisation), and
    # torch's process-wide setting restored for the tests that run after this module.
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEXTCLF_NUM_THREADS", "1")
        loaded = ServingModel.load(extract_archive(archive, cache=tmp_path_factory.mktemp("cache")))
    try:
        yield loaded
    finally:
        torch.set_num_threads(threads)


class Gate:
    """Wraps predict so a test can hold the inference thread and fill the queue."""

    def __init__(self, model: ServingModel) -> None:
        self.model = model
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()

    def __call__(self, texts: list[str]) -> list[Any]:
        self.entered.set()
        assert self.open.wait(10)
        return self.model.predict(texts)


@dataclass
class Served:
    url: str
    gate: Gate
    batcher: MicroBatcher
    endpoint: LocalEndpoint


@pytest.fixture
def served(model: ServingModel) -> Iterator[Served]:
    gate = Gate(model)
    batcher = MicroBatcher(gate, max_batch_size=4, max_wait_ms=1, max_queue_texts=8).start()
    endpoint = LocalEndpoint(model, batcher, endpoint_name=ENDPOINT)
    server = ServerThread(endpoint.app, bind_socket("127.0.0.1", 0, what="endpoint", flag="--port"), name="t")
    server.start()
    try:
        yield Served(server.url, gate, batcher, endpoint)
    finally:
        gate.open.set()
        server.stop()
        batcher.close()


def _runtime(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_archive_is_extracted_once_per_content(archive: Path, tmp_path: Path) -> None:
    first = extract_archive(archive, cache=tmp_path)
    assert (first / "code" / "inference.py").is_file() and (first / "config.json").is_file()
    marker = first / "marker"
    marker.write_text("kept")
    assert extract_archive(archive, cache=tmp_path) == first and marker.exists()


def test_a_missing_model_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no model at"):
        resolve_model_dir(tmp_path / "absent.tar.gz")
    with pytest.raises(UserError, match="not a tar archive"):
        (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
        resolve_model_dir(tmp_path / "junk.tar.gz")


def test_package_records_the_archives_sha256_beside_it(archive: Path) -> None:
    from textclf.hashing import recorded_checksum, sha256_file

    assert recorded_checksum(archive) == sha256_file(archive)
    assert (archive.parent / "model.tar.gz.sha256").read_text().endswith("  model.tar.gz\n")  # sha256sum -c


@pytest.mark.parametrize("cut", [40, 4000], ids=["trailer", "middle"])
def test_a_truncated_archive_is_refused_in_one_line(
    archive: Path, tmp_path: Path, cut: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from textclf.cli import main

    data = archive.read_bytes()
    cut_copy = tmp_path / "model.tar.gz"
    cut_copy.write_bytes(data[: len(data) - cut])  # no recorded digest beside it
    with pytest.raises(UserError, match="corrupt or truncated"):
        extract_archive(cut_copy, cache=tmp_path / "cache")
    # What a user sees from `textclf serve-endpoint`: one line, no traceback.
    code = main(["serve-endpoint", "--model", str(cut_copy), "--port", "0"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "corrupt or truncated" in err


def test_an_archive_changed_after_packaging_is_refused(archive: Path, tmp_path: Path) -> None:
    from textclf.hashing import checksum_path

    copy = tmp_path / "model.tar.gz"
    copy.write_bytes(archive.read_bytes() + b"\0" * 512)  # still a valid tar.gz stream? irrelevant
    checksum_path(copy).write_text(checksum_path(archive).read_text())
    with pytest.raises(UserError, match="does not match its recorded sha256"):
        resolve_model_dir(copy)
    # ... and what the local control plane asks for by S3's checksum is checked the same way.
    with pytest.raises(UserError, match="does not match its recorded sha256"):
        resolve_model_dir(archive, expected_sha256="0" * 64)


def test_container_contract(served: Served) -> None:
    url = served.url
    assert httpx.get(f"{url}/ping").status_code == 200
    ok = httpx.post(f"{url}/invocations", json={"inputs": ["a headline", "another one"]})
    assert ok.status_code == 200
    predictions = ok.json()["predictions"]
    assert len(predictions) == 2 and all(p["label"] in LABELS for p in predictions)
    bad = httpx.post(f"{url}/invocations", json={"inputs": []})
    assert bad.status_code == 400 and "empty" in bad.json()["message"]


def test_boto3_reaches_the_runtime_path(served: Served) -> None:
    url = served.url
    client = _runtime(url)
    reply = client.invoke_endpoint(
        EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps({"inputs": "one headline"})
    )
    assert reply["ContentType"] == "application/json"
    assert reply["InvokedProductionVariant"] == "AllTraffic"
    body = json.loads(reply["Body"].read())
    assert len(body["predictions"]) == 1
    assert abs(sum(body["predictions"][0]["scores"].values()) - 1) < 1e-6


def test_a_bad_payload_is_a_model_error_for_boto3(served: Served) -> None:
    client = _runtime(served.url)
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="application/json", Body=b'{"inputs": "  "}'
        )
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 400
    assert "blank" in response["OriginalMessage"] and "blank" in response["Error"]["Message"]


def test_an_unknown_endpoint_name_is_a_validation_error(served: Served) -> None:
    client = _runtime(served.url)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.invoke_endpoint(EndpointName="other", ContentType="application/json", Body=b'{"inputs": "x"}')
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert error["Message"] == "Endpoint other of account 123456789012 not found."


def test_a_full_queue_answers_503_at_once_and_queued_requests_complete(served: Served) -> None:
    url, gate = served.url, served.gate
    gate.open.clear()
    gate.entered.clear()
    results: dict[str, int] = {}

    def send(name: str, texts: list[str]) -> None:
        results[name] = httpx.post(f"{url}/invocations", json={"inputs": texts}, timeout=20).status_code

    # One request holds the inference thread; two more fill the 8-text queue.
    first = threading.Thread(target=send, args=("running", ["r1"]))
    first.start()
    assert gate.entered.wait(5)
    queued = [
        threading.Thread(target=send, args=(f"q{i}", [f"t{i}-{j}" for j in range(4)])) for i in range(2)
    ]
    for thread in queued:
        thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and served.batcher.queued_texts < 8:
        time.sleep(0.01)

    # Answered while the gate is still closed: a request that waited for room would wait for
    # the gate, which only opens below, and end in httpx's timeout instead.
    refused = httpx.post(f"{url}/invocations", json={"inputs": ["one more"]}, timeout=5)
    assert not gate.open.is_set()
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "capacity" in refused.json()["message"]

    client = _runtime(url)
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=b'{"inputs": "x"}')
    assert info.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503

    gate.open.set()
    for thread in [first, *queued]:
        thread.join(10)
    assert results == {"running": 200, "q0": 200, "q1": 200}


def test_swapping_the_model_drops_no_request(served: Served, archive: Path, tmp_path: Path) -> None:
    """A request held inside the old model finishes on it; requests after the swap get the new
    version; the admin route refuses what it cannot load and the old model keeps serving."""
    url = f"{served.url}/invocations"
    served.gate.open.clear()  # hold the old model's inference thread
    with httpx.Client(timeout=30) as client:
        held: dict[str, Any] = {}

        def in_flight() -> None:
            held["reply"] = client.post(url, json={"inputs": "stocks fall"})

        thread = threading.Thread(target=in_flight)
        thread.start()
        assert served.gate.entered.wait(10)
        swapped: dict[str, Any] = {}

        def swap() -> None:
            swapped["reply"] = httpx.post(
                f"{served.url}/admin/model", json={"model": str(archive), "version": "7"}, timeout=60
            )

        swapper = threading.Thread(target=swap)
        swapper.start()
        # Traffic moves to the new model once it is loaded and warm (requests sent earlier would
        # queue behind the held one in the old model: answered too, but only after the gate opens).
        deadline = time.monotonic() + 60
        while served.endpoint.batcher is served.batcher and time.monotonic() < deadline:
            time.sleep(0.02)
        reply = client.post(url, json={"inputs": ["ebola spreads"]})
        assert reply.status_code == 200 and reply.json()["model_version"] == "7", reply.text
        assert swapper.is_alive()  # the old model is draining: the swap waits for it
        served.gate.open.set()
        thread.join(10)
        swapper.join(30)
    assert held["reply"].status_code == 200
    assert held["reply"].json()["model_version"] != "7"  # answered by the model it was sent to
    assert swapped["reply"].status_code == 200 and swapped["reply"].json()["model_version"] == "7"
    assert served.batcher.alive is False  # the old batcher is drained and closed
    # A model that cannot load is refused with its reason; version 7 keeps serving.
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not an archive")
    refused = httpx.post(f"{served.url}/admin/model", json={"model": str(broken), "version": "8"}, timeout=30)
    assert refused.status_code == 400 and "is not a tar archive" in refused.json()["message"]
    assert httpx.post(url, json={"inputs": "x"}, timeout=30).json()["model_version"] == "7"
    # Bytes other than the ones S3 checksummed (the control plane sends that digest): refused.
    tampered = httpx.post(
        f"{served.url}/admin/model",
        json={"model": str(archive), "version": "9", "sha256": "0" * 64},
        timeout=30,
    )
    assert tampered.status_code == 400 and "does not match its recorded sha256" in tampered.json()["message"]
    assert httpx.post(url, json={"inputs": "x"}, timeout=30).json()["model_version"] == "7"
    bad = httpx.post(f"{served.url}/admin/model", content=b"{}", timeout=30)
    assert bad.status_code == 400 and "send" in bad.json()["message"]


def test_explanations_run_one_at_a_time_and_a_second_is_told_to_retry(served: Served) -> None:
    body = {"inputs": "a headline", "explain": True}
    answer = httpx.post(f"{served.url}/invocations", json=body)
    assert answer.status_code == 200
    assert len(answer.json()["tokens"]) == len(answer.json()["attributions"])
    # Even while the batcher's thread is held, an explanation does not wait behind predictions.
    served.gate.open.clear()
    assert httpx.post(f"{served.url}/invocations", json=body).status_code == 200
    served.gate.open.set()
    # One is being computed (its slot held): the next answers 503 at once instead of queueing.
    assert served.endpoint._explain_slot.acquire(blocking=False)
    try:
        busy = httpx.post(f"{served.url}/invocations", json=body, timeout=5)
        runtime = httpx.post(f"{served.url}/endpoints/{ENDPOINT}/invocations", json=body, timeout=5)
    finally:
        served.endpoint._explain_slot.release()
    assert busy.status_code == 503 and "explanation is being computed" in busy.json()["message"]
    assert runtime.status_code == 503


# -- data capture --------------------------------------------------------------------------------


class HeldStore:
    """Capture files by key; ``open`` cleared: the store hangs (a stalled S3)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.open = threading.Event()
        self.open.set()

    def __call__(self, bucket: str, key: str, body: bytes) -> None:
        assert self.open.wait(60)
        self.files[f"{bucket}/{key}"] = body


def _capture_config(percent: float = 100.0) -> Any:
    from textclf.serving.capture import CaptureConfig

    return CaptureConfig(bucket="local", prefix="capture", sampling_percent=percent)


def test_the_runtime_path_captures_request_reply_and_inference_id(served: Served) -> None:
    store = HeldStore()
    served.endpoint.capture_store = store
    served.endpoint.set_capture(_capture_config())
    client = _runtime(served.url)
    body = json.dumps({"inputs": ["stocks rally", "new phone"]}).encode()
    reply = client.invoke_endpoint(
        EndpointName=ENDPOINT, ContentType="application/json", Body=body, InferenceId="a" * 32
    )["Body"].read()
    served.endpoint.set_capture(None)  # closing the writer writes what it holds
    ((key, data),) = store.files.items()
    assert key.startswith(f"local/capture/{ENDPOINT}/AllTraffic/") and key.endswith(".jsonl")
    (line,) = [json.loads(text) for text in data.decode().splitlines()]
    assert line["eventMetadata"]["inferenceId"] == "a" * 32
    assert line["captureData"]["endpointInput"]["data"] == body.decode()
    assert line["captureData"]["endpointOutput"]["data"] == reply.decode()  # exactly what was answered


def test_a_stalled_capture_store_never_slows_or_fails_a_request(served: Served) -> None:
    from textclf.serving.capture import CaptureWriter

    store = HeldStore()
    store.open.clear()
    writer = CaptureWriter(
        _capture_config(),
        store,
        endpoint_name=ENDPOINT,
        variant="AllTraffic",
        flush_interval_s=0.01,
        max_buffered=5,
    ).start()
    served.endpoint.capture = writer
    try:
        replies = [
            httpx.post(f"{served.url}/invocations", json={"inputs": f"headline {i}"}) for i in range(20)
        ]
        assert [r.status_code for r in replies] == [200] * 20
        assert writer.stats.dropped >= 20 - 5 - 1  # the buffer's 5 (and one in the stuck store) kept
    finally:
        store.open.set()
        served.endpoint.set_capture(None)
    assert sum(data.count(b"\n") for data in store.files.values()) == 20 - writer.stats.dropped
