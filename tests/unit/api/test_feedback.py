"""POST /feedback: labellers only, labels of the served model only, stored as SageMaker's ground
truth merge format with who and when; every hostile request a clear 4xx with nothing stored."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from textclf_api.handlers import feedback as feedback_handler
from textclf_api.logic.deployment import publish_serving_labels
from textclf_api.schemas import MAX_BODY_BYTES, SERVING_LABELS_KEY
from textclf_api.settings import get_settings

from .conftest import BUCKET, SERVING_LABELS, ApiResponse, load_event, with_body

Invoke = Callable[..., ApiResponse]
ID = "0f8c2a9e4b7d4c1e9a3b5d7f1e2c4a6b"
ALICE = "arn:aws:iam::123456789012:user/labeller-alice"
#: ground-truth/yyyy/mm/dd/hh/<uuid>.jsonl, the hour of receipt (UTC).
KEY = re.compile(r"^ground-truth/\d{4}/\d{2}/\d{2}/\d{2}/[0-9a-f-]{36}\.jsonl$")
NEWS = SERVING_LABELS["labels"]


def stored(s3: Any) -> dict[str, list[dict[str, Any]]]:
    """Every ground-truth object: key -> its lines."""
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="ground-truth/").get("Contents", [])
    return {
        o["Key"]: [
            json.loads(line)
            for line in s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().splitlines()
        ]
        for o in listed
    }


def items(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"items": [{"prediction_id": pid, "label": label} for pid, label in pairs]}


def api_key_mode(monkeypatch: pytest.MonkeyPatch, *ids: str) -> None:
    monkeypatch.setenv("FEEDBACK_AUTH", "API_KEY")
    monkeypatch.setenv("LABELLER_API_KEY_IDS", ",".join(ids))
    get_settings.cache_clear()


def keyed(event: dict[str, Any], key_id: str | None) -> dict[str, Any]:
    """``event`` as API Gateway sends it for a keyed method: the key's id, no SigV4 identity."""
    event = json.loads(json.dumps(event))
    identity = event["requestContext"]["identity"]
    identity.update(userArn=None, user=None, caller=None, accessKey=None, apiKeyId=key_id, apiKey="value")
    event["headers"].pop("Authorization")
    event["multiValueHeaders"].pop("Authorization")
    return event


def test_labels_are_stored_in_the_ground_truth_format_with_who_and_when(bucket: Any, invoke: Invoke) -> None:
    response = invoke(feedback_handler, "feedback")
    assert response.status == 200, response.body
    body = response.body
    assert {
        k: body[k] for k in ("accepted", "duplicates_in_request", "labels", "model_version", "labeller")
    } == {
        "accepted": 2,
        "duplicates_in_request": 0,
        "labels": {"science_and_technology": 1, "health": 1},
        "model_version": "3",
        "labeller": ALICE,
    }
    received = datetime.fromisoformat(body["received_at"].replace("Z", "+00:00"))
    ((key, lines),) = stored(bucket).items()
    assert KEY.match(key) and key.startswith(f"ground-truth/{received:%Y/%m/%d/%H}/")
    assert lines == [
        {
            "groundTruthData": {"data": label, "encoding": "CSV"},
            "eventMetadata": {"eventId": f"{ID}-{i}"},
            "eventVersion": "0",
            "textclf": {"labeller": ALICE, "received_at": lines[0]["textclf"]["received_at"]},
        }
        for i, label in enumerate(["science_and_technology", "health"])
    ]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", lines[0]["textclf"]["received_at"])


def test_an_id_twice_keeps_its_last_label_and_counts_once(bucket: Any, invoke: Invoke) -> None:
    response = invoke(feedback_handler, "feedback_duplicates")
    assert response.status == 200, response.body
    assert (response.body["accepted"], response.body["duplicates_in_request"]) == (2, 1)
    assert response.body["labels"] == {"entertainment": 1, "health": 1}
    ((_, lines),) = stored(bucket).items()
    assert {line["eventMetadata"]["eventId"]: line["groundTruthData"]["data"] for line in lines} == {
        f"{ID}-0": "entertainment",
        f"{ID}-1": "health",
    }


