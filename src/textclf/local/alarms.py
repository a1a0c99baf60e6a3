"""CloudWatch alarms on one machine: the template's alarms on the monitor's metrics, evaluated after
each monitor run, their state kept in moto, and a change into ALARM put on the local event bus.

moto stores alarms and answers DescribeAlarms/SetAlarmState, but never evaluates an alarm against
its metric, and never emits the ``CloudWatch Alarm State Change`` event the template's rules route
to the retraining function. This module does both for the alarms on the monitor's namespace: each
run's report carries the values it published, an alarm compares its metric with its threshold
(a metric the report lacks is missing data, treated as the alarm says: the template's monitor
alarms say notBreaching), and a new state is recorded with SetAlarmState. A change into ALARM puts
the event with CloudWatch's shape (docs: AmazonCloudWatch cloudwatch-and-eventbridge); an alarm
that stays in ALARM does not fire again, and re-arms when its condition clears.
"""

from __future__ import annotations

import logging
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from textclf.local.template import AlarmSpec

log = logging.getLogger(__name__)

SOURCE: Final = "aws.cloudwatch"
DETAIL_TYPE: Final = "CloudWatch Alarm State Change"
_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
#: Publishes one event on the local bus: (source, detail-type, detail, resources) -> the event.
Put = Callable[[str, str, dict[str, Any], Sequence[str]], dict[str, Any]]


def _stamp(when: datetime) -> str:
    # CloudWatch's own format in these events: milliseconds and a +0000 offset.
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


class LocalAlarms:
    """The template's alarms on ``namespace``, in moto's CloudWatch (``cloudwatch``), evaluated by
    :meth:`evaluate`; state changes into ALARM are published with ``put``."""

    def __init__(
        self,
        specs: Sequence[AlarmSpec],
        cloudwatch: Any,
        put: Put,
        *,
        namespace: str,
        region: str,
        account_id: str,
    ) -> None:
        self.specs = [s for s in specs if s.namespace == namespace and s.comparison in _COMPARE]
        self.cloudwatch = cloudwatch
        self.put = put
        self.region = region
        self.account_id = account_id

    def install(self) -> None:
        """Create the alarms in moto (as CloudFormation would); a restart keeps their state."""
        existing = {a["AlarmName"] for a in self._describe()}
        for spec in self.specs:
            if spec.name in existing:
                continue
            self.cloudwatch.put_metric_alarm(
                AlarmName=spec.name,
                AlarmDescription=spec.description,
                Namespace=spec.namespace,
                MetricName=spec.metric,
                Dimensions=[{"Name": k, "Value": v} for k, v in spec.dimensions.items()],
                Statistic=spec.statistic,
                Period=spec.period,
                EvaluationPeriods=1,
                Threshold=spec.threshold,
                ComparisonOperator=spec.comparison,
                TreatMissingData=spec.treat_missing_data,
            )

    def _describe(self) -> list[dict[str, Any]]:
        names = [s.name for s in self.specs]
        return list(self.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]) if names else []

    def evaluate(self, metrics: Mapping[str, float], now: datetime | None = None) -> list[dict[str, Any]]:
        """Compare each alarm's metric in ``metrics`` (one monitor run's) with its threshold, record
        the new states, and return the events put for alarms that went into ALARM."""
        now = now or datetime.now(UTC)
        states = {a["AlarmName"]: a for a in self._describe()}
        fired = []
        for spec in self.specs:
            value = metrics.get(spec.metric)
            if value is None:
                # Missing data: notBreaching keeps the alarm OK, breaching would fire it; the
                # others (missing, ignore) leave the state as it was.
                if spec.treat_missing_data not in ("notBreaching", "breaching"):
                    continue
                breaching = spec.treat_missing_data == "breaching"
                reason = f"no {spec.metric} datapoint in this window ({spec.treat_missing_data})"
            else:
                breaching = _COMPARE[spec.comparison](float(value), spec.threshold)
                relation = spec.comparison.removesuffix("Threshold")
                verdict = relation if breaching else f"not {relation}"
                reason = (
                    f"Threshold Crossed: {spec.metric} {value:.6g} was {verdict} "
                    f"the threshold ({spec.threshold:g})"
                )
            new = "ALARM" if breaching else "OK"
            current = states.get(spec.name, {})
            old = str(current.get("StateValue", "INSUFFICIENT_DATA"))
            if new == old:
                continue
            self.cloudwatch.set_alarm_state(AlarmName=spec.name, StateValue=new, StateReason=reason)
            log.info("alarm %s: %s -> %s (%s)", spec.name, old, new, reason)
            if new == "ALARM":
                previous = {
                    "value": old,
                    "reason": str(current.get("StateReason", "")),
                    "timestamp": _stamp(now),
                }
                fired.append(self._publish(spec, previous, reason, value, now))
        return fired

    def _publish(
        self, spec: AlarmSpec, previous: dict[str, str], reason: str, value: float | None, now: datetime
    ) -> dict[str, Any]:
        arn = f"arn:aws:cloudwatch:{self.region}:{self.account_id}:alarm:{spec.name}"
        detail = {
            "alarmName": spec.name,
            "state": {"value": "ALARM", "reason": reason, "timestamp": _stamp(now),
                      **({"reasonData": f'{{"recentDatapoints":[{value}],"threshold":{spec.threshold}}}'}
                         if value is not None else {})},
            "previousState": previous,
            "configuration": {
                "description": spec.description,
                "metrics": [
                    {
                        "id": str(uuid.uuid4()),
                        "metricStat": {
                            "metric": {"namespace": spec.namespace, "name": spec.metric,
                                       "dimensions": dict(spec.dimensions)},
                            "period": spec.period,
                            "stat": spec.statistic,
                        },
                        "returnData": True,
                    }
                ],
            },
        }  # fmt: skip
        return self.put(SOURCE, DETAIL_TYPE, detail, [arn])
