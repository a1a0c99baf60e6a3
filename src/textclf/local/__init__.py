"""The local stack: the deployed system on loopback, without AWS or Docker.

- ``endpoint``: a SageMaker-compatible model server (container contract and runtime path)
  with a micro-batcher (``batcher``) in front of ``model/inference.py``.
- ``control_plane``: a moto server seeded with the bucket, dataset, role and endpoint that
  the Lambda handlers expect (DescribeEndpoint, CreateTrainingJob, S3).
- ``apigw`` / ``api``: API Gateway REST proxy events built from HTTP requests and routed to the
  unchanged Lambda handlers by the routes in ``template.yaml`` (``template``).
- ``stack``: starts and stops all of it (``textclf serve``).
"""

#: moto's default account: every local ARN, the Lambda context and the endpoint's errors use it.
LOCAL_ACCOUNT_ID = "123456789012"
#: Environment variable that fixes the local stack's API key (otherwise one is made at start).
API_KEY_ENV = "TEXTCLF_API_KEY"
