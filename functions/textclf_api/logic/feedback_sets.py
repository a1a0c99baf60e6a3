"""The feedback rows of a retraining job: ground truth joined to the text it labels.

A retrain trains on the serving model's dataset (the parent) plus the feedback received until the
alarm fired. This module builds the two extra channels the job reads (``model/retraining.py``):

- ``feedback``: rows appended to the training rows;
- ``recent``: the newest ``RecentHoldout`` share of the rows new since the champion's training
  (its ``feedback_until``; all rows for a champion no retrain made), at least ``RECENT_MIN_ROWS``
  when there are that many, never trained on: the gate compares challenger and champion on it.
  A share of the new rows, not of all: labels add up over the months, and a share of all of them
  would hold out most of the last month, what the challenger most needs to learn; an earlier
  retrain's recent rows are trained on by the next.

Rows are ``{"text", "label", "prediction_id", "labeller", "received_at"}`` JSON Lines, read with
:mod:`production` (the one reader of capture and ground truth): quarantined labels are dropped
first, then the last label of an id wins, then each is joined to its captured text. Each labeller
keeps at most ``FeedbackMaxShare`` of the training rows (:func:`cap_per_labeller`). Files are
named by the SHA-256 of their bytes under ``feedback-sets/``, so a repeated build writes nothing
new and a job's channel can never change under it. Plain ``json``: the function stays small.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from textclf_api.logic import authority, production
from textclf_api.schemas import FEEDBACK_SETS_PREFIX

#: The recent window holds at least this many rows when there are that many: a gate on 10
#: headlines would be noise.
RECENT_MIN_ROWS: Final = 50


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    prediction_id: str
    labeller: str
    received_at: datetime

    def line(self) -> str:
        record = {
            "text": self.text,
            "label": self.label,
            "prediction_id": self.prediction_id,
            "labeller": self.labeller,
            "received_at": self.received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass
class FeedbackSet:
    """What a retrain adds to its parent dataset, and the counts its record keeps."""

    until: datetime
    feedback: list[Row]
    recent: list[Row]
    labels_read: int = 0  # distinct prediction ids with a label (after quarantine)
    unjoined: int = 0  # labels whose prediction the capture does not hold (sampled, or unknown ids)
    quarantined: int = 0  # label lines skipped because their labeller is quarantined
    capped: dict[str, int] = field(default_factory=dict)  # rows left out by the per-labeller cap
    stats: production.ReadStats = field(default_factory=production.ReadStats)

    def per_labeller(self, rows: Sequence[Row]) -> dict[str, int]:
        return dict(Counter(row.labeller for row in rows))

    def record(self) -> dict[str, Any]:
        return {
            "feedback_until": self.until.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "feedback_rows": len(self.feedback),
            "recent_rows": len(self.recent),
            "feedback_per_labeller": self.per_labeller(self.feedback),
            "recent_per_labeller": self.per_labeller(self.recent),
            "labels_read": self.labels_read,
            "unjoined_labels": self.unjoined,
            "quarantined_labels": self.quarantined,
            "capped_per_labeller": self.capped,
            "unreadable_lines": self.stats.unreadable,
        }


def build(
    s3: Any,
    bucket: str,
    endpoint: str,
    *,
    until: datetime,
    max_share: float,
    recent_share: float,
    new_since: datetime | None = None,
) -> FeedbackSet:
    """Every label received before ``until`` joined to its captured text, split and capped;
    ``new_since``: the champion's ``feedback_until`` (the recent share is of the rows after it)."""
    stats = production.ReadStats()
    blocked = authority.read_quarantine(s3, bucket)
    items = []
    skipped = 0
    for item in production.ground_truth(s3, bucket, start=None, end=until, stats=stats):
        if authority.quarantined(item, blocked):
            skipped += 1
        else:
            items.append(item)
    labels = production.latest_labels(items)
    joined = production.join(
        production.captured(s3, bucket, endpoint, start=None, end=until, stats=stats), labels
    )
    rows = sorted(
        (Row(p.text, g.label, g.prediction_id, g.labeller, g.received_at) for p, g in joined),
        key=lambda r: (r.received_at, r.prediction_id),
    )
    train, recent = split_recent(rows, recent_share, new_since)
    kept, capped = cap_per_labeller(train, max_share)
    return FeedbackSet(
        until=until,
        feedback=kept,
        recent=recent,
        labels_read=len(labels),
        unjoined=len(labels) - len(joined),
        quarantined=skipped,
        capped=capped,
        stats=stats,
    )


def split_recent(
    rows: Sequence[Row], share: float, new_since: datetime | None = None
) -> tuple[list[Row], list[Row]]:
    """(older rows, the newest ``share`` of the rows received after ``new_since`` (all rows when
    None) -- at least RECENT_MIN_ROWS when there are); ``rows`` are in the order received."""
    if share <= 0 or not rows:
        return list(rows), []
    new = sum(1 for r in rows if new_since is None or r.received_at > new_since)
    n = min(len(rows), max(math.ceil(share * new), RECENT_MIN_ROWS))
    return list(rows[: len(rows) - n]), list(rows[len(rows) - n :])


def cap_per_labeller(rows: Sequence[Row], share: float) -> tuple[list[Row], dict[str, int]]:
    """Each labeller's newest rows, at most ``share`` of the rows kept; returns the kept rows (in
    their order) and how many each capped labeller lost.

    Water-filling: every labeller keeps ``min(their rows, m)`` for the largest ``m`` at which no
    one holds more than the share. Fewer than ``1/share`` labellers cannot all stay under it (a
    lone labeller is 100%), so the share is then an equal split between those there are: one
    labeller cannot outweigh the others, but the rows of a lone honest labeller are all kept.
    """
    by_labeller: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_labeller[row.labeller].append(row)
    counts = {name: len(r) for name, r in by_labeller.items()}
    if not counts:
        return [], {}
    limit = max(share, 1.0 / len(counts))

    def fits(level: int) -> bool:
        kept = [min(n, level) for n in counts.values()]
        return max(kept) <= limit * sum(kept) + 1e-9

    low, high = 0, max(counts.values())  # fits(low) holds; find the largest level that fits
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    keep = {id(row) for own in by_labeller.values() for row in own[len(own) - min(len(own), low) :]}
    capped = {name: n - low for name, n in counts.items() if n > low}
    return [row for row in rows if id(row) in keep], capped


# --------------------------------------------------------------------------------------------
# Content-addressed files
# --------------------------------------------------------------------------------------------


def put_content_addressed(s3: Any, bucket: str, body: bytes, suffix: str, content_type: str) -> str:
    """``s3://<bucket>/feedback-sets/<sha256><suffix>``, written once (same bytes, same key)."""
    key = f"{FEEDBACK_SETS_PREFIX}{hashlib.sha256(body).hexdigest()}{suffix}"
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return f"s3://{bucket}/{key}"


def upload_rows(s3: Any, bucket: str, rows: Sequence[Row]) -> str | None:
    """The rows as one content-addressed JSON Lines file (None for no rows: no channel)."""
    if not rows:
        return None
    body = "".join(row.line() for row in rows).encode("utf-8")
    return put_content_addressed(s3, bucket, body, ".jsonl", "application/jsonl")
