"""Print the API's OpenAPI document: ``python -m textclf_api.openapi > docs/openapi.json``.

Generated from the API functions' routers (and so from the pydantic models in ``schemas.py``);
``tests/unit/api`` fails when the committed ``docs/openapi.json`` differs from this output.
"""

from __future__ import annotations

import json
import sys
from typing import Any

TITLE = "textclf API"
VERSION = "1.0.0"
#: A route's ``security=``: the schemes below, by name.
API_KEY_AUTH: list[dict[str, list[str]]] = [{"api_key": []}]
#: Documents API Gateway's AWS_IAM authorizer.
IAM_AUTH: list[dict[str, list[str]]] = [{"sigv4": []}]

DESCRIPTION = (
    "Classifies text into the label set of the model a SageMaker endpoint serves (every answer lists "
    "it in `labels`; the default model sorts news headlines into business, science_and_technology, "
    "entertainment and health), starts SageMaker training jobs and Batch Transform jobs. `/predict` "
    "needs an API key (`x-api-key`; the stack's PredictAuth parameter can switch it to SigV4 or off), "
    "`/train` and `/batch` routes "
    "need AWS IAM (SigV4) authentication, `/feedback` takes labellers only (SigV4 by default, or a "
    "key of the labellers usage plan: FeedbackAuth), `/monitor` (the monitor's latest report of drift and "
    "live accuracy) needs SigV4, `/health` is public. Every answer of `/predict` "
    "and `/explain` names each prediction (`prediction_id`), which `/feedback` takes. Every error is "
    "a JSON object with `message` and `error`."
)


def openapi_document() -> dict[str, Any]:
    # Imported here so `python -m` does not import handler modules twice (as __main__ and by name).
    # powertools' OpenAPI models too: the handlers import this module for the security names above,
    # and building those pydantic models is about 90 ms of a cold start that never needs them.
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, Server

    from textclf_api.handlers import feedback, health, monitor, predict, training, transform

    app = APIGatewayRestResolver(enable_validation=True)
    routers = (
        predict.router,
        feedback.router,
        health.router,
        training.router,
        transform.router,
        monitor.router,
    )
    for router in routers:
        app.include_router(router)
    schema = app.get_openapi_json_schema(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        servers=[Server(url="https://{api_id}.execute-api.{region}.amazonaws.com/{stage}")],
        security_schemes={
            "api_key": APIKey.model_validate(
                {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "An API key of the stack's usage plan (output ApiKeyId; see the README).",
                }
            ),
            # API Gateway's own OpenAPI extension for AWS_IAM (SigV4) authorization.
            "sigv4": APIKey.model_validate(
                {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS Signature Version 4 (API Gateway AWS_IAM authorization).",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                }
            ),
        },
    )
    document: dict[str, Any] = json.loads(schema)
    # Server variables are not expressible through powertools' Server model without values; add them.
    document["servers"][0]["variables"] = {
        "api_id": {"default": "abcdef1234", "description": "API Gateway REST API id (stack output)"},
        "region": {"default": "us-east-1"},
        "stage": {"default": "prod"},
    }
    _drop_unreachable_422(document)
    _drop_unused_schemas(document)
    return document


def _drop_unreachable_422(document: dict[str, Any]) -> None:
    # powertools documents a 422 for every validated route; a route without parameters or body
    # (GET /health) can never answer it.
    for operations in document["paths"].values():
        for operation in operations.values():
            if "parameters" not in operation and "requestBody" not in operation:
                operation["responses"].pop("422", None)


def _drop_unused_schemas(document: dict[str, Any]) -> None:
    # powertools always adds its own validation-error schemas; ours (ErrorResponse) replace them.
    schemas: dict[str, Any] = document["components"]["schemas"]
    while True:
        text = json.dumps({k: v for k, v in document.items() if k != "components"}) + json.dumps(schemas)
        unused = [name for name in schemas if f'"#/components/schemas/{name}"' not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]


def main() -> int:
    sys.stdout.write(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
