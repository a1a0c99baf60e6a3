"""The monitor: one window of production compared with the serving model's baseline.

Each run reads the window ``[end - MonitorWindowMinutes, end)`` -- predictions from the data
capture, labels from the ground truth (production.py, the one reader) -- and the ``baseline.json``
kept beside the serving archive, then writes a report (``monitoring/reports/<end>.json`` and
``monitoring/latest.json``) and the CloudWatch metrics the stack's alarms watch (namespace
``textclf``, dimension ``Stack``).

A run only reads production's files and writes its own: a crash mid-run, or a run repeated for the
same window (``end`` is the minute the run started), loses and double-counts nothing -- the next
run reads the same files again, and the report of a window is overwritten, not appended to.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from textclf_api import aws
from textclf_api.logic import artifacts, deployment, drift, production
from textclf_api.logic.vocabulary import Sketch, tokens
from textclf_api.schemas import (
    MONITOR_LATEST_KEY,
    MONITOR_REPORTS_PREFIX,
    QUARANTINE_KEY,
    SERVING_LABELS_KEY,
    Confidence,
    LabelDrift,
    LabellerAgreement,
    LabelsSinceTraining,
    LiveAccuracy,
    MonitorReport,
    MonitorWindow,
    Novelty,
)
from textclf_api.settings import Settings, get_settings

NAMESPACE: Final = "textclf"
#: A prediction the model made with at least this score is a "confident answer": a labeller who
#: contradicts many of them is either seeing something the model cannot, or lying.
CONFIDENT_SCORE: Final = 0.9
#: A labeller is flagged with at least this many labels on confident answers, a disagreement rate
#: at least FLAG_RATIO times the median of the other labellers' and at least FLAG_MIN_RATE.
FLAG_MIN_LABELS: Final = 50
FLAG_RATIO: Final = 3.0
FLAG_MIN_RATE: Final = 0.3


@dataclass(frozen=True)
class Serving:
    """What serves now, as the deploy function recorded it (serving/labels.json)."""

    model_version: str | None
    model_data: str
    published_at: datetime | None


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_end(now: datetime) -> datetime:
    """The minute a run starts: a run repeated within it rewrites the same report."""
    return now.astimezone(UTC).replace(second=0, microsecond=0)


def _json_object(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        found = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if aws.error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return found if isinstance(found, dict) else None


def serving(s3: Any, bucket: str) -> Serving | None:
    record = _json_object(s3, bucket, SERVING_LABELS_KEY)
    if record is None or not record.get("model_data"):
        return None
    published = record.get("published_at")
    return Serving(
        model_version=str(record["model_version"]) if record.get("model_version") else None,
        model_data=str(record["model_data"]),
        published_at=production.parse_time(str(published)) if published else None,
    )


def quarantine(s3: Any, bucket: str) -> dict[str, datetime | None]:
    """Quarantined labeller -> the time from which their labels no longer count (None: all)."""
    record = _json_object(s3, bucket, QUARANTINE_KEY) or {}
    found: dict[str, datetime | None] = {}
    for labeller, entry in (record.get("labellers") or {}).items():
        since = entry.get("since") if isinstance(entry, dict) else None
        found[str(labeller)] = production.parse_time(str(since)) if since else None
    return found


def is_quarantined(item: production.GroundTruth, quarantined: Mapping[str, datetime | None]) -> bool:
    if item.labeller not in quarantined:
        return False
    since = quarantined[item.labeller]
    return since is None or item.received_at >= since


def labels_since(current: Serving | None, settings: Settings, sagemaker: Any) -> tuple[datetime | None, str]:
    """Since when ground truth counts as new evidence for a retrain: the serving package's
    ``feedback_until`` (else its creation time, else when it started serving), moved on to a
    later version's ``feedback_until`` when a retrain since took labels -- refused by the gate, or
    still rolling out. Labels a refused challenger trained on had their episode: the labels alarm
    starts the next one on labels that arrived after them, not again on the same ones."""
    if current is None:
        return None, "none"
    package = None
    if current.model_version and settings.model_package_group:
        package = deployment.find_package(current.model_version, settings, sagemaker)
    since, source = _serving_since(current, package)
    if package is not None:
        tried = deployment.later_feedback_until(package.version, settings, sagemaker)
        if tried is not None and (since is None or tried > since):
            return tried, "later_retrain"
    return since, source


def _serving_since(current: Serving, package: deployment.Package | None) -> tuple[datetime | None, str]:
    if package is not None and package.feedback_until is not None:
        return package.feedback_until, "feedback_until"
    if package is not None and package.created is not None:
        return package.created.astimezone(UTC), "package_created"
    if current.published_at is not None:
        return current.published_at, "published_at"
    return None, "none"


# --------------------------------------------------------------------------------------------
# The figures
# --------------------------------------------------------------------------------------------


def label_drift(
    predictions: Sequence[production.Prediction], baseline: Mapping[str, Any] | None
) -> LabelDrift:
    counts = Counter(p.label for p in predictions)
    prior = (baseline or {}).get("label_prior")
    labels = list((baseline or {}).get("labels") or []) or sorted(counts)
    labels += sorted(set(counts) - set(labels))  # a label the baseline never knew counts too
    shares = drift.shares(counts, labels)
    if not isinstance(prior, dict) or not predictions:
        return LabelDrift(
            counts=dict(counts), shares=shares, baseline_shares=prior if isinstance(prior, dict) else None,
            psi=None,
        )  # fmt: skip
    statistic, dof, p = drift.chi_square(counts, prior)
    return LabelDrift(
        counts={label: counts.get(label, 0) for label in labels},
        shares=shares,
        baseline_shares={str(k): float(v) for k, v in prior.items()},
        psi=drift.psi(prior, shares),
        chi_square=statistic,
        chi_square_dof=dof,
        chi_square_p=p,
    )


def confidence(
    predictions: Sequence[production.Prediction], baseline: Mapping[str, Any] | None
) -> Confidence:
    mean = statistics.fmean(p.score for p in predictions) if predictions else None
    reference = (baseline or {}).get("mean_top_probability")
    reference = float(reference) if reference is not None else None
    drop = reference - mean if mean is not None and reference is not None else None
    return Confidence(mean_top_probability=mean, baseline_mean_top_probability=reference, drop=drop)


def _quantiles(lengths: Sequence[int]) -> dict[str, float] | None:
    if not lengths:
        return None
    ordered = sorted(lengths)

    def at(q: float) -> float:  # numpy's default (linear) percentile, as baseline.py computes it
        position = (len(ordered) - 1) * q
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


def novelty(predictions: Sequence[production.Prediction], baseline: Mapping[str, Any] | None) -> Novelty:
    texts = [p.text for p in predictions]
    lengths = [len(tokens(t)) for t in texts]
    sketch_record = (baseline or {}).get("vocabulary_sketch")
    unseen = total = 0
    share = None
    if isinstance(sketch_record, dict):
        unseen, total = Sketch.of(sketch_record).unseen(texts)
        share = unseen / total if total else None
    else:
        total = sum(lengths)
    return Novelty(
        share=share,
        tokens=total,
        unseen=unseen,
        token_length_quantiles=_quantiles(lengths),
        baseline_token_length_quantiles=(baseline or {}).get("token_length_quantiles"),
    )


def live_accuracy(
    labels: Mapping[str, production.GroundTruth],
    known: Mapping[str, production.Prediction],
    quarantined_count: int,
    min_labels: int,
) -> LiveAccuracy:
    joined = production.join(known.values(), labels)
    pairs = [(truth.label, prediction.label) for prediction, truth in joined]
    right = sum(1 for t, p in pairs if t == p)
    n = len(pairs)
    low, high = drift.wilson(right, n) if n else (None, None)
    return LiveAccuracy(
        labels=len(labels),
        joined=n,
        unknown_ids=sum(1 for pid in labels if pid not in known),
        quarantined=quarantined_count,
        accuracy=right / n if n else None,
        macro_f1=drift.macro_f1(pairs) if n else None,
        wilson_low=low,
        wilson_high=high,
        published=n >= min_labels,
    )


def labeller_agreement(
    items: Iterable[production.GroundTruth],
    known: Mapping[str, production.Prediction],
    quarantined: Mapping[str, datetime | None],
) -> list[LabellerAgreement]:
    """Per labeller: how often they contradict the model's confident answers, and how often they
    agree with other labellers on the same prediction ids; the unusual ones flagged."""
    own = _by_labeller(items)
    by_id: dict[str, dict[str, str]] = defaultdict(dict)
    for labeller, latest in own.items():
        for pid, item in latest.items():
            by_id[pid][labeller] = item.label
    rows: dict[str, dict[str, Any]] = {}
    for labeller, latest in own.items():
        confident = [
            (item, known[pid])
            for pid, item in latest.items()
            if pid in known and known[pid].score >= CONFIDENT_SCORE
        ]
        disagree = sum(1 for item, prediction in confident if item.label != prediction.label)
        pairs = agree = 0
        for pid, item in latest.items():
            for other, label in by_id[pid].items():
                if other != labeller:
                    pairs += 1
                    agree += label == item.label
        rows[labeller] = {
            "labels": len(latest),
            "confident": len(confident),
            "disagree": disagree,
            "rate": disagree / len(confident) if confident else None,
            "pairs": pairs,
            "agree": agree / pairs if pairs else None,
        }
    out = []
    for labeller in sorted(rows):
        row = rows[labeller]
        others = [r["rate"] for name, r in rows.items() if name != labeller and r["rate"] is not None]
        reference = statistics.median(others) if others else 0.0
        flagged = (
            row["confident"] >= FLAG_MIN_LABELS
            and row["rate"] is not None
            and row["rate"] >= FLAG_MIN_RATE
            and row["rate"] >= FLAG_RATIO * reference
        )
        reason = (
            f"contradicts {row['rate']:.0%} of the model's confident answers ({row['disagree']} of "
            f"{row['confident']}); the other labellers' median is {reference:.0%}"
            if flagged
            else None
        )
        out.append(
            LabellerAgreement(
                labeller=labeller,
                labels=row["labels"],
                confident=row["confident"],
                disagree_with_confident=row["disagree"],
                disagreement_rate=row["rate"],
                shared_with_others=row["pairs"],
                agreement_with_others=row["agree"],
                quarantined=labeller in quarantined,
                flagged=flagged,
                reason=reason,
            )
        )
    return out


def _by_labeller(items: Iterable[production.GroundTruth]) -> dict[str, dict[str, production.GroundTruth]]:
    """Each labeller's own last label per prediction id."""
    grouped: dict[str, list[production.GroundTruth]] = defaultdict(list)
    for item in items:
        grouped[item.labeller].append(item)
    return {labeller: production.latest_labels(own) for labeller, own in grouped.items()}


