"""What the parts of the local SageMaker share: its error shape, the clients, the event bus and
the background threads jobs and rollouts run in."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from textclf_api.logic.transform import split_s3

from textclf.local.events import LocalEventBus
from textclf.local.state import StateStore

#: What a restart does to a job or rollout that was running when the stack stopped.
INTERRUPTED = "the local stack stopped while this ran (restarted since); nothing resumed it"


class SageMakerError(Exception):
    """An error answered in SageMaker's JSON shape (botocore raises it as a ClientError)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class Services:
    """The control plane (boto3 clients aimed at moto), the bus, the work folder, the threads."""

    region: str
    workdir: Path
    client: Callable[[str], Any]
    bus: LocalEventBus | None
    #: Where jobs and endpoints are recorded as they change (None: they live in memory only).
    store: StateStore | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def background(self, target: Callable[..., None], *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def join(self, timeout_s: float) -> None:
        for thread in self.threads:
            thread.join(timeout_s)

    def publish(self, detail_type: str, detail: dict[str, Any], resource: str) -> None:
        if self.bus is not None:
            self.bus.put(detail_type, detail, [resource])

    def save(self, kind: str, name: str, record: dict[str, Any]) -> None:
        if self.store is not None:
            self.store.save(kind, name, record)

    def forget(self, kind: str, name: str) -> None:
        if self.store is not None:
            self.store.forget(kind, name)

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [] if self.store is None else self.store.records(kind)

    def fetch_model_of(self, model_name: str, folder: str) -> tuple[Path, str | None, str | None]:
        """The archive of a SageMaker model, downloaded under ``models/<folder>``; the version its
        env names; the SHA-256 S3 holds for it (when it was stored with one), which the model
        server checks."""
        container = self.client("sagemaker").describe_model(ModelName=model_name)["PrimaryContainer"]
        bucket, key = split_s3(container["ModelDataUrl"])
        dest = self.workdir / "models" / folder / "model.tar.gz"
        dest.parent.mkdir(parents=True, exist_ok=True)
        s3 = self.client("s3")
        checksum = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED").get("ChecksumSHA256")
        s3.download_file(bucket, key, str(dest))
        # A multipart upload's checksum is of its parts ("<b64>-<n>"), not of the file: unusable here.
        sha256 = base64.b64decode(checksum).hex() if checksum and "-" not in checksum else None
        return dest, (container.get("Environment") or {}).get("TEXTCLF_MODEL_VERSION"), sha256


def record_of(item: Any, transient: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dataclass's fields as a JSON-ready record, without the ``transient`` ones."""
    return {f.name: getattr(item, f.name) for f in fields(item) if f.name not in transient}
