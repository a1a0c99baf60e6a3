"""What production saw and what labellers said: readers of capture and ground-truth files.

The monitor (live accuracy, drift) and the retraining path (feedback rows) both need the same
three things: the predictions the endpoint made in a time range (SageMaker's data-capture files),
the labels posted for them (ground-truth merge files, the last label of an id wins), and the join
of the two on ``prediction_id``. This module is their one reader; it takes an S3 client, so the
cloud and the local stack (moto on loopback) read alike.

Files are read as SageMaker writes them and as a crash can leave them: a line that does not parse
(a torn last line, a foreign writer) is skipped and counted, never fatal, and never read twice.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from textclf_api.schemas import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX

T = TypeVar("T")


@dataclass(frozen=True)
class Prediction:
    """One answer of the endpoint: the text it was asked about and the label it gave."""

    prediction_id: str
    text: str
    label: str
    score: float
    model_version: str | None
    time: datetime


@dataclass(frozen=True)
class GroundTruth:
    """One label a labeller posted for a prediction."""

    prediction_id: str
    label: str
    labeller: str
    received_at: datetime


@dataclass
class ReadStats:
    """What the readers saw besides what they returned."""

    files: int = 0
    lines: int = 0
    unreadable: int = 0  # torn or foreign lines, skipped
    without_id: int = 0  # capture records of calls made without an InferenceId
    notes: list[str] = field(default_factory=list)

    def skip(self, where: str, why: str) -> None:
        self.unreadable += 1
        if len(self.notes) < 10:  # enough to diagnose; a report must stay small
            self.notes.append(f"{where}: {why}")


def parse_time(value: str) -> datetime:
    """An ISO-8601 time as SageMaker and textclf write it (``Z`` or an offset), in UTC."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _decoded(data: Mapping[str, Any]) -> Any:
    raw = str(data["data"])
    if data.get("encoding") == "BASE64":
        raw = base64.b64decode(raw).decode("utf-8")
    return json.loads(raw)


def _texts(request: Any) -> list[str]:
    inputs = request["inputs"] if isinstance(request, dict) else request
    return [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]


def _answers(reply: Any) -> list[Mapping[str, Any]]:
    if "predictions" in reply:
        return list(reply["predictions"])
    return [reply]  # an explanation answers one headline with its label and score


def parse_capture_line(line: str) -> list[Prediction]:
    """The predictions of one capture record (one invocation); raises on a malformed line."""
    record = json.loads(line)
    meta = record["eventMetadata"]
    inference_id = meta.get("inferenceId")
    if not inference_id:
        return []
    data = record["captureData"]
    texts = _texts(_decoded(data["endpointInput"]))
    reply = _decoded(data["endpointOutput"])
    answers = _answers(reply)
    if len(answers) != len(texts):
        raise ValueError(f"{len(texts)} inputs but {len(answers)} answers")
    when = parse_time(str(meta["inferenceTime"]))
    version = reply.get("model_version")
    return [
        Prediction(f"{inference_id}-{i}", text, str(a["label"]), float(a["score"]), version, when)
        for i, (text, a) in enumerate(zip(texts, answers, strict=True))
    ]


def parse_ground_truth_line(line: str) -> GroundTruth:
    """One ground-truth merge line as POST /feedback writes it; raises on a malformed line."""
    record = json.loads(line)
    provenance = record.get("textclf") or {}
    return GroundTruth(
        prediction_id=str(record["eventMetadata"]["eventId"]),
        label=str(record["groundTruthData"]["data"]),
        labeller=str(provenance.get("labeller", "unknown")),
        received_at=parse_time(str(provenance["received_at"])),
    )


