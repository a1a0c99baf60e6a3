"""Serving pieces the CLI uses outside the local stack too (``textclf serve-endpoint``,
``predict``, ``explain``, the benchmark, the demo):

- ``endpoint``: a SageMaker-compatible model server (container contract and runtime path) with a
  micro-batcher (``batcher``) in front of ``model/inference.py``, whose archives ``model_store``
  unpacks;
- ``servers`` / ``net``: uvicorn in a thread and the listening sockets it is handed.

The AWS emulators around them (moto control plane, local SageMaker, API Gateway, EventBridge)
are ``textclf.local``'s.
"""

#: moto's default account: every local ARN, the Lambda context and the endpoint's errors use it.
LOCAL_ACCOUNT_ID = "123456789012"