def test_ids_the_capture_never_saw_and_batch_ids_are_accepted(bucket: Any, invoke: Invoke) -> None:
    body = items(("f" * 32 + "-63", "business"), ("textclf-batch-250101120000-abc-123456", "health"))
    response = invoke(feedback_handler, with_body(load_event("feedback"), body))
    assert response.status == 200, response.body
    assert response.body["accepted"] == 2


def too_big() -> str:
    return json.dumps(items(*[(f"{ID}-0", "x" * 250)] * 4000))


HOSTILE: list[tuple[str, Any, int, str]] = [
    (
        "unknown label",
        items((f"{ID}-0", "health"), (f"{ID}-1", "sports"), (f"{ID}-2", "weather")),
        422,
        "items[1].label 'sports' is not a label of the served model (version 3): one of "
        "['business', 'science_and_technology', 'entertainment', 'health'] (2 items have labels outside it)",
    ),
    (
        "no items",
        {"items": []},
        422,
        "invalid request: items: List should have at least 1 item after validation, not 0",
    ),
    (
        "1,001 items",
        items(*[(f"{ID}-0", "health")] * 1001),
        422,
        "invalid request: items: List should have at most 1000 items after validation, not 1001",
    ),
    ("no items field", {}, 422, "invalid request: items: Field required"),
    (
        "duplicate field name",
        '{"items": [{"prediction_id": "' + ID + '-0", "label": "health", "label": "business"}]}',
        400,
        "the request body repeats the key 'label'; send each field once",
    ),
    (
        "duplicate top-level field",
        '{"items": [], "items": [{"prediction_id": "' + ID + '-0", "label": "health"}]}',
        400,
        "the request body repeats the key 'items'; send each field once",
    ),
    (
        "extra field in an item",
        {"items": [{"prediction_id": f"{ID}-0", "label": "health", "confidence": 1}]},
        422,
        "invalid request: items[0].confidence: Extra inputs are not permitted",
    ),
    (
        "extra top-level field",
        {**items((f"{ID}-0", "health")), "labeller": "someone-else"},
        422,
        "invalid request: labeller: Extra inputs are not permitted",
    ),
    (
        "label not a string",
        items((f"{ID}-0", 3)),
        422,
        "invalid request: items[0].label: Input should be a valid string",
    ),  # type: ignore[arg-type]
    (
        "id not a string",
        {"items": [{"prediction_id": 7, "label": "health"}]},
        422,
        "invalid request: items[0].prediction_id: Input should be a valid string",
    ),
    (
        "items not a list",
        {"items": {"0": "health"}},
        422,
        "invalid request: items: Input should be a valid list",
    ),
    (
        "item not an object",
        {"items": ["health"]},
        422,
        "invalid request: items[0]: Input should be a valid dictionary or object",
    ),
    (
        "malformed id",
        items(("not-a-prediction-id", "health")),
        422,
        "invalid request: items[0].prediction_id: String should match pattern",
    ),
    (
        "id without index",
        items((ID, "health")),
        422,
        "invalid request: items[0].prediction_id: String should match",
    ),
    (
        "empty label",
        items((f"{ID}-0", "")),
        422,
        "invalid request: items[0].label: String should have at least 1",
    ),
    ("an array", "[]", 422, "the request body must be a JSON object, not an array"),
    ("not JSON", "{items: 1}", 400, "the request body is not valid JSON: Expecting property name"),
    ("oversized", too_big(), 413, "bytes; the limit is 1048576"),
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_feedback_is_a_clear_4xx_and_nothing_is_stored(
    bucket: Any, invoke: Invoke, hostile: tuple[str, Any, int, str]
) -> None:
    case, body, status, message = hostile
    if case == "oversized":
        assert len(body.encode()) > MAX_BODY_BYTES
    response = invoke(feedback_handler, with_body(load_event("feedback"), body))
    assert response.status == status, response.body
    assert message in response.body["message"], response.body["message"]
    assert "Traceback" not in json.dumps(response.body)
    assert stored(bucket) == {}


def test_with_api_keys_a_predict_key_is_forbidden_before_its_body_is_read(
    bucket: Any, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_key_mode(monkeypatch, "labkey1", "labkey2")
    for key_id in ("predictkey", None):
        # Not even a valid body is needed to be told: the caller is refused first.
        response = invoke(feedback_handler, keyed(with_body(load_event("feedback"), "{not json"), key_id))
        assert response.status == 403, response.body
        assert response.body["error"] == "Forbidden"
        assert "this API key may not send feedback" in response.body["message"]
    accepted = invoke(feedback_handler, keyed(load_event("feedback"), "labkey2"))
    assert accepted.status == 200, accepted.body
    assert accepted.body["labeller"] == "labkey2"
    ((_, lines),) = stored(bucket).items()
    assert {line["textclf"]["labeller"] for line in lines} == {"labkey2"}  # the key id, never its value


def test_with_iam_a_request_without_a_principal_is_forbidden(bucket: Any, invoke: Invoke) -> None:
    response = invoke(feedback_handler, keyed(load_event("feedback"), "labkey1"))
    assert response.status == 403
    assert "SigV4-signed request of an IAM principal" in response.body["message"]
    assert stored(bucket) == {}


def test_api_keys_without_labeller_ids_is_a_configuration_error(
    bucket: Any, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_key_mode(monkeypatch)
    response = invoke(feedback_handler, keyed(load_event("feedback"), "labkey1"))
    assert (response.status, response.body["error"]) == (503, "ConfigurationError")


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (None, "no model has started serving through the deploy function yet"),
        ({**SERVING_LABELS, "labels": None}, "the serving model's archive records none"),
        ("not json", "its record is not JSON"),
    ],
)
def test_without_a_known_served_label_set_feedback_waits(
    bucket: Any, invoke: Invoke, record: Any, why: str
) -> None:
    if record is None:
        bucket.delete_object(Bucket=BUCKET, Key=SERVING_LABELS_KEY)
    else:
        body = record if isinstance(record, str) else json.dumps(record)
        bucket.put_object(Bucket=BUCKET, Key=SERVING_LABELS_KEY, Body=body)
    response = invoke(feedback_handler, "feedback")
    assert response.status == 503
    assert why in response.body["message"] and response.headers["retry-after"] == "30"
    assert stored(bucket) == {}


def test_the_served_label_set_is_reused_while_fresh(
    bucket: Any, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke(feedback_handler, "feedback").status == 200
    other = {**SERVING_LABELS, "labels": ["spam", "ham"], "model_version": "4"}
    bucket.put_object(Bucket=BUCKET, Key=SERVING_LABELS_KEY, Body=json.dumps(other))
    assert invoke(feedback_handler, "feedback").status == 200  # within 30 s: the set it read
    monkeypatch.setenv("SERVED_LABELS_CACHE_SECONDS", "0")
    get_settings.cache_clear()
    refused = invoke(feedback_handler, "feedback")
    assert refused.status == 422 and "(version 4): one of ['spam', 'ham']" in refused.body["message"]


def test_the_deploy_function_records_what_serves_from_the_archives_label_file(bucket: Any) -> None:
    """What the feedback function reads is what the deploy function wrote when the model started
    serving: the label file beside the admitted archive the endpoint config's model names."""
    import boto3

    from .conftest import REGION, ROLE_ARN

    labels = ["négatif", "neutral", "positive"]
    data = f"s3://{BUCKET}/models/00112233aabbccdd/model.tar.gz"
    bucket.put_object(
        Bucket=BUCKET, Key="models/00112233aabbccdd/labels.json", Body=json.dumps({"labels": labels})
    )
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_model(
        ModelName="textclf-test-v4-20250101-120000",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={
            "Image": "image",
            "ModelDataUrl": data,
            "Environment": {"TEXTCLF_MODEL_VERSION": "4"},
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName="textclf-test-v4-20250101-120000",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "textclf-test-v4-20250101-120000",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    record = publish_serving_labels({"EndpointConfigName": "textclf-test-v4-20250101-120000"}, get_settings())
    written = json.loads(bucket.get_object(Bucket=BUCKET, Key=SERVING_LABELS_KEY)["Body"].read())
    assert written == record
    assert (written["labels"], written["model_version"], written["model_data"]) == (labels, "4", data)
