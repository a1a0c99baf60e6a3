"""``textclf monitor``: the monitor's latest report, a run now, and the time series of its reports."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textclf.aws_clients import add_aws_arguments
from textclf.errors import UserError

if TYPE_CHECKING:
    from textclf_api.schemas import MonitorReport

#: Series drawn by --png: (report field path, axis title).
SERIES = (
    (("label_drift", "psi"), "predicted-label PSI"),
    (("confidence", "mean_top_probability"), "mean top probability"),
    (("novelty", "share"), "novelty (unseen word share)"),
    (("live", "accuracy"), "live accuracy"),
    (("labels_since_training", "count"), "labels since training"),
    (("predictions",), "predictions"),
)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "monitor",
        help="the monitor's latest report (drift, confidence, novelty, live accuracy, labellers)",
        description="Prints the latest report the stack's monitor wrote (monitoring/latest.json in "
        "the stack's bucket): predicted-label drift against the serving model's baseline, "
        "confidence, novelty, live accuracy on labellers' feedback and per-labeller agreement. "
        "--run-now invokes the monitor function first; --png draws the stored reports over time.",
    )
    parser.add_argument("--run-now", action="store_true", help="run the monitor now (invoke its function)")
    parser.add_argument("--json", action="store_true", help="the report as one JSON document")
    parser.add_argument(
        "--png",
        type=Path,
        default=None,
        help="draw the stored reports' time series to this PNG (default: none drawn)",
    )
    parser.add_argument(
        "--since",
        default=None,
        help="the time series from this ISO-8601 time or this many hours back (e.g. 48h; default: all)",
    )
    parser.add_argument("--bucket", default=None, help="the stack's bucket (default: the stack's BucketName)")
    parser.add_argument(
        "--function-name",
        default=None,
        help="the monitor function (default: the stack's MonitorFunctionName)",
    )
    add_aws_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from textclf.aws_clients import target_from_args

    where = target_from_args(args)
    bucket = args.bucket or where.require("bucket", "--bucket")
    since = parse_since(args.since) if args.since else None
    s3 = where.client("s3")
    try:
        report = invoke(where.client("lambda"), args.function_name or where.require(
            "monitor_function", "--function-name")) if args.run_now else latest(s3, bucket)  # fmt: skip
        history = reports(s3, bucket, since) if args.png else []
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"cannot read the monitor's reports in {bucket}: {exc}") from exc
    if report is None:
        raise UserError(
            f"no monitor report in s3://{bucket}/ yet: the monitor runs on its schedule "
            "(MonitorSchedule), or `textclf monitor --run-now`"
        )
    if args.png:
        draw(history, args.png)
    print(report.model_dump_json(indent=2) if args.json else render(report))
    if args.png:
        print(f"{len(history)} reports drawn to {args.png}")
    return 0


def parse_since(value: str) -> datetime:
    text = value.strip()
    if text.endswith("h") and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(hours=int(text[:-1]))
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(
            f"--since {value!r}: give an ISO-8601 time (2014-05-01T00:00Z) or hours back (48h)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def invoke(client: Any, function: str) -> MonitorReport:
    from textclf_api.schemas import MonitorReport

    answer = client.invoke(FunctionName=function, Payload=json.dumps({"source": "textclf.cli"}).encode())
    body = answer["Payload"].read()
    if answer.get("FunctionError"):
        raise UserError(f"the monitor function failed: {body.decode('utf-8', 'replace')[:500]}")
    return MonitorReport.model_validate_json(body)


def latest(s3: Any, bucket: str) -> MonitorReport | None:
    from textclf_api.logic import monitor
    from textclf_api.settings import Settings

    return monitor.latest(Settings.from_env({"BUCKET_NAME": bucket}), s3)


def reports(s3: Any, bucket: str, since: datetime | None) -> list[MonitorReport]:
    """Every stored report (one per window), oldest first; from ``since`` when given."""
    from textclf_api.logic import production
    from textclf_api.schemas import MONITOR_REPORTS_PREFIX, MonitorReport

    found = []
    for key in sorted(production.list_keys(s3, bucket, MONITOR_REPORTS_PREFIX)):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        report = MonitorReport.model_validate_json(body)
        if since is None or report.window.end >= since:
            found.append(report)
    return found


def _value(report: MonitorReport, path: tuple[str, ...]) -> float | None:
    value: Any = report
    for part in path:
        value = getattr(value, part)
    return float(value) if value is not None else None


def draw(history: list[MonitorReport], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SERIES), 1, figsize=(10, 2.2 * len(SERIES)), sharex=True)
    times = [r.window.end for r in history]
    for ax, (path, title) in zip(axes, SERIES, strict=True):
        points = [(t, v) for t, r in zip(times, history, strict=True) if (v := _value(r, path)) is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", markersize=3)
        ax.set_ylabel(title, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"textclf monitor: {len(history)} windows")
    axes[-1].set_xlabel("window end (UTC)")
    fig.autofmt_xdate()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def render(report: MonitorReport) -> str:
    drift, conf, novelty, live = report.label_drift, report.confidence, report.novelty, report.live
    since = report.labels_since_training
    lines = [
        f"monitor report of {report.stack}: window {report.window.start:%Y-%m-%d %H:%M} - "
        f"{report.window.end:%Y-%m-%d %H:%M} UTC, model version {report.model_version or '-'}"
        + ("" if report.baseline_available else " (no baseline)"),
        f"  predictions        {report.predictions}",
        f"  label drift        PSI {_fmt(drift.psi)}   chi-square p {_fmt(drift.chi_square_p, '.3g')}",
        f"  confidence         mean top probability {_fmt(conf.mean_top_probability)} "
        f"(baseline {_fmt(conf.baseline_mean_top_probability)}, drop {_fmt(conf.drop)})",
        f"  novelty            {_fmt(novelty.share)} of {novelty.tokens} word tokens unseen in training",
        f"  live accuracy      {_fmt(live.accuracy)} on {live.joined} joined labels "
        f"(95% {_fmt(live.wilson_low)}-{_fmt(live.wilson_high)}; macro-F1 {_fmt(live.macro_f1)})"
        + ("" if live.published else " - not published: below MonitorMinLabels"),
        f"  feedback           {live.labels} labels, {live.unknown_ids} unknown ids, "
        f"{live.quarantined} quarantined",
        f"  since training     {since.count} labels since "
        f"{since.since.isoformat() if since.since else '-'} ({since.since_source})",
    ]
    for label, count in sorted(drift.counts.items()):
        base = (drift.baseline_shares or {}).get(label)
        lines.append(
            f"    {label:<28} {count:>7}  {drift.shares.get(label, 0):6.1%}  baseline {_fmt(base, '.1%')}"
        )
    if report.labellers:
        lines.append("  labellers          labels  confident  contradicts  agrees w/ others")
        for row in report.labellers:
            flag = "  FLAGGED: " + str(row.reason) if row.flagged else ""
            quarantined = " (quarantined)" if row.quarantined else ""
            lines.append(
                f"    {row.labeller[:24]:<24} {row.labels:>6}  {row.confident:>9}  "
                f"{_fmt(row.disagreement_rate, '.0%'):>11}  {_fmt(row.agreement_with_others, '.0%'):>16}"
                f"{quarantined}{flag}"
            )
    for note in report.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)
