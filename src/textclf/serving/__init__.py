"""Serving pieces the CLI uses outside the local stack too (``textclf serve-endpoint``,
``predict``, ``explain``, the benchmark, the demo):

- ``endpoint``: a SageMaker-compatible model server (container contract and runtime path) with a
  micro-batcher (``batcher``) in front of ``model/inference.py``, whose archives ``model_store``
  unpacks;
- ``servers`` / ``net``: uvicorn in a thread and the listening sockets it is handed.

The AWS emulators around them (moto control plane, local SageMaker, API Gateway, EventBridge)
are ``textclf.local``'s.
"""

from typing import Any

#: moto's default account: every local ARN, the Lambda context and the endpoint's errors use it.
LOCAL_ACCOUNT_ID = "123456789012"
#: What the local stack's AWS clients sign with (moto accepts anything; never real keys).
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def local_session(region: str) -> Any:
    """A boto3 session with :data:`FAKE_CREDENTIALS`, whatever the process environment holds."""
    import boto3  # on first use: the serving modules load without it

    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=region,
    )
