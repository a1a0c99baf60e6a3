"""The replay's only ways into the stack: its HTTP API, and (locally) its control plane for what
the API does not list (training jobs, alarms).

Every request failure (a connection error, a timeout, any status but 200) is counted and kept as
one line, never raised: the replay goes on, and the counts are part of its report. What the stack
lacks (no GET /monitor before the monitor exists, no control plane behind a bare --api-url) is
reported as absent, not as an error.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from textclf_api.logic.deployment import SAME_JOB_COMPARISONS

from textclf.errors import UserError

log = logging.getLogger(__name__)

#: POST /feedback takes 1-1,000 items (textclf_api.schemas.MAX_FEEDBACK_ITEMS).
FEEDBACK_BATCH = 1000
#: Deployment states of a training job's model that are still moving (GET /train/{job}).
MOVING = ("pending", "deploying")
#: A completed job the deploy function has not recorded yet is waited for this long at most.
UNSEEN_GRACE_S = 120.0
_KEPT_ERRORS = 20
#: Answers that say "try again" (throttled, shedding load, timed out): retried (RETRIES times at
#: most) after Retry-After (at most RETRY_WAIT_MAX_S), and counted as retries. Both routes are safe to repeat:
#: a repeated label counts once (the last wins) and a repeated prediction changes nothing.
RETRY_STATUSES = (429, 503, 504)
RETRY_WAIT_MAX_S = 10.0
#: Retries of a "try again" answer, each after its Retry-After or 1, 2, 4, 8 s, whichever is longer:
#: a feedback write can miss its budget more than once while a retrain holds both cores, and
#: POST /feedback and /predict are safe to repeat (the same id twice keeps one label).
RETRIES = 4
#: The job metrics the deploy gate compares (challenger, champion scored in the same job).
GATE_METRICS = frozenset(name for mine, theirs, _ in SAME_JOB_COMPARISONS for name in (mine, theirs))


@dataclass(frozen=True)
class StackAccess:
    """Where the stack answers and the keys the replay sends."""

    api_url: str
    api_key: str
    labeller_key: str | None = None
    #: The second labeller (--poison-rate): its key and the id its labels are stored under.
    poison_key: str | None = None
    poison_labeller: str | None = None
    #: The local stack's SageMaker and moto (None behind a bare --api-url: no retrains listed).
    sagemaker_url: str | None = None
    control_plane_url: str | None = None
    region: str = "us-east-1"


def local_access(state: dict[str, str]) -> StackAccess:
    """The running local stack's access from its state file (``textclf serve`` writes it)."""
    keys = json.loads(state.get("labeller_keys") or "{}")
    others = [(key_id, key) for key_id, key in keys.items() if key != state.get("labeller_key")]
    return StackAccess(
        api_url=state["api_url"],
        api_key=state["api_key"],
        labeller_key=state.get("labeller_key") or None,
        poison_key=others[0][1] if others else None,
        poison_labeller=others[0][0] if others else None,
        sagemaker_url=state.get("sagemaker_url") or None,
        control_plane_url=state.get("control_plane_url") or None,
        region=state.get("region") or "us-east-1",
    )


