"""What a million predictions cost on the endpoint's instance type, from measured throughput.

The price table is data with its source and date next to each figure, not a constant buried in
code: prices change, so the report prints which price it used and ``textclf bench
--price-per-hour`` overrides it. The default instance type is the deploy default (the template's
``EndpointInstanceType``; ``textclf.deploy.DEFAULT_INSTANCE_TYPE``, a test keeps them equal). A
2-vCPU ml.m5.large is the same size as the 2-vCPU machines the figures are measured on here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    usd_per_hour: float
    region: str
    source: str
    as_of: str


#: SageMaker real-time inference, on-demand, per instance-hour. Check the source before relying
#: on a figure; pass --price-per-hour for another region, type or a negotiated rate.
PRICES: dict[str, Price] = {
    "ml.m5.large": Price(
        0.115,
        "us-east-1",
        "https://aws.amazon.com/sagemaker/pricing/ (On-Demand, Real-Time Inference, US East (N. Virginia))",
        "2026-12",
    ),
}


def cost_per_million(throughput_rps: float, usd_per_hour: float) -> float:
    """USD per million predictions at ``throughput_rps`` sustained on one instance."""
    if throughput_rps <= 0:
        return float("nan")
    return usd_per_hour / (throughput_rps * 3600.0) * 1_000_000.0
