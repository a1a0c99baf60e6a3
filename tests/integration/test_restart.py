"""The local stack remembers: a rollout killed at any step restarts into one consistent state.

In process and without training: a finished training job (a tiny packaged model as its output)
is announced as the local SageMaker announces one, the deploy function runs on the event bus, and
the stack "dies" at a chosen step -- the step raises an exception no handler catches, so nothing
after it runs, then the stack is abandoned (moto's memory wiped, servers closed; its stop writes
no state). A second stack on the same state folder must then serve exactly one version, hold no
duplicate registry entries, and agree with the deployment record. The SIGKILL of a real
``textclf serve`` after a real training run is test_loop's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.tiny_model import make_tiny_model_dir

from .conftest import package_tiny_model

pytestmark = pytest.mark.integration

JOB = "textclf-train-restart-1"
PARAMETERS = {"GateMinAccuracy": "0", "EndpointMaxInstances": "1"}


class Crash(BaseException):
    """The process dying at this point: no ``except Exception`` anywhere catches it."""


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("restart")
    return package_tiny_model(make_tiny_model_dir(root / "model", trained=True), root / "model.tar.gz")


@pytest.fixture
def artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path))
    monkeypatch.delenv("TEXTCLF_API_KEY", raising=False)
    return tmp_path


@contextmanager
def stack_on(state: Path, archive: Path) -> Iterator[Any]:
    """A stack on ``state``."""
    from textclf.local.stack import LocalStack, StackOptions

    stack = LocalStack(
        StackOptions(
            api_port=0,
            endpoint_port=0,
            model=archive,
            state_dir=state,
            parameters=dict(PARAMETERS),
            watch_interval_s=60,
        )
    )
    stack.start()
    try:
        yield stack
    finally:
        # After a "kill" nothing more is written: the stop closes servers and writes no state,
        # and the next start begins with an empty moto (ControlPlane.start resets it).
        stack.stop()


def finish_job(stack: Any, archive: Path) -> None:
    """A training job that ended Completed with ``archive`` as its model, announced as the local
    SageMaker announces one (recorded, then its event on the bus)."""
    from textclf.local.sagemaker.training import TrainingJob

    bucket = stack.options.bucket
    key = f"training-output/{JOB}/output/model.tar.gz"
    stack.control_plane.client("s3").upload_file(str(archive), bucket, key)
    job = TrainingJob(
        name=JOB,
        request={"HyperParameters": {}},
        region=stack.options.region,
        status="Completed",
        secondary_status="Completed",
        metrics={"test_accuracy": 0.91, "test_macro_f1": 0.9},
        started=time.time(),
        ended=time.time(),
        artifact=f"s3://{bucket}/{key}",
        announced=False,
    )
    stack.sagemaker.training.jobs[JOB] = job
    stack.sagemaker.training._announce(job)


def crash_after(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, crashed: threading.Event) -> None:
    """``owner.name`` runs, then the process "dies"."""
    original: Callable[..., Any] = getattr(owner, name)

    def dying(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        crashed.set()
        raise Crash(name)

    monkeypatch.setattr(owner, name, dying)


def crash_before(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, crashed: threading.Event) -> None:
    def dying(*args: Any, **kwargs: Any) -> Any:
        crashed.set()
        raise Crash(name)

    monkeypatch.setattr(owner, name, dying)


def wait(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def state_of(stack: Any) -> dict[str, Any]:
    """What serves, what the registry and the deployment record say (through the stack's clients)."""
    from textclf_api import aws
    from textclf_api.logic import deploy_records, deployment
    from textclf_api.settings import get_settings

    settings = get_settings()
    endpoint = aws.sagemaker().describe_endpoint(EndpointName=settings.require("endpoint_name"))
    packages = deployment.list_packages(settings)
    ping = httpx.post(
        f"{stack.endpoint_url}/invocations",
        json={"inputs": "stocks fall"},
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert ping.status_code == 200, ping.text
    return {
        "endpoint": endpoint["EndpointStatus"],
        "config_version": deploy_records.version_of(endpoint["EndpointConfigName"]),
        "served": ping.json()["model_version"],
        "packages": sorted(p.version for p in packages),
        "record": deploy_records.Records(settings.require("deployments_table")).get(JOB),
    }


def settle(stack: Any) -> None:
    assert stack.bus.wait_idle(120), "the restarted stack's events were not handled"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("step", ["admission", "registration", "swap"])
def test_a_rollout_killed_at_any_step_restarts_consistent(
    step: str, archive: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from textclf_api.logic import artifacts as admission
    from textclf_api.logic import deployment

    from textclf.local.sagemaker.hosting import Endpoints

    state = artifacts / "state"
    crashed = threading.Event()
    with monkeypatch.context() as patch:
        if step == "admission":
            crash_after(patch, admission, "admit", crashed)
        elif step == "registration":
            crash_after(patch, deployment, "register", crashed)
        else:  # UpdateEndpoint accepted and recorded, the model server never switched
            crash_before(patch, Endpoints, "_roll_out", crashed)
        with stack_on(state, archive) as first:
            before = state_of(first)["served"]
            assert before.startswith("sha256:")
            finish_job(first, archive)
            wait(crashed.is_set, f"the crash after {step}")
            if step == "swap":  # the deploy function itself finished
                assert first.bus.wait_idle(60)
            else:  # the event bus's worker died with the handler
                first.bus._thread.join(30)

    with stack_on(state, archive) as second:
        settle(second)
        after = state_of(second)
        # One version serves, the one that served before: the rollout never completed.
        assert after["endpoint"] == "InService"
        assert after["served"] == before and after["config_version"] is None
        # The registry holds the job's model at most once; the record says where it stopped.
        assert after["packages"] == ([] if step == "admission" else ["1"])
        record = after["record"]
        assert record is not None and record["status"] in ("pending", "failed"), record
        if step == "swap":
            assert record["status"] == "failed" and "local stack stopped" in record["reason"], record
        # The job itself kept its outcome.
        job = second.sagemaker.training.describe_training_job({"TrainingJobName": JOB})
        assert job["TrainingJobStatus"] == "Completed"


def test_a_deployed_version_serves_again_after_a_restart(archive: Path, artifacts: Path) -> None:
    state = artifacts / "state"
    with stack_on(state, archive) as first:
        finish_job(first, archive)
        wait(lambda: (state_of(first)["record"] or {}).get("status") == "deployed", "the rollout")
        deployed = state_of(first)
    assert (deployed["served"], deployed["config_version"], deployed["packages"]) == ("1", "1", ["1"])

    with stack_on(state, archive) as second:
        settle(second)
        assert state_of(second) == deployed
        assert "restored" in second.banner()

    # --fresh: empty on purpose.
    from textclf.local.stack import LocalStack, StackOptions

    fresh = LocalStack(StackOptions(api_port=0, endpoint_port=0, model=archive, state_dir=state, fresh=True))
    fresh.start()
    try:
        again = state_of(fresh)
        assert again["served"].startswith("sha256:") and again["packages"] == [] and again["record"] is None
    finally:
        fresh.stop()


def test_a_training_job_running_at_the_kill_ends_failed_and_is_never_deployed(
    archive: Path, artifacts: Path
) -> None:
    from textclf.local.sagemaker.training import TrainingJob

    state = artifacts / "state"
    with stack_on(state, archive) as first:
        job = TrainingJob(name=JOB, request={"HyperParameters": {}}, region=first.options.region)
        first.sagemaker.training.jobs[JOB] = job
        first.sagemaker.training._save(job)  # InProgress, as CreateTrainingJob records it
    with stack_on(state, archive) as second:
        settle(second)
        desc = second.sagemaker.training.describe_training_job({"TrainingJobName": JOB})
        assert desc["TrainingJobStatus"] == "Failed"
        assert "local stack stopped" in desc["FailureReason"]
        after = state_of(second)
        assert after["packages"] == [] and after["record"]["status"] == "failed"
