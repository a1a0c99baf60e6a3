"""The functions' logger and metrics (powertools), configured once for every handler.

Service name, namespace and log level come from POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_LOG_LEVEL (template.yaml Globals). The defaults equal
the template's values so that a process importing the handlers before setting its environment
(the local stack, the tests) still emits valid EMF instead of failing on a missing namespace.

No tracer: Lambda's active tracing (template.yaml ``Tracing: Active``) records each invocation's
segments without an SDK in the function, and what powertools' Tracer added on top (a subsegment
per route, the job names as annotations) is in the logs as keys (``route``, ``training_job_name``,
``transform_job_name``). The X-Ray SDK and its patching of botocore cost every cold start about
20 ms and the layer 1.65 MB (docs/api.md#observability).
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "textclf-api"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "textclf"
# Some requests have nothing to count (GET /train/{job_name}, or a health check that failed before
# measuring); powertools would log a warning for each such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def count_by(name: str, dimension: str, value: str, count: float = 1) -> None:
    """Emit ``name`` (a count) with one extra dimension, e.g. errors by type, predictions by label.

    A metric of its own (powertools' ``single_metric``): the function's shared ``metrics`` carry
    only the service dimension. ``value`` must come from a bounded set (each is a new series).
    """
    with single_metric(name=name, unit=MetricUnit.Count, value=count, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name=dimension, value=value)
