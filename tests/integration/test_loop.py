"""The loop the product exists for, for real on one machine: POST /train -> train.py runs ->
gate -> Model Registry -> rollout to the serving endpoint, with a client predicting throughout.

`textclf serve` runs as a user starts it (its own process, the in-process endpoint so rollouts can
swap its model), on a small real sample of the shared corpus, with a tiny model from a config as
the base model (no hub here). Two stacks: one whose gate lets the job's model through, one whose
gate refuses it -- then `textclf models promote` rolls the refused version out anyway (rollback),
and `textclf teardown` removes the endpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.tiny_data import make_tiny_dataset, shared_zip
from tests.helpers.tiny_model import make_tiny_model_dir

from .conftest import API_KEY, KEY, LABELLER_KEY, Server, package_tiny_model

pytestmark = pytest.mark.integration

JOB_TIMEOUT_S = 300.0  # a tiny job trains in ~15 s; cold imports on a loaded 2-core CI machine
TRAIN = {"epochs": 1, "max_train_samples": 200}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    zip_path = shared_zip()
    root = tmp_path_factory.mktemp("loop")
    trained = make_tiny_model_dir(root / "serving", trained=True)
    return {
        "archive": package_tiny_model(trained, root / "model.tar.gz"),
        "base": make_tiny_model_dir(root / "base"),
        "data": make_tiny_dataset(root / "data", zip_path, n_rows=400),
    }


class Stack:
    def __init__(self, root: Path, inputs: dict[str, Path], overrides: list[str]) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(
            TEXTCLF_ARTIFACTS=str(root / "artifacts"),
            TEXTCLF_CACHE=str(root / "cache"),
            PYTHONUNBUFFERED="1",
            TEXTCLF_API_KEY=API_KEY,
            TEXTCLF_LABELLER_KEY=LABELLER_KEY,
        )
        args = ["serve", "--model", str(inputs["archive"]), "--data", str(inputs["data"]), "--threads", "1"]
        args += ["--base-model", str(inputs["base"]), "--parameter-overrides", *overrides]
        listen = ("--fd", "--endpoint-fd")
        self.server = Server(
            "textclf serve", args, self.env, root / "serve.log", listen=listen, own_group=True
        )
        self.api_url = self.server.url()
        self.client = httpx.Client(base_url=self.api_url, timeout=30, headers=KEY)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "textclf", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def predict_version(self) -> str:
        reply = self.client.post("/predict", json={"text": "stocks fall as earnings disappoint"})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["model_version"])

    def wait_for(self, job: str, *statuses: str) -> dict[str, Any]:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            body: dict[str, Any] = self.client.get(f"/train/{job}").json()
            if (body.get("deployment") or {}).get("status") in statuses:
                return body
            assert body["status"] in ("InProgress", "Completed"), (body, self.server.tail())
            time.sleep(1)
        raise AssertionError(f"{job} never reached {statuses}:\n{self.server.tail(80)}")


@contextmanager
def running(root: Path, inputs: dict[str, Path], *overrides: str) -> Iterator[Stack]:
    stack = Stack(root, inputs, list(overrides))
    stack.server.start()
    try:
        stack.server.wait_ready(f"{stack.api_url}/health")
        yield stack
    finally:
        stack.client.close()
        stack.server.stop()


class Traffic:
    """A client predicting without pause; every answer must be a 200 (no dropped request)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.versions: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30, headers=KEY) as client:
            while not self._stop.is_set():
                try:
                    reply = client.post(
                        "/predict", json={"texts": ["ebola outbreak spreads", "new movie tops"]}
                    )
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if reply.status_code != 200:
                    self.failures.append(f"{reply.status_code} {reply.text[:200]}")
                else:
                    self.versions.append(reply.json()["model_version"])


