"""The local stack over real HTTP: the API contract of docs/api.md, end to end, with a tiny model."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import httpx
import pytest

from tests.helpers.tiny_model import PROBE_HEADLINES
from tests.integration.conftest import API_KEY, ENDPOINT_NAME, KEY, LABELLER_KEY, LocalStackProcesses, Server
from textclf import config
from textclf.labels import LABELS

# One worker runs the three modules on the local stack; the session fixture starts it once.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("local-stack")]

EVENTS = config.REPO_ROOT / "events"
INVALID_EVENTS = sorted(p for p in EVENTS.glob("*invalid*.json"))


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def _send(api: str, event: dict[str, Any]) -> httpx.Response:
    """Send the HTTP request an API Gateway event describes (method, path, headers, body)."""
    raw = event["body"]
    body = None if raw is None else (base64.b64decode(raw) if event["isBase64Encoded"] else raw.encode())
    skip = {"host", "content-length"}
    headers = {k: v for k, v in (event["headers"] or {}).items() if k.lower() not in skip} | KEY
    return httpx.request(event["httpMethod"], api + event["path"], headers=headers, content=body, timeout=30)


def _assert_prediction(prediction: dict[str, Any]) -> None:
    assert prediction["label"] in LABELS
    assert set(prediction["scores"]) == set(LABELS)
    assert abs(sum(prediction["scores"].values()) - 1.0) < 1e-6
    assert prediction["score"] == max(prediction["scores"].values())


def test_health_is_ok_while_the_endpoint_serves(local_stack: LocalStackProcesses) -> None:
    reply = httpx.get(f"{local_stack.api_url}/health")
    assert reply.status_code == 200
    # `serve --endpoint-url`: a model server the stack does not host, whose version nothing in
    # the control plane records (the in-process endpoint's is: see the test below).
    assert reply.json() == {
        "status": "ok",
        "endpoint": {"name": ENDPOINT_NAME, "status": "InService"},
        "model_version": None,
    }


def test_health_names_the_version_the_hand_deployed_archive_answers_as(
    tiny_archive: Path, tmp_path: Path
) -> None:
    # `make serve` / `make demo`: one `textclf serve` hosting the archive's model in-process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        TEXTCLF_ARTIFACTS=str(tmp_path / "artifacts"),
        TEXTCLF_CACHE=str(tmp_path / "cache"),
        PYTHONUNBUFFERED="1",
        TEXTCLF_API_KEY=API_KEY,
        TEXTCLF_LABELLER_KEY=LABELLER_KEY,
    )
    server = Server(
        "textclf serve",
        ["serve", "--model", str(tiny_archive), "--endpoint-name", ENDPOINT_NAME, "--threads", "1"],
        env,
        tmp_path / "serve.log",
        listen=("--fd", "--endpoint-fd"),
    )
    server.start()
    try:
        server.wait_ready(f"{server.url()}/health")
        served = httpx.post(f"{server.url()}/predict", json={"text": "x y z"}, headers=KEY, timeout=30)
        assert served.status_code == 200, served.text
        version = served.json()["model_version"]
        # The archive's packaging fingerprint: what every prediction says, and what health names.
        assert version.startswith("sha256:") and len(version) == len("sha256:") + 12, version
        health = httpx.get(f"{server.url()}/health", timeout=30)
        assert health.status_code == 200, health.text
        assert health.json() == {
            "status": "ok",
            "endpoint": {"name": ENDPOINT_NAME, "status": "InService"},
            "model_version": version,
        }
        captured_and_labelled(server.url(), served.json(), tmp_path / "artifacts")
    finally:
        server.stop()


def captured_and_labelled(api: str, answer: dict[str, Any], artifacts: Path) -> None:
    """The answer is in the endpoint's data capture under its inference id (SageMaker's layout in
    the local bucket), and a labeller can post its right label, checked against the served set."""
    from textclf.serving import FAKE_CREDENTIALS

    state = json.loads((artifacts / "local-stack" / "stack.json").read_text())
    creds = {k.lower(): v for k, v in FAKE_CREDENTIALS.items()}
    s3 = boto3.client("s3", endpoint_url=state["control_plane_url"], region_name=state["region"], **creds)
    prediction_id = answer["predictions"][0]["prediction_id"]
    inference_id = prediction_id.rsplit("-", 1)[0]
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30  # flushed every few seconds
    while not lines and time.monotonic() < deadline:
        time.sleep(0.5)
        for obj in s3.list_objects_v2(Bucket=state["bucket"], Prefix=f"capture/{ENDPOINT_NAME}/").get(
            "Contents", []
        ):
            body = s3.get_object(Bucket=state["bucket"], Key=obj["Key"])["Body"].read().decode()
            lines += [json.loads(line) for line in body.splitlines() if inference_id in line]
    (line,) = lines
    assert line["eventMetadata"]["inferenceId"] == inference_id
    assert json.loads(line["captureData"]["endpointInput"]["data"]) == {"inputs": "x y z"}
    output = json.loads(line["captureData"]["endpointOutput"]["data"])
    assert output["predictions"][0]["label"] == answer["predictions"][0]["label"]
    labeller = {"x-api-key": LABELLER_KEY}
    body = {"items": [{"prediction_id": prediction_id, "label": LABELS[-1]}]}
    refused = httpx.post(f"{api}/feedback", json=body, headers=KEY, timeout=30)
    assert refused.status_code == 403, refused.text  # the predict key may not label
    accepted = httpx.post(f"{api}/feedback", json=body, headers=labeller, timeout=30)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["model_version"] == answer["model_version"]
    wrong = {"items": [{"prediction_id": prediction_id, "label": "sports"}]}
    unknown = httpx.post(f"{api}/feedback", json=wrong, headers=labeller, timeout=30)
    assert unknown.status_code == 422 and str(list(LABELS)) in unknown.json()["message"]


def test_predict_single(local_stack: LocalStackProcesses) -> None:
    reply = _send(local_stack.api_url, _event("predict_single.json"))
    assert reply.status_code == 200, reply.text
    predictions = reply.json()["predictions"]
    assert len(predictions) == 1
    _assert_prediction(predictions[0])


def test_predict_batch_keeps_order_and_classifies(local_stack: LocalStackProcesses) -> None:
    event = _event("predict_batch.json")
    texts = json.loads(event["body"])["texts"]
    reply = _send(local_stack.api_url, event)
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["predictions"]) == len(texts)

    labels, headlines = zip(*PROBE_HEADLINES.items(), strict=True)
    probe = httpx.post(
        f"{local_stack.api_url}/predict", json={"texts": list(headlines)}, headers=KEY, timeout=30
    )
    assert probe.status_code == 200, probe.text
    predictions = probe.json()["predictions"]
    for prediction in predictions:
        _assert_prediction(prediction)
    # The trained tiny model gets its probe headlines right, so order mix-ups would show.
    assert [p["label"] for p in predictions] == list(labels)


def test_concurrent_requests_each_get_their_own_answer(local_stack: LocalStackProcesses) -> None:
    import concurrent.futures

    items = list(PROBE_HEADLINES.items()) * 6

    def ask(headline: str) -> str:
        reply = httpx.post(f"{local_stack.api_url}/predict", json={"text": headline}, headers=KEY, timeout=30)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["predictions"][0]["label"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, [h for _, h in items]))
    assert answers == [label for label, _ in items]


@pytest.mark.parametrize("path", INVALID_EVENTS, ids=[p.stem for p in INVALID_EVENTS])
def test_every_bad_input_is_a_4xx_with_a_message(local_stack: LocalStackProcesses, path: Path) -> None:
    reply = _send(local_stack.api_url, json.loads(path.read_text(encoding="utf-8")))
    assert 400 <= reply.status_code < 500, reply.text
    body = reply.json()
    assert isinstance(body["message"], str) and len(body["message"]) > 10
    assert "Traceback" not in reply.text


def test_oversized_bodies_are_refused_with_413(local_stack: LocalStackProcesses) -> None:
    headers = {"Content-Type": "application/json", **KEY}
    # Above the function's own 1 MiB limit.
    big = json.dumps({"text": "x" * (2 * 1024 * 1024)})
    reply = httpx.post(f"{local_stack.api_url}/predict", content=big, headers=headers, timeout=30)
    assert reply.status_code == 413 and "limit" in reply.json()["message"]
    # Above API Gateway's 10 MB: refused by the gateway before any function runs.
    huge = b'{"text": "' + b"x" * (11 * 1024 * 1024) + b'"}'
    reply = httpx.post(f"{local_stack.api_url}/predict", content=huge, headers=headers, timeout=30)
    assert reply.status_code == 413 and reply.json()["message"] == "Request Too Long"


def test_unknown_routes_answer_like_api_gateway(local_stack: LocalStackProcesses) -> None:
    for method, path in (("GET", "/nowhere"), ("GET", "/predict"), ("DELETE", "/health")):
        reply = httpx.request(method, local_stack.api_url + path)
        assert reply.status_code == 403
        assert reply.json()["message"] == "Missing Authentication Token"


def test_train_then_the_job_is_visible(local_stack: LocalStackProcesses) -> None:
    started = _send(local_stack.api_url, _event("train.json"))
    assert started.status_code == 202, started.text
    job = started.json()["training_job_name"]
    assert started.headers["Location"] == f"/train/{job}"

    status = httpx.get(f"{local_stack.api_url}/train/{job}")
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["training_job_name"] == job
    assert body["status"] in {"InProgress", "Completed", "Failed", "Stopping", "Stopped"}

    unknown = _send(local_stack.api_url, _event("train_status_unknown.json"))
    assert unknown.status_code == 404 and "message" in unknown.json()


def test_boto3_reaches_the_endpoint_through_the_environment(
    local_stack: LocalStackProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", local_stack.endpoint_url)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # No endpoint_url argument: an unchanged client, configured only by the environment.
    client = boto3.session.Session().client("sagemaker-runtime")

    reply = client.invoke_endpoint(
        EndpointName=ENDPOINT_NAME,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"inputs": list(PROBE_HEADLINES.values())}),
    )
    predictions = json.loads(reply["Body"].read())["predictions"]
    assert [p["label"] for p in predictions] == list(PROBE_HEADLINES)

    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(
            EndpointName=ENDPOINT_NAME, ContentType="application/json", Body=b'{"inputs": 5}'
        )
    assert info.value.response["OriginalStatusCode"] == 400
    assert "string" in info.value.response["OriginalMessage"]

    with pytest.raises(botocore.exceptions.ClientError) as missing:
        client.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="application/json", Body=b"{}")
    assert missing.value.response["Error"]["Code"] == "ValidationError"


def _wait_for_health(api: str, status: int, timeout_s: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = httpx.get(f"{api}/health", timeout=15)
        if reply.status_code == status or time.monotonic() > deadline:
            return reply
        time.sleep(0.2)


def test_health_follows_the_endpoint_down_and_up(local_stack: LocalStackProcesses) -> None:
    # Order-independent: whatever happens here, the endpoint is serving again afterwards.
    assert local_stack.endpoint.stop() == 0  # Ctrl-C: a clean exit
    try:
        down = _wait_for_health(local_stack.api_url, 503)
        assert down.status_code == 503, down.text
        assert down.json()["status"] == "unavailable"
        assert down.json()["endpoint"]["name"] == ENDPOINT_NAME
        assert down.headers.get("Retry-After")

        refused = httpx.post(
            f"{local_stack.api_url}/predict", json={"text": "any headline"}, headers=KEY, timeout=30
        )
        assert refused.status_code == 503, refused.text
        assert refused.headers.get("Retry-After")
    finally:
        local_stack.endpoint.start()
        local_stack.endpoint.wait_ready(f"{local_stack.endpoint_url}/ping")
    up = _wait_for_health(local_stack.api_url, 200)
    assert up.status_code == 200, up.text
    again = httpx.post(
        f"{local_stack.api_url}/predict",
        json={"text": "stocks rally as profit rises"},
        headers=KEY,
        timeout=30,
    )
    assert again.status_code == 200 and again.json()["predictions"][0]["label"] == "business"


def test_replay_through_the_stack_with_honest_and_poisoned_feedback(
    local_stack: LocalStackProcesses, tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tiny windows through the real API: every answer served, the figures recomputable from
    answers.jsonl, the true labels stored as the labeller's and the wrong ones as the second's."""
    from tests.helpers.tiny_model import KEYWORD_HEADLINES
    from textclf.cli import main
    from textclf.data.samples import raw_line, write_raw_corpus
    from textclf.labels import CATEGORY_TO_LABEL
    from textclf.serving import FAKE_CREDENTIALS

    category = {label: code for code, label in CATEGORY_TO_LABEL.items()}
    lines = [
        raw_line(n, f"{text} {n}", category[label], f"s{n}", timestamp=1_396_310_400_000 + n * 86_400_000)
        for n, (label, text) in enumerate(
            (label, text) for _ in range(3) for label, texts in KEYWORD_HEADLINES.items() for text in texts
        )
    ]  # 72 headlines, one a day from 2014-04-01
    corpus = write_raw_corpus(tmp_path / "news.csv", lines)
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(local_stack.artifacts))
    out = tmp_path / "replay"
    argv = ["replay", "--data", str(corpus), "--model", str(tiny_archive), "--out", str(out), "--json"]
    argv += ["--start", "2014-04-01", "--end", "2014-06-01", "--feedback-rate", "0.5"]
    argv += ["--rows-per-window", "30"]
    argv += ["--poison-rate", "1.0", "--poison-windows", "2014-05", "--settle-timeout", "5", "--poll", "1"]
    assert main(argv) == 0
    report = json.loads((out / "replay.json").read_text())
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert report["failed_requests"] == 0 and len(answers) == 60
    # Listed through the control plane. The stack is shared with other tests, whose POST /train
    # jobs may be running (reason manual); nothing the replay did started a retrain.
    assert [r for r in report["retrains"] if r["reason"] != "manual"] == []
    served = report["frozen_model"]["version"]  # the stack serves the very archive the replay scores
    for window in report["windows"]:
        mine = [a for a in answers if a["window"] == window["window"]]
        right = sum(a["served_label"] == a["true_label"] for a in mine)
        assert window["served_accuracy"] == round(right / len(mine), 4) and window["versions_served"] == {
            served: len(mine)
        }
        # The same archive scored locally answers as the endpoint does.
        assert all(a["frozen_label"] == a["served_label"] for a in mine)

    state = json.loads((local_stack.artifacts / "local-stack" / "stack.json").read_text())
    creds = {k.lower(): v for k, v in FAKE_CREDENTIALS.items()}
    s3 = boto3.client("s3", endpoint_url=state["control_plane_url"], region_name=state["region"], **creds)
    stored: dict[str, dict[str, str]] = {}
    for obj in s3.list_objects_v2(Bucket=state["bucket"], Prefix="ground-truth/").get("Contents", []):
        for line in (
            s3.get_object(Bucket=state["bucket"], Key=obj["Key"])["Body"].read().decode().splitlines()
        ):
            item = json.loads(line)
            stored.setdefault(item["textclf"]["labeller"], {})[item["eventMetadata"]["eventId"]] = item[
                "groundTruthData"
            ]["data"]
    honest_id, poison_id = json.loads(state["labeller_keys"])
    assert report["poison"]["labeller"] == poison_id
    for answer in answers:
        pid = answer["prediction_id"]
        assert stored.get(honest_id, {}).get(pid) == answer["feedback"]
        assert stored.get(poison_id, {}).get(pid) == answer["poison"]
        if answer["window"] == "2014-05":
            assert answer["poison"] not in (None, answer["true_label"])
        else:
            assert answer["poison"] is None
