"""Data capture of the local endpoint: SageMaker's capture files, written off the request path.

SageMaker writes what an endpoint with a ``DataCaptureConfig`` was asked and answered to
``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl``, one JSON line per sampled
invocation (``captureData.endpointInput`` / ``endpointOutput``, ``eventMetadata`` with the caller's
``InferenceId``, ``eventVersion``); docs/operations.md shows a line. The local endpoint writes the
same lines under the local bucket, so whatever reads capture in AWS reads it here.

A request only pays for :meth:`CaptureWriter.offer`: a sampling draw and an append to a bounded
buffer. A background thread turns the buffer into lines every ``flush_interval_s`` (and at
:meth:`CaptureWriter.close`) and writes each file whole, with one call of the store per file, so a
crash loses at most what was not flushed yet and never leaves half a file. A full buffer (the
store is slow or down) drops new records and counts them; a request never waits for the store.

Hand-written rather than a logging handler or a queue library: the contract is SageMaker's file
layout, the drop-don't-block rule and the whole-file writes, which none of those give.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)

#: ``store(bucket, key, body)``: write one whole object (an S3 PutObject, or a file).
Store = Callable[[str, str, bytes], None]

DEFAULT_FLUSH_INTERVAL_S: Final = 2.0
#: Records waiting for the writer before new ones are dropped (a few MB of headlines and answers).
DEFAULT_MAX_BUFFERED: Final = 10_000
JSON_TYPE: Final = "application/json"


#: JSON string literal of a str (the json module's C encoder, non-ASCII kept as is).
_quote: Callable[[str], str] = json.encoder.encode_basestring


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class CaptureConfig:
    """What an endpoint config's ``DataCaptureConfig`` asks for."""

    bucket: str
    prefix: str  # the destination's key prefix, without slashes at either end
    sampling_percent: float
    capture_input: bool = True
    capture_output: bool = True
    json_content_types: tuple[str, ...] = (JSON_TYPE,)

    @classmethod
    def from_data_capture_config(cls, config: Mapping[str, Any] | None) -> CaptureConfig | None:
        """The capture a ``DataCaptureConfig`` (CreateEndpointConfig's shape) enables; None when it
        is absent, disabled or samples nothing."""
        if not config or not config.get("EnableCapture", True):
            return None
        percent = float(config.get("InitialSamplingPercentage", 0))
        destination = str(config.get("DestinationS3Uri", ""))
        if percent <= 0 or not destination.startswith("s3://"):
            return None
        bucket, _, prefix = destination[5:].partition("/")
        modes = {str(option.get("CaptureMode")) for option in config.get("CaptureOptions") or []}
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(
            bucket=bucket,
            prefix=prefix.strip("/"),
            sampling_percent=min(percent, 100.0),
            capture_input=bool(modes & {"Input", "InputAndOutput"}),
            capture_output=bool(modes & {"Output", "InputAndOutput"}),
            json_content_types=tuple(_media(t) for t in header.get("JsonContentTypes") or ()),
        )


@dataclass(frozen=True)
class _Record:
    """One invocation as the request path hands it over (turned into a line by the writer)."""

    at: float
    inference_id: str | None
    request: bytes
    request_type: str
    reply: bytes
    reply_type: str


@dataclass
class CaptureStats:
    offered: int = 0
    sampled_out: int = 0
    #: Refused because the buffer was full (the store fell behind).
    dropped: int = 0
    written: int = 0
    files: int = 0
    #: Records whose file could not be stored in the retries they were given.
    lost: int = 0
    failed_writes: int = 0