@dataclass
class Failures:
    """Failed requests per route, and the first few of them in one line each."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    #: Requests answered "try again" that succeeded when retried (not failures).
    retried: Counter[str] = field(default_factory=Counter)

    def add(self, route: str, what: str) -> None:
        self.counts[route] += 1
        if len(self.examples) < _KEPT_ERRORS:
            self.examples.append(f"{route}: {what}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class ReplayClient:
    def __init__(self, access: StackAccess, *, timeout_s: float = 60.0) -> None:
        self.access = access
        self.http = httpx.Client(base_url=access.api_url.rstrip("/"), timeout=timeout_s, trust_env=False)
        self.failures = Failures()
        self._aws: dict[str, Any] = {}

    def close(self) -> None:
        self.http.close()

    # -- the API ----------------------------------------------------------------------------

    def _call(self, route: str, method: str, path: str, key: str | None, body: Any = None) -> Any:
        """The JSON answer of a 200, else None with the failure counted."""
        headers = {"x-api-key": key} if key else {}
        try:
            response = self.http.request(method, path, json=body, headers=headers)
            for attempt in range(RETRIES):
                if response.status_code not in RETRY_STATUSES:
                    break
                time.sleep(max(_retry_after(response), 2.0**attempt))
                response = self.http.request(method, path, json=body, headers=headers)
                if response.status_code == 200:
                    self.failures.retried[route] += 1
        except httpx.HTTPError as exc:
            self.failures.add(route, f"{type(exc).__name__}: {exc}")
            return None
        if response.status_code != 200:
            self.failures.add(route, f"HTTP {response.status_code} {response.text[:200]}")
            return None
        try:
            return response.json()
        except ValueError:
            self.failures.add(route, "200 with a body that is not JSON")
            return None

    def predict(self, texts: list[str]) -> list[dict[str, Any]] | None:
        """One prediction per text (prediction_id, label, model_version), or None if it failed."""
        answer = self._call("predict", "POST", "/predict", self.access.api_key, {"texts": texts})
        if not isinstance(answer, dict) or len(answer.get("predictions") or []) != len(texts):
            if answer is not None:
                self.failures.add("predict", "answer without one prediction per text")
            return None
        version = str(answer.get("model_version"))
        return [
            {"prediction_id": p["prediction_id"], "label": p["label"], "model_version": version}
            for p in answer["predictions"]
        ]

    def feedback(self, items: list[dict[str, str]], key: str | None) -> int:
        """Posts ``items`` in requests of at most 1,000; returns the labels accepted."""
        accepted = 0
        for start in range(0, len(items), FEEDBACK_BATCH):
            answer = self._call(
                "feedback", "POST", "/feedback", key, {"items": items[start : start + FEEDBACK_BATCH]}
            )
            if isinstance(answer, dict):
                accepted += int(answer.get("accepted", 0))
        return accepted

    def monitor(self) -> str | None:
        """GET /monitor's body (the latest report), or None when the stack has no monitor (yet)."""
        try:
            response = self.http.get("/monitor")
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    def train_status(self, job: str) -> dict[str, Any] | None:
        answer = self._call("train", "GET", f"/train/{job}", self.access.api_key)
        return answer if isinstance(answer, dict) else None

    # -- the control plane (local stack) ----------------------------------------------------

    def _client(self, service: str) -> Any:
        url = self.access.sagemaker_url if service == "sagemaker" else self.access.control_plane_url
        if url is None:
            return None
        if service not in self._aws:
            from textclf.serving import local_session

            self._aws[service] = local_session(self.access.region).client(service, endpoint_url=url)
        return self._aws[service]

    def training_jobs(self, since: datetime) -> list[dict[str, Any]] | None:
        """Jobs created since ``since`` (oldest first) with their hyperparameters; None: unknown."""
        sagemaker = self._client("sagemaker")
        if sagemaker is None:
            return None
        try:
            summaries = sagemaker.list_training_jobs(CreationTimeAfter=since, MaxResults=100)
            jobs = [
                sagemaker.describe_training_job(TrainingJobName=s["TrainingJobName"])
                for s in summaries["TrainingJobSummaries"]
            ]
        except Exception as exc:  # the stack may be restarting: counted, not fatal
            self.failures.add("control-plane", f"ListTrainingJobs: {type(exc).__name__}: {exc}")
            return None
        return sorted(jobs, key=lambda job: _epoch(job.get("CreationTime")))

    def alarms_in_alarm(self) -> list[dict[str, Any]] | None:
        """CloudWatch alarms now in ALARM (the local monitor records their state); None: unknown."""
        cloudwatch = self._client("cloudwatch")
        if cloudwatch is None:
            return None
        try:
            found = cloudwatch.describe_alarms(StateValue="ALARM")["MetricAlarms"]
        except Exception as exc:
            log.info("no alarms to read: %s", exc)
            return None
        return [
            {
                "alarm": a["AlarmName"],
                "since": _iso(a.get("StateUpdatedTimestamp")),
                "reason": a.get("StateReason"),
            }
            for a in found
        ]

    # -- waiting for retraining -------------------------------------------------------------

    def busy(self, since: datetime) -> list[str]:
        """Jobs since ``since`` still training or rolling out (their names)."""
        moving = []
        for job in self.training_jobs(since) or []:
            name = job["TrainingJobName"]
            if job["TrainingJobStatus"] in ("InProgress", "Stopping"):
                moving.append(name)
                continue
            if job["TrainingJobStatus"] != "Completed":
                continue
            deployment = (self.train_status(name) or {}).get("deployment")
            if deployment is None:
                ended = _epoch(job.get("TrainingEndTime")) or time.time()
                if time.time() - ended < UNSEEN_GRACE_S:
                    moving.append(name)
            elif deployment.get("status") in MOVING:
                moving.append(name)
        return moving

    def settle(
        self,
        since: datetime,
        labelled_at: datetime,
        *,
        timeout_s: float,
        poll_s: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Wait (at most ``timeout_s``) for a monitor run that saw every label posted by
        ``labelled_at`` (its report's window ends later: a run that began before the window's
        last labels does not count), then for every training job and rollout to end, so the next
        window is served by what this one's labels led to."""
        started = time.monotonic()
        deadline = started + timeout_s
        monitor_ran = None
        flagged = None
        if self.monitor() is not None:  # None: the stack has no monitor
            monitor_ran = False
            while time.monotonic() < deadline:
                report = self.monitor()
                if _report_end(report) >= labelled_at.timestamp():
                    monitor_ran, flagged = True, _flagged_labellers(report)
                    sleep(poll_s)  # its alarm's event reaches the retrain function just after
                    break
                sleep(poll_s)
        waited_for = self._await_jobs(since, deadline, poll_s, sleep)
        return {
            "seconds": round(time.monotonic() - started, 1),
            "monitor_ran": monitor_ran,
            "flagged_labellers": flagged,
            "waited_for": waited_for,
            "timed_out": time.monotonic() >= deadline,
        }

    def finish(
        self, since: datetime, *, timeout_s: float, poll_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> dict[str, Any]:
        """After the last window: wait (at most ``timeout_s``) for the jobs already training or
        rolling out, so every retrain the report lists has its outcome (no new monitor run is
        awaited: nothing is replayed after it)."""
        started = time.monotonic()
        deadline = started + timeout_s
        waited_for = self._await_jobs(since, deadline, poll_s, sleep)
        return {
            "seconds": round(time.monotonic() - started, 1),
            "waited_for": waited_for,
            "timed_out": time.monotonic() >= deadline,
        }

    def _await_jobs(
        self, since: datetime, deadline: float, poll_s: float, sleep: Callable[[float], None]
    ) -> list[str]:
        """Wait until no job since ``since`` trains or rolls out (or ``deadline``); the ones seen."""
        waited_for: set[str] = set()
        while time.monotonic() < deadline:
            moving = self.busy(since)
            if not moving:
                break
            waited_for.update(moving)
            sleep(poll_s)
        return sorted(waited_for)

    def retrains(self, since: datetime) -> list[dict[str, Any]] | None:
        """Every training job since ``since``: why (retrain_reason), what became of it."""
        jobs = self.training_jobs(since)
        if jobs is None:
            return None
        found = []
        for job in jobs:
            name = job["TrainingJobName"]
            hyper = job.get("HyperParameters") or {}
            reason = _decoded(hyper.get("retrain_reason")) or "manual"
            status = self.train_status(name) or {}
            deployment = status.get("deployment") or {}
            found.append(
                {
                    "job": name,
                    "reason": reason,
                    "created": _iso(job.get("CreationTime")),
                    "status": job["TrainingJobStatus"],
                    "version": deployment.get("model_version"),
                    "outcome": deployment.get("status") or job["TrainingJobStatus"].lower(),
                    "outcome_reason": deployment.get("reason") or job.get("FailureReason"),
                    "feedback_until": _decoded(hyper.get("feedback_until")),
                    # What the gate judged: challenger and champion, scored in the same job.
                    "gate_metrics": {
                        k: v for k, v in (status.get("metrics") or {}).items() if k in GATE_METRICS
                    },
                }
            )
        return found


def _report_end(body: str | None) -> float:
    """The end of a monitor report's window (epoch seconds; 0 when there is none to read)."""
    try:
        end = json.loads(body or "")["window"]["end"]
        return datetime.fromisoformat(str(end).replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError, TypeError):
        return 0.0


def _flagged_labellers(body: str | None) -> list[str] | None:
    """The labellers a monitor report flags (contradicting confident answers); None: unreadable."""
    try:
        rows = json.loads(body or "")["labellers"]
        return sorted(str(r["labeller"]) for r in rows if r.get("flagged"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.0), RETRY_WAIT_MAX_S)
    except ValueError:
        return 1.0


def _decoded(value: Any) -> Any:
    """A hyperparameter as the job got it (every value is JSON-encoded)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if isinstance(value, int | float) else 0.0


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    stamp = value if isinstance(value, datetime) else datetime.fromtimestamp(_epoch(value), tz=UTC)
    return stamp.astimezone(UTC).isoformat(timespec="seconds")


def require_keys(access: StackAccess, *, feedback: bool, poison: bool) -> None:
    if feedback and not access.labeller_key:
        raise UserError("--feedback-rate needs a labeller key: --labeller-key or a running `textclf serve`")
    if poison and not access.poison_key:
        raise UserError(
            "--poison-rate needs a second labeller key: start the stack with `textclf serve --labellers 2` "
            "or pass --poison-key"
        )