def _parsed(lines: Iterable[str], parse: Callable[[str], T], stats: ReadStats, where: str) -> Iterator[T]:
    """Each non-blank line parsed; a line that does not parse is skipped and counted."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        stats.lines += 1
        try:
            parsed = parse(line)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            stats.skip(f"{where}:{number}", f"{type(exc).__name__}: {str(exc)[:120]}")
            continue
        yield parsed


def read_capture(lines: Iterable[str], stats: ReadStats, where: str = "capture") -> Iterator[Prediction]:
    for predictions in _parsed(lines, parse_capture_line, stats, where):
        if not predictions:
            stats.without_id += 1
        yield from predictions


def read_ground_truth(
    lines: Iterable[str], stats: ReadStats, where: str = "ground truth"
) -> Iterator[GroundTruth]:
    return _parsed(lines, parse_ground_truth_line, stats, where)


def latest_labels(items: Iterable[GroundTruth]) -> dict[str, GroundTruth]:
    """One label per prediction id: the last received (files are read in any order)."""
    latest: dict[str, GroundTruth] = {}
    for item in items:
        seen = latest.get(item.prediction_id)
        if seen is None or item.received_at >= seen.received_at:
            latest[item.prediction_id] = item
    return latest


def join(
    predictions: Iterable[Prediction], labels: Mapping[str, GroundTruth]
) -> list[tuple[Prediction, GroundTruth]]:
    """Each labelled prediction with its label (a prediction captured twice counts once)."""
    seen: dict[str, tuple[Prediction, GroundTruth]] = {}
    for prediction in predictions:
        label = labels.get(prediction.prediction_id)
        if label is not None:
            seen[prediction.prediction_id] = (prediction, label)
    return list(seen.values())


# --------------------------------------------------------------------------------------------
# S3 layout
# --------------------------------------------------------------------------------------------


def hour_prefixes(prefix: str, start: datetime, end: datetime) -> list[str]:
    """The ``<prefix>yyyy/mm/dd/hh/`` folders of every hour that overlaps ``[start, end)``, a whole
    day, month or year that lies inside the range named by its own folder (``yyyy/mm/dd/``,
    ``yyyy/mm/``, ``yyyy/``): labels counted since a model trained months ago are one listing per
    month, not thousands of hourly ones."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out: list[str] = []
    while hour < end and start < end:
        year = hour.replace(year=hour.year + 1) if (hour.month, hour.day, hour.hour) == (1, 1, 0) else None
        month = _next_month(hour) if (hour.day, hour.hour) == (1, 0) else None
        if hour >= start and year is not None and year <= end:
            out.append(f"{prefix}{hour:%Y}/")
            hour = year
        elif hour >= start and month is not None and month <= end:
            out.append(f"{prefix}{hour:%Y/%m}/")
            hour = month
        elif hour >= start and hour.hour == 0 and hour + timedelta(days=1) <= end:
            out.append(f"{prefix}{hour:%Y/%m/%d}/")
            hour += timedelta(days=1)
        else:
            out.append(f"{prefix}{hour:%Y/%m/%d/%H}/")
            hour += timedelta(hours=1)
    return out


def _next_month(when: datetime) -> datetime:
    return (
        when.replace(year=when.year + 1, month=1) if when.month == 12 else when.replace(month=when.month + 1)
    )


def list_keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def read_lines(s3: Any, bucket: str, key: str) -> list[str]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body.decode("utf-8", errors="replace").splitlines()


def capture_variant_prefixes(s3: Any, bucket: str, endpoint: str) -> list[str]:
    """``capture/<endpoint>/<variant>/`` for each variant that has written capture."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{CAPTURE_PREFIX}{endpoint}/", Delimiter="/"
    )
    return [str(p["Prefix"]) for page in pages for p in page.get("CommonPrefixes", [])]


def _window_prefixes(prefix: str, start: datetime | None, end: datetime) -> list[str]:
    """The hour folders of ``[start, end)``; the whole prefix when there is no start (everything
    before ``end``: a retraining dataset takes all the feedback there is)."""
    return [prefix] if start is None else hour_prefixes(prefix, start, end)


def _within(when: datetime, start: datetime | None, end: datetime) -> bool:
    return (start is None or start <= when) and when < end


def _files(
    s3: Any, bucket: str, prefixes: Iterable[str], stats: ReadStats
) -> Iterator[tuple[str, list[str]]]:
    """``(key, lines)`` of every object under ``prefixes``, counted in ``stats.files``."""
    for prefix in prefixes:
        for key in list_keys(s3, bucket, prefix):
            stats.files += 1
            yield key, read_lines(s3, bucket, key)


def captured(
    s3: Any, bucket: str, endpoint: str, *, start: datetime | None, end: datetime, stats: ReadStats
) -> Iterator[Prediction]:
    """The predictions made in ``[start, end)`` by every variant of ``endpoint`` (start None:
    every prediction before ``end``)."""
    for variant in capture_variant_prefixes(s3, bucket, endpoint):
        for key, lines in _files(s3, bucket, _window_prefixes(variant, start, end), stats):
            for prediction in read_capture(lines, stats, key):
                if _within(prediction.time, start, end):
                    yield prediction


def ground_truth(
    s3: Any, bucket: str, *, start: datetime | None, end: datetime, stats: ReadStats
) -> Iterator[GroundTruth]:
    """Every label received in ``[start, end)`` (duplicates included: see :func:`latest_labels`;
    start None: every label received before ``end``)."""
    for key, lines in _files(s3, bucket, _window_prefixes(GROUND_TRUTH_PREFIX, start, end), stats):
        for item in read_ground_truth(lines, stats, key):
            if _within(item.received_at, start, end):
                yield item
