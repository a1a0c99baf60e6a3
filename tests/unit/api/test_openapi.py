"""The committed OpenAPI document is generated from the models, and says what the contract says."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from textclf_api.openapi import openapi_document
from textclf_api.schemas import MAX_TEXT_CHARS

from textclf.labels import LABELS

from .conftest import REPO

COMMITTED = REPO / "docs" / "openapi.json"


def test_committed_openapi_json_is_up_to_date() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "textclf_api.openapi"], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert COMMITTED.read_text() == generated, (
        "docs/openapi.json is stale: run `python -m textclf_api.openapi > docs/openapi.json` (make openapi)"
    )


def test_routes_methods_and_auth() -> None:
    document = openapi_document()
    routes = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routes == {
        ("/predict", "post"),
        ("/explain", "post"),
        ("/health", "get"),
        ("/train", "post"),
        ("/train/{job_name}", "get"),
        ("/batch", "post"),
        ("/batch/{job_name}", "get"),
        ("/feedback", "post"),
        ("/monitor", "get"),
    }
    paths = document["paths"]
    assert paths["/monitor"]["get"]["security"] == [{"sigv4": []}]
    assert {"200", "404"} <= set(paths["/monitor"]["get"]["responses"])
    # Labellers only: SigV4 (FeedbackAuth AWS_IAM, the default) or a labeller key (API_KEY).
    assert paths["/feedback"]["post"]["security"] == [{"sigv4": []}, {"api_key": []}]
    assert {"200", "403", "413", "422", "503"} <= set(paths["/feedback"]["post"]["responses"])
    assert paths["/train"]["post"]["security"] == [{"sigv4": []}]
    assert paths["/train/{job_name}"]["get"]["security"] == [{"sigv4": []}]
    assert (
        paths["/batch"]["post"]["security"]
        == paths["/batch/{job_name}"]["get"]["security"]
        == [{"sigv4": []}]
    )
    assert paths["/predict"]["post"]["security"] == paths["/explain"]["post"]["security"] == [{"api_key": []}]
    assert document["components"]["securitySchemes"]["api_key"]["name"] == "x-api-key"
    assert "security" not in paths["/health"]["get"]  # public
    assert set(paths["/predict"]["post"]["responses"]) == {
        "200",
        "400",
        "403",
        "413",
        "415",
        "422",
        "502",
        "503",
        "504",
    }
    assert set(paths["/health"]["get"]["responses"]) == {"200", "503"}
    assert "202" in paths["/train"]["post"]["responses"]
    assert {"200", "404"} <= set(paths["/train/{job_name}"]["get"]["responses"])


def test_labels_are_strings_of_the_served_set_with_the_news_topics_as_examples() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for name in ("Prediction", "ExplainResponse"):
        props = schemas[name]["properties"]
        # No compiled label list: any model's labels fit the schema.
        assert props["label"]["type"] == "string" and "enum" not in props["label"]
        assert "`labels`" in props["label"]["description"]
        assert props["label"]["examples"] == [LABELS[0]]
        assert "propertyNames" not in props["scores"]
    for name in ("PredictResponse", "ExplainResponse"):
        labels = schemas[name]["properties"]["labels"]
        assert "labels" in schemas[name]["required"]
        assert labels["type"] == "array" and labels["items"]["type"] == "string"
        assert "class-id order" in labels["description"]
        assert labels["examples"] == [list(LABELS)]  # the news preset, as an example
    (example,) = schemas["PredictResponse"]["examples"]
    assert example["labels"] == list(LABELS) and set(example["predictions"][0]["scores"]) == set(LABELS)
    # Every prediction is named, in the pattern POST /feedback takes.
    assert "prediction_id" in schemas["Prediction"]["required"]
    assert "prediction_id" in schemas["ExplainResponse"]["required"]
    pattern = schemas["Prediction"]["properties"]["prediction_id"]["pattern"]
    assert schemas["FeedbackItem"]["properties"]["prediction_id"]["pattern"] == pattern
    assert re.fullmatch(pattern, example["predictions"][0]["prediction_id"])
    feedback = schemas["FeedbackRequest"]["properties"]["items"]
    assert (feedback["minItems"], feedback["maxItems"]) == (1, 1000)


def test_request_limits_are_documented() -> None:
    schemas = openapi_document()["components"]["schemas"]
    predict = schemas["PredictRequest"]
    assert predict["additionalProperties"] is False
    texts = predict["properties"]["texts"]
    assert texts["type"] == "array"  # never null: an explicit null is refused (422)
    assert predict["properties"]["text"]["type"] == "string"
    assert (texts["minItems"], texts["maxItems"]) == (1, 64)
    assert texts["items"]["maxLength"] == MAX_TEXT_CHARS == 20_000
    train = schemas["TrainRequest"]["properties"]
    assert (train["epochs"]["minimum"], train["epochs"]["maximum"]) == (1, 20)
    assert (train["learning_rate"]["exclusiveMinimum"], train["learning_rate"]["maximum"]) == (0, 0.01)
    assert schemas["TrainRequest"]["additionalProperties"] is False


def test_document_is_deterministic() -> None:
    assert json.dumps(openapi_document(), sort_keys=True) == json.dumps(openapi_document(), sort_keys=True)