def metrics_of(report: MonitorReport) -> dict[str, float]:
    """The CloudWatch metrics of a report (a figure the window cannot measure is left out)."""
    found: dict[str, float | None] = {
        "Predictions": report.predictions,
        "LabelPsi": report.label_drift.psi,
        "LabelChiSquareP": report.label_drift.chi_square_p,
        "MeanTopProbability": report.confidence.mean_top_probability,
        "Novelty": report.novelty.share,
        "LiveAccuracy": report.live.accuracy if report.live.published else None,
        "LiveAccuracyCount": report.live.joined,
        "FeedbackLabels": report.live.labels,
        "LabelsSinceTraining": report.labels_since_training.count
        if report.labels_since_training.since is not None
        else None,
    }
    return {name: float(value) for name, value in found.items() if value is not None}


# --------------------------------------------------------------------------------------------
# A run
# --------------------------------------------------------------------------------------------


@dataclass
class Clients:
    s3: Any
    sagemaker: Any
    cloudwatch: Any

    @classmethod
    def of_function(cls) -> Clients:
        # Many objects read per run: the archive budget's longer reads and retry.
        return cls(aws.artifact_s3(), aws.sagemaker(), aws.cloudwatch())


def build_report(settings: Settings, end: datetime, clients: Clients) -> MonitorReport:
    bucket = settings.require("bucket_name")
    endpoint = settings.require("endpoint_name")
    s3 = clients.s3
    start = end - timedelta(minutes=settings.monitor_window_minutes)
    notes: list[str] = []
    current = serving(s3, bucket)
    baseline = artifacts.recorded_baseline(s3, current.model_data) if current is not None else None
    if current is None:
        notes.append("nothing serves yet (no serving/labels.json): no baseline to compare with")
    elif baseline is None:
        notes.append(f"the serving archive {current.model_data} has no baseline.json beside it")
    since, since_source = labels_since(current, settings, clients.sagemaker)
    quarantined = quarantine(s3, bucket)

    stats = production.ReadStats()
    lookback = start - timedelta(hours=settings.monitor_lookback_hours)
    captured = list(production.captured(s3, bucket, endpoint, start=lookback, end=end, stats=stats))
    capture = {"files": stats.files, "lines": stats.lines, "unreadable": stats.unreadable,
               "without_id": stats.without_id}  # fmt: skip
    notes += stats.notes
    known = {p.prediction_id: p for p in captured}
    window = [p for p in known.values() if start <= p.time < end]

    truth_stats = production.ReadStats()
    first = min(start, since) if since is not None else start
    items = list(production.ground_truth(s3, bucket, start=first, end=end, stats=truth_stats))
    capture["ground_truth_unreadable"] = truth_stats.unreadable
    notes += truth_stats.notes
    in_window = [g for g in items if g.received_at >= start]
    trusted = [g for g in in_window if not is_quarantined(g, quarantined)]
    recent = [
        g for g in items if since is not None and g.received_at > since and not is_quarantined(g, quarantined)
    ]
    labels = production.latest_labels(trusted)
    report = MonitorReport(
        stack=settings.stack_name,
        window=MonitorWindow(start=start, end=end, minutes=settings.monitor_window_minutes),
        generated_at=datetime.now(UTC),
        model_version=current.model_version if current else None,
        baseline_available=baseline is not None,
        predictions=len(window),
        capture=capture,
        label_drift=label_drift(window, baseline),
        confidence=confidence(window, baseline),
        novelty=novelty(window, baseline),
        live=live_accuracy(
            labels,
            known,
            len(production.latest_labels(in_window)) - len(production.latest_labels(trusted)),
            settings.monitor_min_labels,
        ),
        labels_since_training=LabelsSinceTraining(
            count=len(production.latest_labels(recent)), since=since, since_source=since_source
        ),
        labellers=labeller_agreement(in_window, known, quarantined),
        metrics={},
        notes=notes,
    )
    report.metrics = metrics_of(report)
    return report


