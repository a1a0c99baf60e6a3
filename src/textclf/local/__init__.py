"""The local stack: the deployed system on loopback, without AWS or Docker.

- the model server it hosts is ``textclf.serving`` (also used outside the stack).
- ``control_plane``: a moto server seeded with the bucket, dataset, role and endpoint that
  the Lambda handlers expect (DescribeEndpoint, CreateTrainingJob, S3).
- ``apigw`` / ``api``: API Gateway REST proxy events built from HTTP requests and routed to the
  unchanged Lambda handlers by the routes in ``template.yaml`` (``template``).
- ``stack``: starts and stops all of it (``textclf serve``).
"""

from textclf.serving import LOCAL_ACCOUNT_ID

__all__ = ["API_KEY_ENV", "LABELLER_KEY_ENV", "LOCAL_ACCOUNT_ID"]

#: Environment variable that fixes the local stack's API key (otherwise one is made at start).
API_KEY_ENV = "TEXTCLF_API_KEY"
#: ... and the labellers' key (POST /feedback), likewise.
LABELLER_KEY_ENV = "TEXTCLF_LABELLER_KEY"
