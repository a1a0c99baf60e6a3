"""SageMaker's control plane on one machine: real training jobs and real endpoint rollouts.

moto records a training job as Completed the moment it is created and has no UpdateEndpoint, so
the loop the product exists for could never run locally on moto alone. This server sits in front
of moto (``AWS_ENDPOINT_URL_SAGEMAKER`` points here) and answers the operations moto only
records; everything else (models, endpoint configs, the model registry, ...) is passed to moto
unchanged:

- **Training jobs** (``training``) run ``train.py`` from the job's source bundle, as the SageMaker
  training toolkit does.
- **Endpoints** (``hosting``) hand the new config's model to the local model server, which loads
  it beside the serving one and switches when it is warm.
- **Transform jobs** (``transform``) score S3 objects through the model's handler chain.
- **Events**: each of their state changes, and every CreateModelPackage/UpdateModelPackage, is
  published on the local EventBridge with the shape SageMaker gives it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
from botocore.exceptions import ClientError
from starlette.types import ASGIApp, Receive, Scope, Send

from textclf.local.events import LocalEventBus
from textclf.local.sagemaker.common import SageMakerError, Services
from textclf.local.sagemaker.hosting import Endpoint, Endpoints
from textclf.local.sagemaker.training import TrainingJob, TrainingJobs
from textclf.local.sagemaker.transform import TransformJob, TransformJobs
from textclf.local.state import StateStore
from textclf.serving.servers import read_body

log = logging.getLogger(__name__)

PACKAGE_EVENT = "SageMaker Model Package State Change"
_MAX_BODY = 10 * 1024 * 1024
_JSON = "application/x-amz-json-1.1"


class LocalSageMaker:
    """The ASGI app (``app``) in front of moto, with its training jobs, transform jobs and endpoints."""

    def __init__(
        self,
        *,
        moto_url: str,
        region: str,
        bus: LocalEventBus | None,
        workdir: Path,
        client: Callable[[str], Any],
        model_server_url: str,
        base_model: Path | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.moto_url = moto_url.rstrip("/")
        self.region = region
        self.services = Services(region=region, workdir=workdir, client=client, bus=bus, store=store)
        self.training = TrainingJobs(self.services, base_model)
        self.hosting = Endpoints(self.services, model_server_url, s3_endpoint_url=self.moto_url)
        self.transform = TransformJobs(self.services)
        self._http = httpx.Client(timeout=60, trust_env=False)
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateTrainingJob": self.training.create_training_job,
            "DescribeTrainingJob": self.training.describe_training_job,
            "ListTrainingJobs": self.training.list_training_jobs,
            "StopTrainingJob": self.training.stop_training_job,
            "CreateEndpoint": self.hosting.create_endpoint,
            "UpdateEndpoint": self.hosting.update_endpoint,
            "DescribeEndpoint": self.hosting.describe_endpoint,
            "DeleteEndpoint": self.hosting.delete_endpoint,
            "ListEndpoints": self.hosting.list_endpoints,
            "CreateTransformJob": self.transform.create_transform_job,
            "DescribeTransformJob": self.transform.describe_transform_job,
        }

    @property
    def jobs(self) -> dict[str, TrainingJob]:
        return self.training.jobs

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        return self.hosting.endpoints

    @property
    def transforms(self) -> dict[str, TransformJob]:
        return self.transform.transforms

    def restore(self) -> None:
        """Jobs and endpoints as the store recorded them (what was running ends; see each part)."""
        self.training.restore()
        self.transform.restore()
        self.hosting.restore()

    def register_endpoint(self, name: str, config: str) -> None:
        self.hosting.register_endpoint(name, config)

    def set_reachable(self, name: str, reachable: bool) -> None:
        self.hosting.set_reachable(name, reachable)

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def app(self) -> ASGIApp:
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await read_body(receive, headers.get("content-length"), _MAX_BODY) or b""
        target = headers.get("x-amz-target", "")
        operation = target.split(".", 1)[1] if target.startswith("SageMaker.") else ""
        status, reply_headers, reply = await anyio.to_thread.run_sync(
            self.dispatch, operation, scope, headers, body
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply_headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply})

    def dispatch(
        self, operation: str, scope: Scope, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        handler = self._handlers.get(operation)
        if operation == "UpdateModelPackage":
            body = self._keep_package_metadata(body)
        if handler is None:
            status, reply_headers, reply = self._forward(scope, headers, body)
            if status == 200 and operation in ("CreateModelPackage", "UpdateModelPackage"):
                self._package_changed(json.loads(reply)["ModelPackageArn"])
            return status, reply_headers, reply
        try:
            try:
                result = handler(json.loads(body or b"{}"))
            except ClientError as exc:  # what moto answered for a resource this call needs
                error = exc.response.get("Error", {})
                raise SageMakerError(
                    str(error.get("Code", "ValidationException")), str(error.get("Message"))
                ) from exc
        except SageMakerError as exc:
            shape = {"__type": exc.code, "message": exc.message}
            return exc.status, {"content-type": _JSON}, json.dumps(shape).encode()
        return 200, {"content-type": _JSON}, json.dumps(result).encode()

    def _forward(
        self, scope: Scope, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{self.moto_url}{scope['path']}" + (f"?{query}" if query else "")
        keep = {k: v for k, v in headers.items() if k not in ("host", "content-length", "connection")}
        response = self._http.request(scope["method"], url, headers=keep, content=body)
        drop = {"content-length", "transfer-encoding", "connection", "content-encoding"}
        reply_headers = {k: v for k, v in response.headers.items() if k.lower() not in drop}
        return response.status_code, reply_headers, response.content

    def stop(self) -> None:
        self.training.stop()
        self.services.join(30)
        self.hosting.close()
        self._http.close()

    def _publish(self, detail_type: str, detail: dict[str, Any], resource: str) -> None:
        self.services.publish(detail_type, detail, resource)

    # -- registry events -------------------------------------------------------------------

    def _keep_package_metadata(self, body: bytes) -> bytes:
        """moto's UpdateModelPackage replaces CustomerMetadataProperties with the request's (None when
        absent); SageMaker keeps them. Resend the stored ones so an approval keeps the figures."""
        request = json.loads(body or b"{}")
        if "CustomerMetadataProperties" in request or "ModelPackageArn" not in request:
            return body
        desc = self.services.client("sagemaker").describe_model_package(
            ModelPackageName=request["ModelPackageArn"]
        )
        kept = desc.get("CustomerMetadataProperties")
        if kept:
            request["CustomerMetadataProperties"] = kept
        return json.dumps(request).encode()

    def _package_changed(self, arn: str) -> None:
        desc = self.services.client("sagemaker").describe_model_package(ModelPackageName=arn)
        detail = {
            "ModelPackageGroupName": desc.get("ModelPackageGroupName"),
            "ModelPackageVersion": desc.get("ModelPackageVersion"),
            "ModelPackageArn": arn,
            "ModelApprovalStatus": desc.get("ModelApprovalStatus"),
            "ModelPackageStatus": desc.get("ModelPackageStatus", "Completed"),
        }
        self._publish(PACKAGE_EVENT, detail, arn)
