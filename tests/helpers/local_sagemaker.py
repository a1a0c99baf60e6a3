"""The local SageMaker on its own moto server, with a bus that records what it would publish."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textclf.local.control_plane import ControlPlane
from textclf.local.sagemaker import LocalSageMaker


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def put(self, detail_type: str, detail: dict[str, Any], resources: Any = ()) -> dict[str, Any]:
        self.events.append((detail_type, detail))
        return {}


@contextmanager
def local_sagemaker(
    workdir: Path, bucket: str, *, base_model: Path | None = None
) -> Iterator[tuple[LocalSageMaker, RecordingBus, ControlPlane]]:
    """A started moto server with ``bucket``, and the local SageMaker in front of it. Its model
    server URL has nothing listening: a rollout must fail cleanly."""
    plane = ControlPlane("us-east-1")
    plane.start()
    plane.client("s3").create_bucket(Bucket=bucket)
    bus = RecordingBus()
    sagemaker = LocalSageMaker(
        moto_url=plane.url,
        region="us-east-1",
        bus=bus,  # type: ignore[arg-type]  # records what would be published
        workdir=workdir,
        client=plane.client,
        model_server_url="http://127.0.0.1:9",
        base_model=base_model,
    )
    try:
        yield sagemaker, bus, plane
    finally:
        sagemaker.stop()
        plane.stop()