class CaptureWriter:
    """Samples invocations and writes them as SageMaker capture files through ``store``."""

    def __init__(
        self,
        config: CaptureConfig,
        store: Store,
        *,
        endpoint_name: str,
        variant: str,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.endpoint_name = endpoint_name
        self.variant = variant
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self.stats = CaptureStats()
        self._draw = random.Random(seed).random
        self._clock = clock
        self._last_second, self._last_time = -1, ""
        self._buffer: deque[_Record] = deque()
        #: Files built but not stored yet (the store failed): retried on the next flush.
        self._unstored: list[tuple[str, bytes, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)

    # -- the request path --------------------------------------------------------------------

    def offer(
        self,
        request: bytes,
        request_type: str,
        reply: bytes,
        reply_type: str = JSON_TYPE,
        inference_id: str | None = None,
    ) -> bool:
        """Sample one answered invocation and buffer it; False when it was sampled out or dropped.
        Constant time, no lock, no I/O: a deque append is atomic."""
        self.stats.offered += 1
        if self._draw() * 100.0 >= self.config.sampling_percent:
            self.stats.sampled_out += 1
            return False
        if len(self._buffer) >= self.max_buffered:
            self.stats.dropped += 1
            return False
        self._buffer.append(_Record(self._clock(), inference_id, request, request_type, reply, reply_type))
        return True

    # -- the writer thread -------------------------------------------------------------------

    def start(self) -> CaptureWriter:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Write what is buffered: one file per hour folder, each with one call of the store."""
        records: list[_Record] = []
        while self._buffer:
            records.append(self._buffer.popleft())
        by_hour: dict[int, list[str]] = {}
        for record, event_id in zip(records, uuid4_strings(len(records)), strict=True):
            by_hour.setdefault(int(record.at // 3600), []).append(self.line(record, event_id))
        for hour, lines in by_hour.items():
            folder = f"{datetime.fromtimestamp(hour * 3600, tz=UTC):%Y/%m/%d/%H}"
            parts = [self.config.prefix, self.endpoint_name, self.variant, folder, f"{uuid.uuid4()}.jsonl"]
            key = "/".join(part for part in parts if part)
            self._unstored.append((key, "".join(lines).encode("utf-8"), len(lines)))
        self._store_pending()

    def _store_pending(self) -> None:
        pending, self._unstored = self._unstored, []
        for key, body, count in pending:
            try:
                self.store(self.config.bucket, key, body)
            except Exception:
                self.stats.failed_writes += 1
                log.warning("capture: storing s3://%s/%s failed", self.config.bucket, key, exc_info=True)
                self._unstored.append((key, body, count))
                continue
            self.stats.written += count
            self.stats.files += 1
        # Files waiting for a store that keeps failing are bounded like the buffer: oldest go first.
        while sum(count for _, _, count in self._unstored) > self.max_buffered:
            _, _, count = self._unstored.pop(0)
            self.stats.lost += count

    def line(self, record: _Record, event_id: str) -> str:
        """The capture line of one invocation (SageMaker's field names and encodings).

        Assembled from pre-quoted pieces rather than one ``json.dumps`` of a dict: it runs once
        per captured request on the serving machine, and this is about three times cheaper."""
        parts = ['{"captureData":{']
        if self.config.capture_input:
            parts.append('"endpointInput":' + self._data(record.request, record.request_type, "INPUT"))
        if self.config.capture_output:
            parts.append(("," if len(parts) > 1 else "") + '"endpointOutput":')
            parts.append(self._data(record.reply, record.reply_type, "OUTPUT"))
        parts.append('},"eventMetadata":{"eventId":"' + event_id + '"')
        if record.inference_id:
            parts.append(',"inferenceId":' + _quote(record.inference_id))
        parts.append(',"inferenceTime":"' + self._time(record.at) + '"},"eventVersion":"0"}\n')
        return "".join(parts)

    def _time(self, at: float) -> str:
        second = int(at)
        if second != self._last_second:  # most records of a flush share their second
            self._last_second, self._last_time = (
                second,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)),
            )
        return self._last_time

    def _data(self, body: bytes, content_type: str, mode: str) -> str:
        observed = content_type or JSON_TYPE
        data: str | None = None
        encoding = "JSON"
        if _media(observed) in self.config.json_content_types:
            # Not UTF-8 after all: kept as SageMaker keeps any other type (below).
            with contextlib.suppress(UnicodeDecodeError):
                data = body.decode("utf-8")
        if data is None:
            data, encoding = base64.b64encode(body).decode("ascii"), "BASE64"
        return (
            f'{{"observedContentType":{_quote(observed)},"mode":"{mode}",'
            f'"data":{_quote(data)},"encoding":"{encoding}"}}'
        )

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush what is buffered and stop the thread (a store that hangs is given ``timeout_s``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        elif self._buffer:
            self.flush()
        log.info(
            "capture of %s: %d written in %d files, %d sampled out, %d dropped (buffer full), %d lost",
            self.endpoint_name,
            self.stats.written,
            self.stats.files,
            self.stats.sampled_out,
            self.stats.dropped,
            self.stats.lost,
        )


def uuid4_strings(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs from one read of the OS's randomness: ``uuid.uuid4()``
    reads it once per id, which costs more than the rest of a capture line."""
    raw = os.urandom(16 * count).hex()
    out = []
    for start in range(0, 32 * count, 32):
        h = raw[start : start + 32]
        variant = "89ab"[int(h[16], 16) & 3]
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}")
    return out


# -- stores ----------------------------------------------------------------------------------


def s3_store(client: Any) -> Store:
    """Each file one PutObject: S3 makes an object visible whole or not at all."""

    def put(bucket: str, key: str, body: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/jsonl")

    return put


@dataclass(frozen=True)
class DirectoryStore:
    """``<root>/<bucket>/<key>`` on disk, each file written to a temporary name and renamed into
    place (``textclf serve-endpoint --capture-dir``: the endpoint without an S3 at hand)."""

    root: Path

    def __call__(self, bucket: str, key: str, body: bytes) -> None:
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(body)
        os.replace(temporary, path)
