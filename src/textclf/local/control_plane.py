"""The local control plane: a moto server standing in for SageMaker, S3 and IAM.

Seeded with what the deployed stack has after ``sam deploy`` and a first data upload:
- the bucket, with the dataset pointer ``datasets/latest.json`` and its channels, and the
  training source bundle ``code/sourcedir.tar.gz`` — so ``POST /train`` finds its inputs;
- the SageMaker execution role;
- a SageMaker model, endpoint config and endpoint named like the local endpoint — so
  ``DescribeEndpoint`` (``GET /health``) answers ``InService``.

Training jobs and endpoints are not moto's: ``textclf.local.sagemaker`` runs them for real in
front of moto. Health follows the real local endpoint: ``EndpointWatcher`` probes its ``/ping``
and tells the local SageMaker when it stops or starts answering (``DescribeEndpoint`` then fails
with "Could not find endpoint", which the health function reports as 503 ``NotFound``).

The deploy loop's resources are seeded too: its DynamoDB tables and the model package group.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from botocore.config import Config
from textclf_api.logic.deploy_records import MODEL_VERSION_ENV

from textclf.bundle import source_bundle_bytes
from textclf.local import LOCAL_ACCOUNT_ID
from textclf.local.recorder import Recorder
from textclf.local.state import StateStore
from textclf.serving import local_session

log = logging.getLogger(__name__)

DATASET_PREFIX = "datasets/local"
MODEL_KEY = "models/local/model.tar.gz"
# The Hugging Face inference image the deployed endpoint would run (recorded, never pulled).
INFERENCE_IMAGE = (
    "763104351884.dkr.ecr.{region}.amazonaws.com/huggingface-pytorch-inference:"
    "2.6.0-transformers5.5.3-cpu-py312-ubuntu22.04"
)


@dataclass(frozen=True)
class Seed:
    """What to create in the control plane."""

    region: str
    bucket: str
    role_name: str
    endpoint_name: str
    data_dir: Path | None  # processed data (``textclf data`` output) to upload, if any
    model_archive: Path | None  # model.tar.gz to record as the endpoint's model data, if any
    #: The version that archive's model answers as, recorded as SageMaker records a deployed one
    #: (the Model's TEXTCLF_MODEL_VERSION), so GET /health names what /predict answers with.
    model_version: str | None = None
    dataset_pointer_key: str = "datasets/latest.json"
    source_bundle_key: str = "code/sourcedir.tar.gz"
    #: DynamoDB tables (deployment records, idempotency keys) and the model package group.
    tables: tuple[str, ...] = ()
    model_package_group: str | None = None
    #: What the dataset pointer tells training jobs (textclf.eda.training_defaults).
    training_defaults: dict[str, Any] | None = None
    #: The endpoint config's DataCaptureConfig, as the deploy function writes it (None: no capture).
    data_capture: dict[str, Any] | None = None
    #: The stack's ECR repository of textclf's inference image (its name; None: none).
    inference_repository: str | None = None

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{self.role_name}"


class ControlPlane:
    """A moto server on a free loopback port, seeded by ``seed()``; with a ``store``, what
    it holds is recorded there (``recorder``) and :meth:`restore` gives it back."""

    def __init__(self, region: str, host: str = "127.0.0.1", store: StateStore | None = None) -> None:
        self.region = region
        self.host = host
        self.store = store
        self.recorder: Recorder | None = None
        self._server: Any = None
        self.url = ""

    def start(self) -> None:
        # moto logs every request through werkzeug at INFO: noise next to the API's own log.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        def wrap(app: Any) -> Any:
            if self.store is None:
                return app
            self.recorder = Recorder(app, self.store, self.client)
            return self.recorder

        # Port 0: the OS picks a free port, so the control plane never collides with anything.
        self._server = _MotoServer(wrap, ip_address=self.host, port=0)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        # moto's backends are process-wide: a stack started before in this process (tests, a
        # restart in process) must leave nothing behind -- the stored state is the only memory.
        httpx.post(f"{self.url}/moto-api/reset", timeout=30, trust_env=False).raise_for_status()
        log.info("control plane (moto) on %s", self.url)

    def stop(self) -> None:
        if self.recorder is not None:
            self.recorder.recording = False
        if self._server is not None:
            self._server.stop()
            self._server = None

    def restore(self, seed: Seed) -> dict[str, int]:
        """After :meth:`seed`: the stored state back into moto, then recording on (and everything
        moto holds now stored, the seed's objects included). The checkout's source bundle and the
        ``--model`` archive stay as seeded: they are this start's, not the last one's."""
        assert self.recorder is not None, "a control plane without a store has nothing to restore"
        keep = frozenset({(seed.bucket, seed.source_bundle_key), (seed.bucket, MODEL_KEY)})
        counts = self.recorder.restore(self.url, self.region, keep=keep)
        self.recorder.recording = True
        self.recorder.sync_all()
        return counts

    def client(self, service: str) -> Any:
        """A boto3 client aimed at this control plane, whatever the process environment says."""
        session = local_session(self.region)
        # The stubs type client() per literal service name; this helper serves several names.
        make_client: Callable[..., Any] = session.client
        return make_client(
            service,
            endpoint_url=self.url,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )

    # -- seeding ---------------------------------------------------------------------------

    def seed(self, seed: Seed) -> None:
        s3 = self.client("s3")
        if seed.region == "us-east-1":
            s3.create_bucket(Bucket=seed.bucket)
        else:
            s3.create_bucket(
                Bucket=seed.bucket, CreateBucketConfiguration={"LocationConstraint": seed.region}
            )
        self.client("iam").create_role(
            RoleName=seed.role_name,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "sagemaker.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        self._upload_dataset(s3, seed)
        s3.put_object(Bucket=seed.bucket, Key=seed.source_bundle_key, Body=source_bundle_bytes())
        model_data = f"s3://{seed.bucket}/{MODEL_KEY}"
        if seed.model_archive is not None and seed.model_archive.is_file():
            s3.upload_file(str(seed.model_archive), seed.bucket, MODEL_KEY)
        sagemaker = self.client("sagemaker")
        sagemaker.create_model(
            ModelName=seed.endpoint_name,
            ExecutionRoleArn=seed.role_arn,
            PrimaryContainer={
                "Image": INFERENCE_IMAGE.format(region=seed.region),
                "ModelDataUrl": model_data,
                "Environment": {MODEL_VERSION_ENV: seed.model_version} if seed.model_version else {},
            },
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=seed.endpoint_name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": seed.endpoint_name,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.c5.large",
                }
            ],
            **({"DataCaptureConfig": seed.data_capture} if seed.data_capture else {}),
        )
        if seed.model_package_group:
            sagemaker.create_model_package_group(ModelPackageGroupName=seed.model_package_group)
        dynamodb = self.client("dynamodb")
        for table in seed.tables:
            create_id_table(dynamodb, table)
        if seed.inference_repository:
            record_textclf_image(self.client("ecr"), seed.inference_repository)

    def _upload_dataset(self, s3: Any, seed: Seed) -> None:
        """Channels under ``datasets/local/`` and the pointer the trigger function reads."""
        prefix = DATASET_PREFIX
        uploaded = 0
        if seed.data_dir is not None and seed.data_dir.is_dir():
            for path in sorted(seed.data_dir.rglob("*")):
                if path.is_file():
                    key = f"{prefix}/{path.relative_to(seed.data_dir).as_posix()}"
                    s3.upload_file(str(path), seed.bucket, key)
                    uploaded += 1
        # No processed data yet: the pointer still names the (empty) prefix, so POST /train is
        # accepted and its job fails with train.py's own message about the missing labels.json.
        # The label set is the data's own: nothing is made up here.
        sha = _manifest_sha(seed.data_dir)
        pointer: dict[str, Any] = {
            "uri": f"s3://{seed.bucket}/{prefix}/",
            "sha256": sha,
            "created": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        }
        if seed.training_defaults:
            pointer["training_defaults"] = seed.training_defaults
        s3.put_object(
            Bucket=seed.bucket,
            Key=seed.dataset_pointer_key,
            Body=json.dumps(pointer).encode(),
            ContentType="application/json",
        )
        log.info("control plane: dataset pointer -> %s (%d files uploaded)", pointer["uri"], uploaded)


class _MotoServer:
    """moto's ``ThreadedMotoServer`` with its WSGI app wrapped (moto offers no hook for it): the
    same werkzeug server, request handler and dispatcher, with the recorder in front."""

    def __init__(self, wrap: Callable[[Any], Any], *, ip_address: str, port: int) -> None:
        self._wrap = wrap
        self._address = (ip_address, port)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def _entry(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = self._wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(*self._address, app, True, request_handler=MotoRequestHandler)
        self._ready.set()
        self._server.serve_forever()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._entry, name="moto", daemon=True)
        self._thread.start()
        self._ready.wait()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join()


def record_textclf_image(ecr: Any, repository: str) -> str:
    """The stack's repository of textclf's inference image with one image in it, recorded and
    never pulled (like ``INFERENCE_IMAGE``): the local SageMaker serves every model with textclf's
    server, so local rollouts pin this image by digest as deployed ones pin the newest pushed.
    Returns its digest."""
    ecr.create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE")
    # moto's digest is of the layer digests: one layer naming the server it stands for.
    blob = {"size": 0, "digest": f"sha256:{hashlib.sha256(b'textclf serve-endpoint').hexdigest()}"}
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": blob,
        "layers": [blob],
    }
    image = ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag="local")
    return str(image["image"]["imageId"]["imageDigest"])


def create_id_table(dynamodb: Any, name: str) -> None:
    """A table shaped like the template's (DeploymentsTable, IdempotencyTable): string key ``id``."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _manifest_sha(data_dir: Path | None) -> str:
    if data_dir is not None and (data_dir / "manifest.json").exists():
        try:
            manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
        except ValueError:
            return ""
        for key in ("sha256", "source_sha256"):
            if isinstance(manifest.get(key), str):
                return str(manifest[key])
        source = manifest.get("source")
        if isinstance(source, dict) and isinstance(source.get("sha256"), str):
            return str(source["sha256"])
    return ""


class EndpointWatcher:
    """Keeps the control plane's endpoint in step with the local endpoint's ``/ping``."""

    def __init__(
        self,
        on_change: Callable[[str, bool], None],
        endpoint_name: str,
        ping_url: str,
        *,
        interval_s: float = 0.5,
        timeout_s: float = 2.0,
    ) -> None:
        self.on_change = on_change
        self.endpoint_name = endpoint_name
        self.ping_url = ping_url
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.in_service: bool | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="endpoint-watcher", daemon=True)
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)

    def ping(self) -> bool:
        try:
            return self._client.get(self.ping_url).status_code == 200
        except httpx.HTTPError:
            return False

    def sync(self) -> bool:
        """Probe once and update the control plane on a change; returns the endpoint's state."""
        up = self.ping()
        if up != self.in_service:
            self.on_change(self.endpoint_name, up)
            if self.in_service is not None:
                log.warning(
                    "local endpoint %s %s: SageMaker endpoint %r is now %s",
                    self.ping_url,
                    "answers /ping again" if up else "stopped answering /ping",
                    self.endpoint_name,
                    "InService" if up else "gone (GET /health answers 503)",
                )
            self.in_service = up
        return up

    def start(self) -> None:
        self.sync()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync()
            except Exception:  # the control plane is stopping; the next round retries
                log.debug("endpoint watcher round failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._client.close()
