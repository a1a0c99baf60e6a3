"""Batch Transform on one machine: the local SageMaker runs transform jobs for real.

What SageMaker does with a ``CreateTransformJob`` request, on this machine: the job's Model
archive is downloaded from (local) S3 and loaded as the container would load it (its own
``code/inference.py``); every object under the input prefix is split by line into mini-batches of
at most ``MaxPayloadInMB``; each mini-batch goes through the toolkit's chain
``input_fn(ContentType)`` -> ``predict_fn`` -> ``output_fn(Accept)``; the answers are joined line
by line (``AssembleWith: Line``) into ``<S3OutputPath>/<file>.out``. A record the model refuses
fails the job with the file and line in ``FailureReason``, as a 4xx from the container does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf.local import LOCAL_ACCOUNT_ID

log = logging.getLogger(__name__)

TRANSFORM_EVENT = "SageMaker Transform Job State Change"


@dataclass
class TransformJob:
    name: str
    request: dict[str, Any]
    region: str
    status: str = "InProgress"
    failure_reason: str | None = None
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    records: int = 0

    def __post_init__(self) -> None:
        self.created = self.created or time.time()

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{LOCAL_ACCOUNT_ID}:transform-job/{self.name}"

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = {
            **{k: v for k, v in self.request.items() if k != "Tags"},
            "TransformJobName": self.name,
            "TransformJobArn": self.arn,
            "TransformJobStatus": self.status,
            "CreationTime": self.created,
        }
        for key, value in (
            ("FailureReason", self.failure_reason),
            ("TransformStartTime", self.started),
            ("TransformEndTime", self.ended),
        ):
            if value is not None:
                desc[key] = value
        return desc


def mini_batches(text: str, max_bytes: int) -> Iterator[tuple[int, list[str]]]:
    """``(first line number, lines)`` of at most ``max_bytes`` each (SplitType Line, MultiRecord);
    a single longer line is sent alone, as SageMaker does."""
    batch: list[str] = []
    size = 0
    first = 1
    for number, line in enumerate(text.splitlines(), start=1):
        cost = len(line.encode("utf-8")) + 1
        if batch and size + cost > max_bytes:
            yield first, batch
            batch, size = [], 0
        if not batch:
            first = number
        batch.append(line)
        size += cost
    if batch:
        yield first, batch


def transform_objects(
    served: Any,
    objects: Iterator[tuple[str, str]],
    request: dict[str, Any],
    write: Callable[[str, str], None],
) -> int:
    """Score every ``(name, text)`` object through the model's handler chain; ``write(name, out)``."""
    content_type = request["TransformInput"].get("ContentType", "application/json")
    accept = request["TransformOutput"].get("Accept", "application/json")
    max_bytes = int(request.get("MaxPayloadInMB", 6)) * 1024 * 1024
    module, model = served.module, served.model
    records = 0
    for name, text in objects:
        parts: list[str] = []
        for first, lines in mini_batches(text, max_bytes):
            try:
                texts = module.input_fn("\n".join(lines), content_type)
            except ValueError as exc:
                raise TransformError(f"{name}: {_shift(str(exc), first - 1)}") from exc
            prediction = module.predict_fn(texts, model)
            prediction["model_version"] = served.version
            rendered = module.output_fn(prediction, accept)
            parts.append(rendered if rendered.endswith("\n") else rendered + "\n")
            records += len(texts)
        write(name, "".join(parts))
    return records


class TransformError(Exception):
    """A record the model refused: the job fails with this reason."""


def _shift(message: str, offset: int) -> str:
    """The model names lines of its mini-batch; the job's reason names lines of the file."""
    if offset and message.startswith("line "):
        number, _, rest = message[5:].partition(":")
        if number.isdigit():
            return f"line {int(number) + offset}:{rest}"
    return message


def load_model(archive: Path, version: str | None, sha256: str | None) -> Any:
    """The archive loaded as the container loads it (its own code/inference.py), checked against
    the SHA-256 S3 holds for it when there is one."""
    from textclf.serving.endpoint import ServingModel

    return ServingModel.load(archive, version, sha256)
