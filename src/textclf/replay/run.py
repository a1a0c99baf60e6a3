"""Replay a newsCorpora file in time order through a running stack, window by window.

Per window: a seeded sample of its headlines (:mod:`textclf.replay.windows`) goes to POST /predict
in time order, 64 at a time; a share of the answered ones gets its TRUE label posted to POST
/feedback by the labeller once ``feedback_delay`` more headlines (or seconds) have passed, and in
a poisoned window a second labeller posts WRONG labels for another share. The frozen initial model
scores the same headlines locally through its archive's own ``inference.py`` (the path ``textclf
predict`` takes), and with ``oracle`` a TF-IDF + linear SVM (the evaluation's anchor recipe) fitted
on every corpus row before the window does too. Then the replay waits, bounded, for the monitor's
next run and any retraining and rollout it started, so each window is served by what the last
one's labels led to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from textclf.replay.client import ReplayClient
from textclf.replay.windows import Window, rows_in, sample_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackPlan:
    rate: float = 0.25
    #: Headlines answered after a label's own before it is posted (0: at once), or seconds.
    delay: float = 0.0
    delay_unit: str = "headlines"  # or "seconds"
    poison_rate: float = 0.0
    poison_windows: tuple[str, ...] = ()
    #: Headlines per POST /predict (1-64): smaller requests keep a busy CPU endpoint within the
    #: predict function's timeout; the figures do not depend on it.
    batch_size: int = 32


def parse_delay(value: str) -> tuple[float, str]:
    """``200`` (headlines) or ``30s`` (seconds)."""
    from textclf.errors import UserError

    text = value.strip().lower()
    unit = "seconds" if text.endswith("s") else "headlines"
    try:
        amount = float(text[:-1] if unit == "seconds" else text)
    except ValueError as exc:
        raise UserError(
            f"--feedback-delay must be a headline count (200) or seconds (30s), got {value!r}"
        ) from exc
    if amount < 0 or (unit == "headlines" and not amount.is_integer()):
        raise UserError(f"--feedback-delay must be a whole count >= 0 or seconds >= 0, got {value!r}")
    return amount, unit


@dataclass
class _Pending:
    due: float  # headline count or monotonic time
    item: dict[str, str]
    poison: bool


class FeedbackQueue:
    """Labels waiting for their delay, posted in batches when due (all at the window's end)."""

    def __init__(self, client: ReplayClient, plan: FeedbackPlan, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.plan = plan
        self.clock = clock
        self.pending: list[_Pending] = []
        self.posted = {"honest": 0, "poison": 0}

    def add(self, answered: int, item: dict[str, str], *, poison: bool) -> None:
        now = self.clock() if self.plan.delay_unit == "seconds" else answered
        self.pending.append(_Pending(now + self.plan.delay, item, poison))

    def flush(self, answered: int, *, everything: bool = False) -> None:
        now = self.clock() if self.plan.delay_unit == "seconds" else answered
        due = [p for p in self.pending if everything or p.due <= now]
        if not due:
            return
        self.pending = [p for p in self.pending if not (everything or p.due <= now)]
        for poison, key in ((False, self.client.access.labeller_key), (True, self.client.access.poison_key)):
            items = [p.item for p in due if p.poison == poison]
            if items:
                self.client.feedback(items, key)
                self.posted["poison" if poison else "honest"] += len(items)


def frozen_labels(scorer: Any, texts: list[str]) -> list[str]:
    """The frozen archive's answers: ``inference.predict_texts``, as ``textclf predict`` scores."""
    labels: list[str] = []
    for start in range(0, len(texts), 512):
        labels += [
            str(a["label"]) for a in scorer.module.predict_texts(scorer.model, texts[start : start + 512])
        ]
    return labels


def oracle_labels(corpus: pd.DataFrame, window: Window, texts: list[str], seed: int) -> list[str]:
    """The anchor recipe fitted on every corpus row before the window: what knowing all labels buys."""
    from textclf.evaluation.baseline import ANCHOR, train_baseline

    past = corpus[corpus["timestamp"] < window.start_ms]
    names = sorted(past["label"].unique())
    ids = past["label"].map({name: i for i, name in enumerate(names)}).to_numpy()
    model = train_baseline(past["text"].tolist(), ids, seed, ANCHOR)
    return [names[int(i)] for i in model.predict(texts)]


def replay_window(
    client: ReplayClient,
    window: Window,
    rows: pd.DataFrame,
    plan: FeedbackPlan,
    *,
    seed: int,
    labels: list[str],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Send the window's rows, post its feedback; one answer record per row (served_label None:
    its request failed)."""
    rng = np.random.default_rng([seed, window.start_ms // 1000])
    poisoned = window.name in plan.poison_windows
    queue = FeedbackQueue(client, plan)
    answers: list[dict[str, Any]] = []
    answered = 0
    for start in range(0, len(rows), plan.batch_size):
        batch = rows.iloc[start : start + plan.batch_size]
        served = client.predict(batch["text"].tolist())
        ids, truths = batch["id"].tolist(), [str(label) for label in batch["label"]]
        for position, (row_id, truth) in enumerate(zip(ids, truths, strict=True)):
            answer = served[position] if served is not None else None
            record: dict[str, Any] = {
                "id": int(row_id),
                "window": window.name,
                "true_label": truth,
                "served_label": answer["label"] if answer else None,
                "model_version": answer["model_version"] if answer else None,
                "prediction_id": answer["prediction_id"] if answer else None,
                "feedback": None,
                "poison": None,
            }
            answers.append(record)
            if answer is None:
                continue
            answered += 1
            # Draws per answered row in a fixed order, so the same seed labels the same rows.
            honest, poison, wrong = rng.random(), rng.random(), int(rng.integers(1, max(len(labels), 2)))
            if honest < plan.rate:
                record["feedback"] = truth
                queue.add(answered, {"prediction_id": answer["prediction_id"], "label": truth}, poison=False)
            if poisoned and poison < plan.poison_rate and truth in labels:
                record["poison"] = labels[(labels.index(truth) + wrong) % len(labels)]
                queue.add(
                    answered,
                    {"prediction_id": answer["prediction_id"], "label": record["poison"]},
                    poison=True,
                )
        queue.flush(answered)
    queue.flush(answered, everything=True)
    return answers, queue.posted


def served_labels(client: ReplayClient, texts: list[str]) -> list[str] | None:
    """The label set the stack answers with (one request), for the poisoner's wrong labels."""
    answer = client._call("predict", "POST", "/predict", client.access.api_key, {"texts": texts[:1]})
    return list(answer["labels"]) if isinstance(answer, dict) and answer.get("labels") else None


def utc_now() -> datetime:
    return datetime.now(UTC)


def sampled_windows(
    corpus: pd.DataFrame, windows: list[Window], rows_per_window: int, seed: int
) -> list[pd.DataFrame]:
    return [sample_window(rows_in(corpus, w), rows_per_window, seed + i) for i, w in enumerate(windows)]
