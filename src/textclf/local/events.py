"""EventBridge on one machine: the template's ``EventBridgeRule`` events, matched against the
events the local SageMaker emits and delivered to the same handlers.

Delivery is asynchronous, as for a Lambda invoked by EventBridge (and, with a state store, an event
is stored until handled, so a restart delivers what a crash left in flight): ``put`` returns at once and a
worker thread invokes the matching function with the event (one event at a time; a handler that
raises is retried twice, as Lambda retries asynchronous invocations, then the event is logged as
dropped -- where AWS would send it to the dead-letter queue).

Patterns support what this template uses: literal values (any of a list) and ``{"prefix": ...}``;
a rule with any other content-filter operator is refused at start, not silently ignored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from textclf.local import LOCAL_ACCOUNT_ID
from textclf.local.apigw import LambdaContext
from textclf.local.functions import LocalFunction
from textclf.local.state import StateStore
from textclf.local.template import EventRule, FunctionSpec

log = logging.getLogger(__name__)

SOURCE = "aws.sagemaker"
#: Lambda retries a failed asynchronous invocation twice.
ASYNC_RETRIES = 2
_OPERATORS = frozenset({"prefix"})


def check_pattern(pattern: Mapping[str, Any], where: str) -> None:
    for key, expected in pattern.items():
        if isinstance(expected, Mapping):
            check_pattern(expected, f"{where}.{key}")
        elif isinstance(expected, list):
            for item in expected:
                if isinstance(item, Mapping) and not set(item) <= _OPERATORS:
                    raise ValueError(f"{where}.{key}: the local event bus supports only {sorted(_OPERATORS)}")
        else:
            raise ValueError(f"{where}.{key}: an event pattern value must be a list or an object")


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge matching: every key of the pattern must match; a list matches any of its items."""
    for key, expected in pattern.items():
        value = event.get(key)
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not matches(expected, value):
                return False
        elif not any(_matches_one(item, value) for item in expected):
            return False
    return True


def _matches_one(expected: Any, value: Any) -> bool:
    if isinstance(value, list):  # an array in the event matches if any element does
        return any(_matches_one(expected, v) for v in value)
    if isinstance(expected, Mapping):
        prefix = expected["prefix"]
        return isinstance(value, str) and value.startswith(str(prefix))
    return bool(expected == value)


class LocalEventBus:
    """Routes events to functions by the template's rules; ``put`` never blocks on a handler."""

    def __init__(
        self,
        rules: Sequence[EventRule],
        functions: Sequence[FunctionSpec],
        *,
        region: str,
        store: StateStore | None = None,
    ) -> None:
        by_name = {f.name: f for f in functions}
        for rule in rules:
            check_pattern(rule.pattern, f"{rule.function}.{rule.name}")
        self.rules = list(rules)
        self.region = region
        #: Events are stored until handled, so a restart delivers what a crash left undelivered.
        self.store = store
        self.functions = {
            rule.function: LocalFunction(
                rule.function,
                by_name[rule.function].handler,
                by_name[rule.function].timeout_s,
                by_name[rule.function].memory_mb,
            )
            for rule in rules
        }
        self.delivered: list[tuple[str, dict[str, Any], Any]] = []  # (function, event, result)
        self._queue: queue.Queue[tuple[LocalFunction, dict[str, Any]] | None] = queue.Queue()
        self._busy = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._worker, name="event-bus", daemon=True)

    def start(self) -> LocalEventBus:
        for function in self.functions.values():
            function.handler()  # import now: a broken handler fails the start
        self._thread.start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(30)

    def put(
        self,
        detail_type: str,
        detail: dict[str, Any],
        resources: Sequence[str] = (),
        *,
        source: str = SOURCE,
    ) -> dict[str, Any]:
        """Publish one event (``aws.sagemaker`` unless ``source`` says, e.g. ``aws.cloudwatch`` for
        an alarm's state change); returns it (with its id)."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": LOCAL_ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": list(resources),
            "detail": detail,
        }
        targets = {rule.function for rule in self.rules if matches(rule.pattern, event)}
        log.info("event %s %s -> %s", detail_type, _summary(detail), ", ".join(sorted(targets)) or "no rule")
        for name in sorted(targets):
            if self.store is not None:
                self.store.add_event(str(event["id"]), name, event)
            self._enqueue(self.functions[name], event)
        return event

    def redeliver(self) -> int:
        """Queue the stored events a stopped stack had not handled (at least once, as EventBridge
        delivers; the deploy function takes a repeat). Before :meth:`start` and new events."""
        if self.store is None:
            return 0
        pending = self.store.pending_events()
        for name, event in pending:
            if name in self.functions:
                self._enqueue(self.functions[name], event)
            else:  # the template no longer routes it there
                self.store.event_done(event["id"], name)
        if pending:
            log.info("redelivering %d event(s) a stopped stack had not handled", len(pending))
        return len(pending)

    def _enqueue(self, function: LocalFunction, event: dict[str, Any]) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put((function, event))

    def wait_idle(self, timeout: float) -> bool:
        """Block until every published event has been handled (tests, ``make demo``)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            function, event = item
            try:
                self._deliver(function, event)
                if self.store is not None:
                    self.store.event_done(event["id"], function.name)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, function: LocalFunction, event: dict[str, Any]) -> None:
        for attempt in range(1 + ASYNC_RETRIES):
            context = LambdaContext(
                function_name=function.name,
                timeout_s=function.timeout_s,
                memory_mb=function.memory_mb,
                region=self.region,
                request_id=str(uuid.uuid4()),
            )
            try:
                result = function.invoke(event, context)
            except Exception:
                log.exception(
                    "%s failed on %s (attempt %d)", function.name, event["detail-type"], attempt + 1
                )
                time.sleep(min(2.0**attempt, 5.0))
                continue
            self.delivered.append((function.name, event, result))
            return
        log.error("%s: %s dropped after %d attempts", function.name, event["detail-type"], 1 + ASYNC_RETRIES)


def _summary(detail: Mapping[str, Any]) -> str:
    keys = (
        "alarmName",
        "TrainingJobName",
        "TrainingJobStatus",
        "ModelPackageArn",
        "ModelApprovalStatus",
        "EndpointStatus",
    )
    return " ".join(f"{k}={detail[k]}" for k in keys if k in detail)
