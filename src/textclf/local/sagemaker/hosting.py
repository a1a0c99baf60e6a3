"""Endpoints of the local SageMaker (Create/Update/Describe/Delete/ListEndpoints).

The model of the new endpoint config is downloaded and handed to the local model server
(``POST /admin/model``) with the config's ``DataCaptureConfig`` and where the local S3 is, which
loads it beside the serving one and switches when it is warm -- no request is dropped -- and
captures from then on as the config says. Status goes Creating / Updating -> InService (or back
to the old config with a FailureReason, as SageMaker rolls back).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from textclf.local import LOCAL_ACCOUNT_ID
from textclf.local.sagemaker.common import INTERRUPTED, SageMakerError, Services, record_of

log = logging.getLogger(__name__)

ENDPOINT_EVENT = "SageMaker Endpoint State Change"


@dataclass
class Endpoint:
    name: str
    config: str
    region: str
    status: str = "InService"
    failure_reason: str | None = None
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    #: False from the moment a rollout settles until its state-change event is on the bus.
    announced: bool = True
    #: False while the model server does not answer /ping (DescribeEndpoint then finds nothing).
    reachable: bool = True

    KIND = "endpoint"

    def record(self) -> dict[str, Any]:
        return record_of(self, transient=("reachable",))

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{LOCAL_ACCOUNT_ID}:endpoint/{self.name}"

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "EndpointConfigName": self.config,
            "EndpointStatus": self.status,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
        }
        if self.failure_reason:
            desc["FailureReason"] = self.failure_reason
        return desc


class Endpoints:
    """The endpoints, hosted by one local model server (``model_server_url``)."""

    def __init__(self, services: Services, model_server_url: str, s3_endpoint_url: str | None = None) -> None:
        self.services = services
        self.model_server_url = model_server_url.rstrip("/")
        #: Where the model server writes data capture (the control plane's S3).
        self.s3_endpoint_url = s3_endpoint_url
        self.endpoints: dict[str, Endpoint] = {}
        self._http = httpx.Client(timeout=60, trust_env=False)

    def close(self) -> None:
        self._http.close()

    def register_endpoint(self, name: str, config: str) -> None:
        """The endpoint the stack starts with (its model is already loaded in the model server)."""
        with self.services.lock:
            self.endpoints[name] = Endpoint(name=name, config=config, region=self.services.region)
            self._save(self.endpoints[name])

    def restore(self) -> None:
        """The recorded endpoints. A rollout the stack stopped in never switched (the model
        server lost the new model with the process): an update ends InService on the old config,
        as SageMaker rolls back a failed update; a create ends Failed. Either is announced."""
        for record in self.services.records(Endpoint.KIND):
            endpoint = Endpoint(**record)
            self.endpoints[endpoint.name] = endpoint
            if endpoint.status in ("Creating", "Updating"):
                endpoint.status = "Failed" if endpoint.status == "Creating" else "InService"
                endpoint.failure_reason = f"InternalServerError: {INTERRUPTED}"
                endpoint.modified = time.time()
                endpoint.announced = False
                log.warning(
                    "endpoint %s: %s; now %s on %s",
                    endpoint.name,
                    INTERRUPTED,
                    endpoint.status,
                    endpoint.config,
                )
            if not endpoint.announced:
                self._announce(endpoint)

    def _save(self, endpoint: Endpoint) -> None:
        self.services.save(Endpoint.KIND, endpoint.name, endpoint.record())

    def set_reachable(self, name: str, reachable: bool) -> None:
        endpoint = self.endpoints.get(name)
        if endpoint is not None:
            endpoint.reachable = reachable

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None or not endpoint.reachable:
            arn = f"arn:aws:sagemaker:{self.services.region}:{LOCAL_ACCOUNT_ID}:endpoint/{name}"
            raise SageMakerError("ValidationException", f'Could not find endpoint "{arn}".')
        return endpoint

    def describe_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._endpoint(str(request.get("EndpointName"))).describe()

    def list_endpoints(self, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "Endpoints": [
                {
                    k: e.describe()[k]
                    for k in ("EndpointName", "EndpointArn", "EndpointStatus", "CreationTime")
                }
                for e in self.endpoints.values()
                if e.reachable
            ]
        }

    def create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name, config = str(request["EndpointName"]), str(request["EndpointConfigName"])
        with self.services.lock:
            if name in self.endpoints:
                raise SageMakerError(
                    "ValidationException", f'Cannot create already existing endpoint "{name}".'
                )
            self.services.client("sagemaker").describe_endpoint_config(
                EndpointConfigName=config
            )  # must exist
            endpoint = Endpoint(name=name, config=config, region=self.services.region, status="Creating")
            self.endpoints[name] = endpoint
            self._save(endpoint)
        self.services.background(self._roll_out, endpoint, config, name=f"endpoint-{name}")
        return {"EndpointArn": endpoint.arn}

    def update_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        name, config = str(request["EndpointName"]), str(request["EndpointConfigName"])
        endpoint = self._endpoint(name)
        with self.services.lock:
            if endpoint.status != "InService":
                raise SageMakerError(
                    "ValidationException", f'Cannot update in-progress endpoint "{endpoint.arn}".'
                )
            self.services.client("sagemaker").describe_endpoint_config(EndpointConfigName=config)
            endpoint.status, endpoint.failure_reason, endpoint.modified = "Updating", None, time.time()
            self._save(endpoint)
        self.services.background(self._roll_out, endpoint, config, name=f"endpoint-{name}")
        return {"EndpointArn": endpoint.arn}

    def delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._endpoint(str(request.get("EndpointName")))
        with self.services.lock:
            self.endpoints.pop(endpoint.name, None)
            self.services.forget(Endpoint.KIND, endpoint.name)
        detail = {"EndpointName": endpoint.name, "EndpointArn": endpoint.arn, "EndpointStatus": "DELETED"}
        self.services.publish(ENDPOINT_EVENT, detail, endpoint.arn)
        return {}

    def _roll_out(self, endpoint: Endpoint, config: str) -> None:
        """Load the config's model in the model server, then switch (SageMaker's blue/green)."""
        creating = endpoint.status == "Creating"
        try:
            archive, version, sha256 = self.fetch_model(config)
            request = {
                "model": str(archive),
                "version": version,
                "sha256": sha256,
                "capture": self.capture_of(config),
                "s3_endpoint_url": self.s3_endpoint_url,
            }
            reply = self._http.post(f"{self.model_server_url}/admin/model", json=request, timeout=600)
            if reply.status_code != 200:
                raise RuntimeError(f"the model server refused the model: {reply.text[:300]}")
            endpoint.config, endpoint.status = config, "InService"
        except Exception as exc:
            log.exception("rollout of %s to endpoint %s failed", config, endpoint.name)
            # A failed update returns to the old config, as SageMaker rolls back; a failed create fails.
            endpoint.status = "Failed" if creating else "InService"
            endpoint.failure_reason = f"{type(exc).__name__}: {exc}"[:1000]
        endpoint.modified = time.time()
        endpoint.announced = False
        self._announce(endpoint)

    def _announce(self, endpoint: Endpoint) -> None:
        """Record the settled rollout, put its event on the bus, record that it went out."""
        self._save(endpoint)
        status = {"InService": "IN_SERVICE", "Failed": "FAILED"}[endpoint.status]
        detail = {
            "EndpointName": endpoint.name,
            "EndpointArn": endpoint.arn,
            "EndpointConfigName": endpoint.config,
            "EndpointStatus": status,
        }
        if endpoint.failure_reason:
            detail["FailureReason"] = endpoint.failure_reason
        self.services.publish(ENDPOINT_EVENT, detail, endpoint.arn)
        endpoint.announced = True
        self._save(endpoint)

    def capture_of(self, config: str) -> dict[str, Any] | None:
        """The endpoint config's DataCaptureConfig (None: it captures nothing)."""
        described = self.services.client("sagemaker").describe_endpoint_config(EndpointConfigName=config)
        capture = described.get("DataCaptureConfig")
        return dict(capture) if capture else None

    def fetch_model(self, config: str) -> tuple[Path, str | None, str | None]:
        """The archive of the config's (single) model, downloaded; the version its env names; the
        SHA-256 S3 holds for it (when it was stored with one), which the model server checks."""
        sagemaker = self.services.client("sagemaker")
        variant = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
        return self.services.fetch_model_of(variant["ModelName"], config)
