"""``textclf replay``: replay a newsCorpora file in time order through a running stack's HTTP API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from textclf import config
from textclf.errors import UserError
from textclf.local import API_KEY_ENV, LABELLER_KEY_ENV


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay the news corpus in time order through the running stack: served vs frozen accuracy",
        description="Send a seeded sample of each window's headlines (in time order) to POST /predict of "
        "a running stack, post the true label of a share of them to POST /feedback as a labeller would, "
        "and compare per window the served answers with the frozen initial model (and an oracle). "
        "Between windows it waits, bounded, for the monitor and any retraining and rollout. Writes "
        "replay.json, answers.jsonl (one line per headline: every figure can be recomputed) and "
        "replay.png. Request failures are counted, never fatal.",
    )
    parser.add_argument("--data", type=Path, required=True, help="newsCorpora.csv or the UCI .zip")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="the frozen initial model (default: <artifacts>/package/model.tar.gz)",
    )
    parser.add_argument("--start", default="2014-04-01", help="first day replayed (default: %(default)s)")
    parser.add_argument("--end", default="2014-09-01", help="day after the last one (default: %(default)s)")
    parser.add_argument("--window", choices=("week", "month"), default="month", help="default: %(default)s")
    parser.add_argument(
        "--rows-per-window", type=int, default=4000, help="headlines a window (default: %(default)s)"
    )
    parser.add_argument(
        "--feedback-rate",
        type=float,
        default=0.25,
        help="share of answers whose true label is posted (default: %(default)s)",
    )
    parser.add_argument(
        "--feedback-delay",
        default="0",
        help="a label is posted after this many more headlines (200) or seconds (30s) (default: %(default)s)",
    )
    parser.add_argument(
        "--poison-rate",
        type=float,
        default=0.0,
        help="in --poison-windows, share of answers a second labeller labels WRONG (default: %(default)s)",
    )
    parser.add_argument(
        "--poison-windows",
        default="",
        metavar="W[,W...]",
        help="windows the poisoner posts in, e.g. 2014-06 (default: none)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="headlines per POST /predict, 1-64 (default: %(default)s)",
    )
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="also score each window with TF-IDF + linear SVM fitted on every corpus row before it",
    )
    parser.add_argument(
        "--seed", type=int, default=13, help="sampling and labelling seed (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <artifacts>/replay)")
    parser.add_argument(
        "--json", action="store_true", help="the summary as JSON on stdout instead of a table"
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=1200.0,
        help="longest wait between windows for the monitor, training and rollout, and after the "
        "last for the jobs still running, in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--poll", type=float, default=5.0, help="seconds between checks while waiting (default: %(default)s)"
    )
    stack = parser.add_argument_group("the stack (default: the running `textclf serve`, from its state file)")
    stack.add_argument("--api-url", default=None, help="another stack's API (default: the local stack's)")
    stack.add_argument(
        "--api-key", default=None, help=f"x-api-key of /predict with --api-url (default: ${API_KEY_ENV})"
    )
    stack.add_argument(
        "--labeller-key",
        default=None,
        help=f"x-api-key of /feedback with --api-url (default: ${LABELLER_KEY_ENV})",
    )
    stack.add_argument(
        "--poison-key", default=None, help="the second labeller's key with --api-url (default: none)"
    )
    parser.set_defaults(func=run)


def _access(args: argparse.Namespace) -> Any:
    from textclf.aws_clients import local_state
    from textclf.replay.client import StackAccess, local_access

    if args.api_url is None:
        return local_access(local_state())
    return StackAccess(
        api_url=args.api_url,
        api_key=args.api_key or os.environ.get(API_KEY_ENV, ""),
        labeller_key=args.labeller_key or os.environ.get(LABELLER_KEY_ENV),
        poison_key=args.poison_key,
    )


def _check(args: argparse.Namespace) -> None:
    if args.rows_per_window < 1:
        raise UserError(f"--rows-per-window must be at least 1, got {args.rows_per_window}")
    for flag, value in (("--feedback-rate", args.feedback_rate), ("--poison-rate", args.poison_rate)):
        if not 0.0 <= value <= 1.0:
            raise UserError(f"{flag} must be in [0, 1], got {value}")
    from textclf_api.schemas import MAX_BATCH_TEXTS

    if not 1 <= args.batch_size <= MAX_BATCH_TEXTS:
        raise UserError(f"--batch-size must be between 1 and {MAX_BATCH_TEXTS}, got {args.batch_size}")
    if args.settle_timeout < 0 or args.poll <= 0:
        raise UserError("--settle-timeout must be >= 0 and --poll > 0")
    if not args.data.is_file():
        raise UserError(f"--data {args.data} does not exist")


def run(args: argparse.Namespace) -> int:
    from textclf.replay import windows as cal
    from textclf.replay.run import FeedbackPlan, parse_delay
    from textclf.serving.lifecycle import quiet_libraries

    _check(args)
    quiet_libraries(getattr(args, "verbose", False))
    spans = cal.windows(cal.parse_day("--start", args.start), cal.parse_day("--end", args.end), args.window)
    poison_windows = cal.check_window_names(
        "--poison-windows", [w.strip() for w in args.poison_windows.split(",") if w.strip()], spans
    )
    if args.poison_rate > 0 and not poison_windows:
        raise UserError("--poison-rate needs --poison-windows (e.g. 2014-06)")
    delay, unit = parse_delay(args.feedback_delay)
    plan = FeedbackPlan(args.feedback_rate, delay, unit, args.poison_rate, poison_windows, args.batch_size)
    model = args.model or config.artifacts_dir() / "package" / "model.tar.gz"
    if not model.exists():
        raise UserError(f"--model {model} does not exist: run `textclf package` first")
    from textclf.replay.client import require_keys

    access = _access(args)
    require_keys(access, feedback=plan.rate > 0, poison=plan.poison_rate > 0 and bool(poison_windows))
    out: Path = (args.out or config.artifacts_dir() / "replay").resolve()
    report = replay(args, spans, plan, model, access=access, out=out)
    if args.json:
        print(
            json.dumps(
                {k: v for k, v in report.items() if k != "windows"} | {"windows": report["windows"]}, indent=2
            )
        )
    else:
        from textclf.replay.report import render

        print(render(report))
        print(f"wrote {out / 'replay.json'}, {out / 'answers.jsonl'}, {out / 'replay.png'}")
    return 0


def replay(
    args: argparse.Namespace, spans: list[Any], plan: Any, model: Path, *, access: Any, out: Path
) -> dict[str, Any]:
    from textclf.data.parse import parse_file
    from textclf.replay import run as steps
    from textclf.replay.client import ReplayClient
    from textclf.replay.report import margin_last, plot, window_figures
    from textclf.serving.endpoint import ServingModel

    corpus = parse_file(args.data).frame
    samples = steps.sampled_windows(corpus, spans, args.rows_per_window, args.seed)
    frozen = ServingModel.load(model)
    out.mkdir(parents=True, exist_ok=True)
    client = ReplayClient(access)
    began = steps.utc_now()
    monitor_present = client.monitor() is not None
    labels = steps.served_labels(client, samples[0]["text"].tolist() or ["x"]) or list(frozen.labels)
    windows: list[dict[str, Any]] = []
    alarms: list[dict[str, Any]] = []
    opened: list[tuple[str, float]] = []
    with (out / ".answers.jsonl.partial").open("w", encoding="utf-8") as answers_file:
        for index, (window, rows) in enumerate(zip(spans, samples, strict=True)):
            failed_before = client.failures.total
            opened.append((window.name, time.time()))
            print(f"window {window.name}: {len(rows):,} headlines", file=sys.stderr, flush=True)
            records, posted = steps.replay_window(client, window, rows, plan, seed=args.seed, labels=labels)
            labelled_at = steps.utc_now()  # every label of the window is posted
            texts = rows["text"].tolist()
            for record, label in zip(records, steps.frozen_labels(frozen, texts), strict=True):
                record["frozen_label"] = label
            if args.oracle and texts:
                for record, label in zip(
                    records, steps.oracle_labels(corpus, window, texts, args.seed), strict=True
                ):
                    record["oracle_label"] = label
            for record in records:
                answers_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            answers_file.flush()
            settle = None
            if index < len(spans) - 1:
                settle = client.settle(began, labelled_at, timeout_s=args.settle_timeout, poll_s=args.poll)
            seen = client.alarms_in_alarm() or []
            alarms += [{"window": window.name, **a} for a in seen if a not in [_strip(x) for x in alarms]]
            windows.append(
                {
                    "window": window.name,
                    "start": window.start.isoformat(),
                    "end": window.end.isoformat(),
                    **window_figures(records),
                    "failed_requests": client.failures.total - failed_before,
                    "feedback_posted": posted,
                    "settle": settle,
                }
            )
    os.replace(out / ".answers.jsonl.partial", out / "answers.jsonl")
    # A retrain the last window's labels started still has its outcome to come.
    finished = client.finish(began, timeout_s=args.settle_timeout, poll_s=args.poll)
    retrains = client.retrains(began)
    for retrain in retrains or []:
        created = retrain["created"]
        stamp = _epoch_of(created)
        retrain["window"] = (
            next((name for name, t in reversed(opened) if t <= stamp), None) if stamp else None
        )
    client.close()
    report: dict[str, Any] = {
        "data": str(args.data),
        "start": spans[0].start.isoformat(),
        "end": spans[-1].end.isoformat(),
        "window_kind": args.window,
        "rows_per_window": args.rows_per_window,
        "seed": args.seed,
        "feedback_rate": plan.rate,
        "feedback_delay": {"amount": plan.delay, "unit": plan.delay_unit},
        "batch_size": plan.batch_size,
        "poison": {
            "rate": plan.poison_rate,
            "windows": list(plan.poison_windows),
            "labeller": access.poison_labeller,
        },
        "frozen_model": {"path": str(model), "version": frozen.version},
        "oracle": _oracle_name() if args.oracle else None,
        "monitor": monitor_present,
        "windows": windows,
        "retrains": retrains,
        "failed_requests": client.failures.total,
        "failures": dict(client.failures.counts),
        "retried_requests": dict(client.failures.retried),
        "failure_examples": client.failures.examples,
        "alarms": alarms,
        "finish": finished,
    }
    report["served_minus_frozen_last_two"] = margin_last(windows)
    (out / "replay.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot(report, out / "replay.png")
    return report


def _strip(alarm: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in alarm.items() if k != "window"}


def _epoch_of(iso: str | None) -> float | None:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp() if iso else None


def _oracle_name() -> str:
    from textclf.evaluation.baseline import ANCHOR

    return f"{ANCHOR.name} ({ANCHOR.version}), fitted on every corpus row before the window"