def report_key(end: datetime) -> str:
    return f"{MONITOR_REPORTS_PREFIX}{iso(end)}.json"


def store(report: MonitorReport, bucket: str, s3: Any) -> str:
    body = report.model_dump_json().encode("utf-8")
    key = report_key(report.window.end)
    for target in (key, MONITOR_LATEST_KEY):
        s3.put_object(Bucket=bucket, Key=target, Body=body, ContentType="application/json")
    return key


_COUNTS: Final = frozenset({"Predictions", "LiveAccuracyCount", "FeedbackLabels", "LabelsSinceTraining"})


def publish(report: MonitorReport, cloudwatch: Any) -> None:
    dimensions = [{"Name": "Stack", "Value": report.stack}]
    data = [
        {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": report.window.end,
            "Value": value,
            "Unit": "Count" if name in _COUNTS else "None",
        }
        for name, value in report.metrics.items()
    ]
    if data:
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data)


def run(
    settings: Settings | None = None, now: datetime | None = None, clients: Clients | None = None
) -> MonitorReport:
    """One monitor run for the window ending at ``now``'s minute: report stored, metrics published."""
    settings = settings or get_settings()
    clients = clients or Clients.of_function()
    report = build_report(settings, window_end(now or datetime.now(UTC)), clients)
    store(report, settings.require("bucket_name"), clients.s3)
    publish(report, clients.cloudwatch)
    return report


def latest(settings: Settings | None = None, s3: Any = None) -> MonitorReport | None:
    """The last report stored, or None before the first run."""
    settings = settings or get_settings()
    try:
        found = _json_object(s3 or aws.s3(), settings.require("bucket_name"), MONITOR_LATEST_KEY)
    except (ClientError, BotoCoreError) as exc:
        raise aws.translate(exc, "the report store (S3)", settings.retry_after_seconds) from exc
    return MonitorReport.model_validate(found) if found is not None else None
