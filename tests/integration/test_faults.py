"""HTTP-level fault injection: the local API in front of an endpoint that fails in every way.

``textclf serve --endpoint-url`` points the unchanged Lambda handlers (boto3's sagemaker-runtime
client) at ``FaultEndpoint``. Each fault must become exactly its mapped status -- 502 for a reply
that came whole but is wrong, 503 + Retry-After when the connection is cut or the endpoint is gone,
504 when it is too slow -- within the time budget,
and no error body may carry internals, not even those the endpoint itself put in its answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.fault_endpoint import FaultEndpoint
from tests.helpers.hostile import leaks
from tests.integration.conftest import API_KEY, ENDPOINT_NAME, KEY, Server

pytestmark = pytest.mark.integration
BODY = {"texts": ["stocks rally as profit rises", "ebola outbreak spreads"]}
#: API Gateway's integration timeout: nothing may take longer.
API_BUDGET_S = 29.0


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FaultEndpoint, str]]:
    import os

    root: Path = tmp_path_factory.mktemp("faults")
    endpoint = FaultEndpoint().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(TEXTCLF_ARTIFACTS=str(root / "artifacts"), PYTHONUNBUFFERED="1", TEXTCLF_API_KEY=API_KEY)
    api = Server(
        "textclf serve",
        ["serve", "--endpoint-url", endpoint.url, "--endpoint-name", ENDPOINT_NAME],
        env,
        root / "serve.log",
        listen=("--fd",),
    )
    try:
        api.start()
        api.wait_ready(f"{api.url()}/health")
        yield endpoint, api.url()
    finally:
        api.stop()
        endpoint.stop()


def _predict(api: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = httpx.post(f"{api}/predict", json=BODY, headers=KEY, timeout=60)
    return reply, time.monotonic() - started


def test_every_endpoint_fault_maps_to_its_status_in_time_without_leaks(
    faulty: tuple[FaultEndpoint, str],
) -> None:
    endpoint, api = faulty
    seen: list[httpx.Response] = []

    def expect(mode: str, status: int) -> None:
        endpoint.mode = mode
        reply, elapsed = _predict(api)
        seen.append(reply)
        assert reply.status_code == status, (mode, reply.status_code, reply.text)
        assert elapsed < API_BUDGET_S, (mode, elapsed)
        body = reply.json()
        assert isinstance(body.get("message"), str) and body["message"], (mode, body)
        # Retry-After exactly where retrying helps (503), as the OpenAPI document says.
        assert (reply.headers.get("Retry-After") is not None) == (status == 503), (mode, reply.headers)
        if status == 503:
            assert int(reply.headers["Retry-After"]) > 0, mode

    endpoint.mode = "ok"
    ok, _ = _predict(api)
    assert ok.status_code == 200, ok.text
    expect("garbage", 502)  # a 200 that is not a prediction
    expect("error-with-internals", 502)  # its Traceback/ARN must not pass through
    expect("close", 503)  # connection closed mid-response: transient, retry
    expect("slow", 504)  # past the runtime client's read timeout, twice
    endpoint.kill()  # the host is gone: connections refused
    expect("ok", 503)
    for reply in seen:
        assert leaks(reply.text) == [], reply.text
