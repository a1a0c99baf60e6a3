"""Scheduled functions on one machine: a real timer per ``Schedule`` event of the template, and
Lambda's Invoke API for running one now (``textclf monitor --run-now``).

In AWS an EventBridge scheduled rule invokes the function with a ``Scheduled Event`` at the
rule's rate. Here a thread does the same at the rate the template resolves to (the parameter
override ``MonitorSchedule='rate(1 minute)'`` makes it faster, as it would in AWS; tests and the
replay may shorten it further with ``interval_s``). After each run -- by the timer or by an
invocation -- ``after_run`` sees the function's result (the stack evaluates its alarms there).
A run that raises is logged and the timer goes on: the next tick reads the same files again.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from textclf.local import LOCAL_ACCOUNT_ID
from textclf.local.apigw import LambdaContext
from textclf.local.functions import LocalFunction
from textclf.local.template import ScheduleRule
from textclf.serving.servers import read_body

log = logging.getLogger(__name__)

_RATE = re.compile(r"^rate\(\s*([1-9][0-9]*)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_S: Final = {"minute": 60, "hour": 3600, "day": 86400}
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
_MAX_PAYLOAD = 6 * 1024 * 1024  # Lambda's synchronous payload limit
#: Called after each run of a scheduled function: (function name, its result).
AfterRun = Callable[[str, Any], None]


def rate_seconds(expression: str) -> float:
    """Seconds between runs of ``rate(N minute|minutes|hour|hours|day|days)``; ValueError otherwise
    (cron expressions are not run locally)."""
    found = _RATE.match(expression.strip())
    if found is None:
        raise ValueError(
            f"{expression!r} is not rate(N minute(s)|hour(s)|day(s)); the local stack runs rates only"
        )
    count, unit = int(found.group(1)), found.group(2).rstrip("s")
    if (count == 1) != (found.group(2) == unit):
        raise ValueError(f"{expression!r}: EventBridge wants '1 {unit}' but 'N {unit}s'")
    return float(count * _UNIT_S[unit])


def scheduled_event(rule: ScheduleRule, region: str, now: datetime | None = None) -> dict[str, Any]:
    """The event an EventBridge scheduled rule delivers."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [
            f"arn:aws:events:{region}:{LOCAL_ACCOUNT_ID}:rule/textclf-local-{rule.function}-{rule.name}"
        ],
        "detail": {},
    }


class LocalScheduler:
    """One timer thread for the template's schedules; ``functions`` are shared with the invoke API
    (one warm instance per function: a run never overlaps another)."""

    def __init__(
        self,
        rules: Sequence[ScheduleRule],
        functions: Mapping[str, LocalFunction],
        *,
        region: str,
        after_run: AfterRun | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.rules = list(rules)
        self.functions = functions
        self.region = region
        self.after_run = after_run
        #: Seconds between runs of each rule: its rate, or ``interval_s`` for all.
        self.intervals = {
            r: interval_s if interval_s is not None else rate_seconds(r.expression) for r in rules
        }
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="schedule", daemon=True)

    def start(self) -> LocalScheduler:
        if self.rules:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        """Run ``name`` with ``event`` now (waiting for a run in progress), then ``after_run``."""
        function = self.functions[name]
        context = LambdaContext(
            function_name=name,
            timeout_s=function.timeout_s,
            memory_mb=function.memory_mb,
            region=self.region,
            request_id=str(uuid.uuid4()),
        )
        result = function.invoke(event, context)
        self.runs += 1
        if self.after_run is not None and any(r.function == name for r in self.rules):
            try:
                self.after_run(name, result)
            except Exception:  # the alarms' evaluation failing must not stop the schedule
                log.exception("after the run of %s", name)
        return result

    def _loop(self) -> None:
        start = time.monotonic()
        due = {rule: start + self.intervals[rule] for rule in self.rules}
        while not self._stop.is_set():
            rule = min(due, key=due.__getitem__)
            if self._stop.wait(max(0.0, due[rule] - time.monotonic())):
                return
            # The next tick counts from this one's due time, as a rate does (a slow run skips none).
            due[rule] = max(due[rule] + self.intervals[rule], time.monotonic())
            try:
                self.invoke(rule.function, scheduled_event(rule, self.region))
            except Exception:
                log.exception("scheduled run of %s (%s) failed", rule.function, rule.expression)


class LocalLambdaApi:
    """Lambda's ``Invoke`` (RequestResponse) for the template's functions, so boto3's lambda client
    (``textclf monitor --run-now``) calls them here as in AWS: ``POST
    /2015-03-31/functions/<name>/invocations``, the event as the body, the result as the reply; a
    handler that raises is a 200 with ``X-Amz-Function-Error: Unhandled``, as Lambda answers."""

    def __init__(self, scheduler: LocalScheduler) -> None:
        self.scheduler = scheduler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = await read_body(receive, headers.get("content-length"), _MAX_PAYLOAD) or b""
        status, extra, reply = await anyio.to_thread.run_sync(
            self.dispatch, scope["method"], scope["path"], body
        )
        reply_headers = [
            (b"content-type", b"application/json"),
            *((k.encode(), v.encode()) for k, v in extra.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": reply_headers})
        await send({"type": "http.response.body", "body": reply})

    def dispatch(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        found = _INVOKE_PATH.match(path)
        if method != "POST" or found is None:
            return _error(404, "ResourceNotFoundException", f"no Lambda API operation {method} {path} here")
        name = unquote(found.group(1)).rsplit(":", 1)[-1]
        if name not in self.scheduler.functions:
            known = ", ".join(sorted(self.scheduler.functions))
            return _error(404, "ResourceNotFoundException", f"Function not found: {name} (local: {known})")
        try:
            event = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
        try:
            result = self.scheduler.invoke(name, event)
        except Exception as exc:
            log.exception("%s failed on an invocation", name)
            error = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return 200, {"X-Amz-Function-Error": "Unhandled"}, json.dumps(error).encode()
        return 200, {"X-Amz-Executed-Version": "$LATEST"}, json.dumps(result, default=str).encode()


def _error(status: int, kind: str, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"x-amzn-ErrorType": kind}, json.dumps({"Type": "User", "message": message}).encode()