def test_a_trained_model_that_passes_the_gate_reaches_predict_by_itself(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    with running(tmp_path, inputs, "GateMinAccuracy=0", "EndpointMaxInstances=1") as stack:
        before = stack.predict_version()
        assert before.startswith("sha256:")  # the archive the stack started with
        with Traffic(stack.api_url) as traffic:
            key = {"Idempotency-Key": "it-build-1"}
            first = stack.client.post("/train", json=TRAIN, headers=key)
            again = stack.client.post("/train", json=TRAIN, headers=key)
            assert (first.status_code, again.status_code) == (202, 202), first.text
            job = first.json()["training_job_name"]
            assert again.json()["training_job_name"] == job  # one GPU job, not two
            done = stack.wait_for(job, "deployed", "rejected", "failed")
            # A few more answers after the switch.
            deadline = time.monotonic() + 10
            while (not traffic.versions or traffic.versions[-1] != "1") and time.monotonic() < deadline:
                time.sleep(0.2)
        assert done["status"] == "Completed"
        assert done["deployment"]["status"] == "deployed", (done, stack.server.tail(60))
        assert done["deployment"]["model_version"] == "1"
        for metric in ("test_accuracy", "test_macro_f1", "baseline_test_accuracy", "validation_accuracy"):
            assert 0.0 <= done["metrics"][metric] <= 1.0, metric
        assert done["model_artifact_uri"].endswith(f"/{job}/output/model.tar.gz")
        # Trained for real: the job's own log, under the stack's work folder.
        log = (tmp_path / "artifacts" / "local-stack" / "training" / job / "train.log").read_text()
        assert "METRIC test_accuracy=" in log
        # Every request during training and rollout was answered; versions switched once.
        assert traffic.failures == []
        assert traffic.versions[0] == before and traffic.versions[-1] == "1"
        switches = sum(1 for a, b in zip(traffic.versions, traffic.versions[1:], strict=False) if a != b)
        assert switches == 1
        health = stack.client.get("/health").json()
        assert (health["status"], health["model_version"]) == ("ok", "1")
        assert stack.predict_version() == "1"
        listed = stack.cli("models", "list", "--local")
        assert listed.returncode == 0, listed.stderr
        assert "*       1  Approved" in listed.stdout
        assert len(stack.client.get("/train/" + job).json()["metrics"]) >= 10
        batch_scoring_with_the_deployed_model(stack, tmp_path)
        the_deployed_model_is_captured_and_labelled(stack, tmp_path)
        everything_survives_a_kill(stack, job, key)


def the_deployed_model_is_captured_and_labelled(stack: Stack, root: Path) -> None:
    """After the rollout the new model's answers are captured (the rollout carried the endpoint
    config's DataCaptureConfig to the model server), and feedback is checked against the label
    set the deploy function recorded for version 1 when it started serving."""
    import json

    import boto3

    from textclf.serving import FAKE_CREDENTIALS

    state = json.loads((root / "artifacts" / "local-stack" / "stack.json").read_text())
    creds = {k.lower(): v for k, v in FAKE_CREDENTIALS.items()}
    s3 = boto3.client("s3", endpoint_url=state["control_plane_url"], region_name=state["region"], **creds)
    answer = stack.client.post("/predict", json={"texts": HEADLINES[:2]}).json()
    inference_id = answer["predictions"][0]["prediction_id"].rsplit("-", 1)[0]
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not found and time.monotonic() < deadline:
        time.sleep(0.5)
        for obj in s3.list_objects_v2(Bucket=state["bucket"], Prefix="capture/").get("Contents", []):
            text = s3.get_object(Bucket=state["bucket"], Key=obj["Key"])["Body"].read().decode()
            found += [json.loads(line) for line in text.splitlines() if inference_id in line]
    assert len(found) == 1, stack.server.tail(40)
    assert json.loads(found[0]["captureData"]["endpointOutput"]["data"])["model_version"] == "1"
    served = json.loads(s3.get_object(Bucket=state["bucket"], Key="serving/labels.json")["Body"].read())
    assert served["model_version"] == "1" and served["labels"] == answer["labels"]
    items = [
        {"prediction_id": p["prediction_id"], "label": answer["labels"][0]} for p in answer["predictions"]
    ]
    labelled = stack.client.post("/feedback", json={"items": items}, headers={"x-api-key": LABELLER_KEY})
    assert labelled.status_code == 200, labelled.text
    assert (labelled.json()["accepted"], labelled.json()["model_version"]) == (2, "1")


def everything_survives_a_kill(stack: Stack, job: str, key: dict[str, str]) -> None:
    """SIGKILL to the whole process group, start again: the deployed version, its record, the
    registry and the idempotency record are all still there (<artifacts>/local-stack/state)."""
    logged = stack.server.log.stat().st_size
    stack.server.kill()
    stack.server.start()
    stack.server.wait_ready(f"{stack.api_url}/health")
    # The banner of the new start says what came back. Read from where the restart began (health
    # polls and the schedules log more lines than a fixed tail holds), once it is printed: the API
    # answers /health a moment before the banner is written.
    banner = b""
    deadline = time.monotonic() + 30
    while b"textclf local stack is up" not in banner and time.monotonic() < deadline:
        time.sleep(0.2)
        with stack.server.log.open("rb") as log:
            log.seek(logged)
            banner = log.read()
    assert b"restored" in banner
    health = stack.client.get("/health").json()
    assert (health["status"], health["model_version"]) == ("ok", "1")
    assert stack.predict_version() == "1"
    after = stack.client.get(f"/train/{job}").json()
    assert (after["status"], after["deployment"]["status"]) == ("Completed", "deployed"), after
    listed = stack.cli("models", "list", "--local")
    assert listed.returncode == 0 and "*       1  Approved" in listed.stdout, listed.stdout + listed.stderr
    again = stack.client.post("/train", json=TRAIN, headers=key)
    assert (again.status_code, again.json()["training_job_name"]) == (202, job), again.text


HEADLINES = ["ebola outbreak spreads", "new movie tops box office", "fed raises rates", "apple unveils phone"]


def batch_scoring_with_the_deployed_model(stack: Stack, root: Path) -> None:
    """POST /batch and `textclf predict s3:// s3://` run Batch Transform with version 1, for real."""
    import json

    import boto3

    from textclf.serving import FAKE_CREDENTIALS

    state = json.loads((root / "artifacts" / "local-stack" / "stack.json").read_text())
    creds = {k.lower(): v for k, v in FAKE_CREDENTIALS.items()}
    s3 = boto3.client("s3", endpoint_url=state["control_plane_url"], region_name=state["region"], **creds)
    bucket = state["bucket"]
    for name, part in (("part-1.jsonl", HEADLINES[:2]), ("part-2.jsonl", HEADLINES[2:])):
        body = "".join(json.dumps({"text": h}) + "\n" for h in part)
        s3.put_object(Bucket=bucket, Key=f"batch/input/{name}", Body=body.encode())

    started = stack.client.post(
        "/batch", json={"input_uri": f"s3://{bucket}/batch/input/", "instance_count": 2}
    )
    assert started.status_code == 202, started.text
    assert started.json()["model_version"] == "1"
    job = started.json()["transform_job_name"]
    deadline = time.monotonic() + 120
    while (status := stack.client.get(f"/batch/{job}").json())["status"] == "InProgress":
        assert time.monotonic() < deadline, stack.server.tail(40)
        time.sleep(0.5)
    assert status["status"] == "Completed", status
    answers = []
    for name in ("part-1.jsonl", "part-2.jsonl"):
        out = s3.get_object(Bucket=bucket, Key=f"batch/output/{job}/{name}.out")["Body"].read().decode()
        answers += [json.loads(line) for line in out.splitlines()]
    # The same answers /predict gives, in input order, from the deployed version.
    online = stack.client.post("/predict", json={"texts": HEADLINES}).json()["predictions"]
    assert [a["label"] for a in answers] == [p["label"] for p in online]
    assert {a["model_version"] for a in answers} == {"1"}

    # The CLI sends the same request and waits for it.
    output = f"s3://{bucket}/batch/output/cli/"
    done = stack.cli(
        "predict", "--input", f"s3://{bucket}/batch/input/part-1.jsonl", "--output", output, "--local"
    )
    assert done.returncode == 0, done.stderr
    assert "Completed" in done.stderr
    out = s3.get_object(Bucket=bucket, Key="batch/output/cli/part-1.jsonl.out")["Body"].read().decode()
    assert len(out.splitlines()) == 2
    # A bad request is a clear 4xx.
    refused = stack.client.post("/batch", json={"input_uri": "s3://elsewhere/batch/input/x.jsonl"})
    assert refused.status_code == 422 and "input_uri must be under" in refused.json()["message"]


def test_a_gated_out_model_leaves_the_old_one_serving_until_promoted(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    with running(tmp_path, inputs, "GateMinAccuracy=0.99", "EndpointMaxInstances=1") as stack:
        before = stack.predict_version()
        started = stack.client.post("/train", json=TRAIN)
        assert started.status_code == 202, started.text
        job = started.json()["training_job_name"]
        refused = stack.wait_for(job, "rejected", "deployed", "failed")
        assert refused["deployment"]["status"] == "rejected"
        assert "below GateMinAccuracy 0.9900" in refused["deployment"]["reason"]
        assert stack.predict_version() == before
        # /health names what serves: still the --model archive, as /predict says.
        assert stack.client.get("/health").json()["model_version"] == before
        # Rollback is approval: promoting the version rolls it out, traffic keeps flowing.
        with Traffic(stack.api_url) as traffic:
            promoted = stack.cli("models", "promote", "1", "--local")
            assert promoted.returncode == 0, promoted.stderr
            deployed = stack.wait_for(job, "deployed", "failed")
        assert deployed["deployment"]["status"] == "deployed"
        assert traffic.failures == []
        assert stack.predict_version() == "1"
        listed = stack.cli("models", "list", "--local").stdout
        assert "gate: test accuracy" in listed  # the registry keeps the figures through approval
        # Teardown: nothing serves (and nothing would bill) afterwards.
        torn = stack.cli("teardown", "--local")
        assert (torn.returncode, torn.stdout.strip()) == (0, "deleted endpoint textclf"), torn.stderr
        health = stack.client.get("/health")
        assert (health.status_code, health.json()["endpoint"]["status"]) == (503, "NotFound")
