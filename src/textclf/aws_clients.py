"""boto3 clients for the CLI's AWS commands, aimed at real AWS or at a running ``textclf serve``.

``--local`` reads the state file the local stack writes while it runs (its URLs, the names its
template resolved to) and sends the calls there with fake credentials, so ``textclf models``,
``textclf teardown`` and ``textclf invoke`` work the same on one machine as against a deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from textclf.errors import UserError


@dataclass(frozen=True)
class Target:
    """Where the calls go, and the stack's names there (None: ask the user)."""

    session: Any
    endpoints: dict[str, str]  # service name -> endpoint URL (local stack only)
    state: dict[str, str]

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoints.get(service))


def target(*, local: bool, region: str | None) -> Target:
    import boto3
    from botocore.exceptions import BotoCoreError

    if not local:
        try:
            session = boto3.session.Session(region_name=region)
        except BotoCoreError as exc:
            raise UserError(f"AWS session: {exc}") from exc
        if not session.region_name:
            raise UserError("no AWS region: pass --region or set AWS_REGION")
        return Target(session, {}, {})
    state = local_state()
    from textclf.local.control_plane import FAKE_CREDENTIALS

    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=state["region"],
    )
    moto = state["control_plane_url"]
    endpoints = {
        "sagemaker": state["sagemaker_url"],
        "sagemaker-runtime": state["endpoint_url"],
        "s3": moto,
        "dynamodb": moto,
        "application-autoscaling": moto,
    }
    return Target(session, endpoints, state)


def local_state() -> dict[str, str]:
    from textclf.local.stack import state_file

    path = state_file()
    try:
        state: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"no running local stack ({path} is missing): start it with `make serve`") from exc
    return state
