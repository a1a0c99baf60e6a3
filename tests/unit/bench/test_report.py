"""Report: target checks from measured figures, table, JSON round trip and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from textclf.bench import report
from textclf.bench.loadgen import LoadResult
from textclf.bench.plots import write_plots
from textclf.bench.runner import LoadedRun
from textclf.bench.servers import RssSampler
from textclf.bench.stats import cdf_points

MB = 1024 * 1024


def _load(
    server: str, concurrency: int, *, latency_s: float, ok: int, errors: int, rss_mb: float
) -> dict[str, Any]:
    result = LoadResult(
        url="http://127.0.0.1:1/invocations",
        concurrency=concurrency,
        duration_s=2.0,
        warmup_s=0.0,
        measured_s=2.0,
        sent=ok + errors,
        ok=ok,
        errors={"http_503": errors} if errors else {},
        latencies_s=[latency_s * (1 + i / ok) for i in range(ok)],
        per_second_ok=[ok // 2, ok - ok // 2],
        stopped_by="duration",
        client_cpu_fraction=0.25,
        wall_s=2.0,
    )
    sampler = RssSampler(pid=0)
    sampler.samples = [(0.0, int(rss_mb * MB)), (1.0, int(rss_mb * MB) // 2)]
    return LoadedRun(result, sampler, server_cpu_s=1.0, wall_s=2.0).record(server)


def _runtime(name: str, p50_ms: float, batch_rps: float) -> dict[str, Any]:
    return {
        "name": name,
        "source": "x",
        "load_s": 0.1,
        "single": {
            "count": 10,
            "mean_ms": p50_ms,
            "p50_ms": p50_ms,
            "p90_ms": p50_ms,
            "p99_ms": 2 * p50_ms,
            "max_ms": 3 * p50_ms,
        },
        "batch_size": 32,
        "batch_headlines": 320,
        "batch_seconds": 320 / batch_rps,
        "batch_throughput": batch_rps,
    }


def _results(
    *,
    int8_p50: float,
    endpoint_ok: int,
    endpoint_p99_s: float,
    fp32_acc: float,
    int8_acc: float,
    baseline_ok: int = 600,
    fp32_f1: float = 0.90,
    int8_f1: float = 0.8995,
) -> dict[str, Any]:
    xs, ys = cdf_points([0.001, 0.002, 0.003])
    return {
        "config": {"duration_s": 2.0, "warmup_s": 0.0},
        "model": {
            "single_calls_per_runtime": 10,
            "runtimes": [
                _runtime("pipeline", 6.0, 300.0),
                _runtime("torch", 4.0, 500.0),
                _runtime("onnx-fp32", 2.0, 900.0),
                _runtime("onnx-int8", int8_p50, 1700.0),
            ],
            "cdf": {"pipeline": {"ms": xs, "fraction": ys}, "onnx-int8": {"ms": xs, "fraction": ys}},
            "accuracy": {
                "n": 1000,
                "sampled": True,
                "accuracy": {"onnx-fp32": fp32_acc, "onnx-int8": int8_acc},
                "macro_f1": {"onnx-fp32": fp32_f1, "onnx-int8": int8_f1},
                "agreement": 0.995,
                "seconds": {},
            },
        },
        "endpoint_level": [
            _load("endpoint", 1, latency_s=0.002, ok=800, errors=0, rss_mb=400),
            _load("baseline", 1, latency_s=0.006, ok=300, errors=0, rss_mb=500),
            _load("endpoint", 64, latency_s=endpoint_p99_s / 2, ok=endpoint_ok, errors=0, rss_mb=450),
            _load("baseline", 64, latency_s=0.2, ok=baseline_ok, errors=0, rss_mb=520),
        ],
        "api_level": [
            {**_load("api", 1, latency_s=0.004, ok=200, errors=0, rss_mb=900), "path": "POST /predict"}
        ],
    }


def _status(checks: list[dict[str, Any]], prefix: str) -> str:
    (match,) = [c for c in checks if c["target"].startswith(prefix)]
    return str(match["status"])


def test_targets_pass_when_the_figures_meet_them() -> None:
    checks = report.check_targets(
        _results(
            int8_p50=0.6,
            endpoint_ok=4000,
            endpoint_p99_s=0.02,
            fp32_acc=0.91,
            int8_acc=0.909,
            baseline_ok=200,
        )
    )
    assert {c["status"] for c in checks} == {"pass"}, checks
    ratio = next(c for c in checks if c["target"].startswith("endpoint / baseline"))
    assert ratio["measured"] == pytest.approx(4000 / 200)
    served = next(c for c in checks if c["target"].startswith("served (onnx-int8) accuracy"))
    assert served["measured"] == pytest.approx(0.1)  # 91.0% -> 90.9%


def test_issue_12_targets_read_the_served_configuration() -> None:
    results = _results(
        int8_p50=0.6, endpoint_ok=4000, endpoint_p99_s=0.02, fp32_acc=0.91, int8_acc=0.9085, int8_f1=0.89
    )
    # The served row is int8 + cascade when the bench measured one.
    results["model"]["accuracy"]["accuracy"]["onnx-int8+cascade"] = 0.9105
    results["model"]["accuracy"]["macro_f1"]["onnx-int8+cascade"] = 0.8995
    checks = report.check_targets(results)
    assert _status(checks, "served / baseline headlines/s") == "FAIL"  # 2,000/s vs 300/s: 6.7x
    assert _status(checks, "served p99 / baseline p99") == "pass"
    assert _status(checks, "served (onnx-int8+cascade) accuracy drop") == "pass"  # -0.05 points
    assert _status(checks, "served (onnx-int8+cascade) macro-F1 drop") == "pass"  # 0.05 points
    results["model"]["accuracy"]["macro_f1"]["onnx-int8+cascade"] = 0.898
    assert _status(report.check_targets(results), "served (onnx-int8+cascade) macro-F1 drop") == "FAIL"


def test_targets_fail_on_each_missed_figure() -> None:
    checks = report.check_targets(
        _results(int8_p50=1.5, endpoint_ok=2000, endpoint_p99_s=0.08, fp32_acc=0.91, int8_acc=0.90)
    )
    assert _status(checks, "ONNX int8 single-headline p50") == "FAIL"
    assert _status(checks, "ONNX int8 p50 speed-up") == "FAIL"  # 6.0 / 1.5 = 4x
    assert _status(checks, "int8 accuracy drop") == "FAIL"  # 1.0 point
    assert _status(checks, "endpoint headlines/s") == "FAIL"  # 1,000/s
    assert _status(checks, "endpoint p99") == "FAIL"
    assert _status(checks, "endpoint / baseline") == "FAIL"  # 1000 / 300
    assert _status(checks, "endpoint errors") == "pass"


def test_targets_not_run_are_not_applicable() -> None:
    checks = report.check_targets({"config": {}})
    assert {c["status"] for c in checks} == {"n/a"}


@pytest.mark.parametrize(("capture_ok", "status"), [(3900, "pass"), (3600, "FAIL")])
def test_capture_costs_are_the_ratio_of_the_same_runs_throughput(capture_ok: int, status: str) -> None:
    results = _results(int8_p50=0.8, endpoint_ok=4000, endpoint_p99_s=0.04, fp32_acc=0.9, int8_acc=0.899)
    results["endpoint_level"].append(
        _load("endpoint-capture", 64, latency_s=0.02, ok=capture_ok, errors=0, rss_mb=450)
    )
    results["capture"] = {"files": 3, "lines": 2000, "bytes": 1}
    assert report.capture_ratios(results) == {64: pytest.approx(capture_ok / 4000)}  # both measured 2 s
    assert _status(report.check_targets(results), "throughput with data capture") == status
    assert "throughput with / without c=64" in report.render_table(results)
    # Without a capture run there is no such target.
    del results["endpoint_level"][-1]
    assert not [c for c in report.check_targets(results) if "capture" in c["target"]]


def test_table_json_and_plots(tmp_path: Path) -> None:
    results = _results(int8_p50=0.6, endpoint_ok=4000, endpoint_p99_s=0.02, fp32_acc=0.91, int8_acc=0.909)
    results["targets"] = report.check_targets(results)
    text = report.render_table(results)
    assert "onnx-int8" in text and "baseline" in text and "POST /predict" in text
    assert "10.00" in text  # pipeline p50 / int8 p50 = 6.0 / 0.6
    md = report.render_table(results, markdown=True)
    assert "| runtime |" in md and "|---|" in md

    path = report.write_json(results, tmp_path / "bench.json")
    again = json.loads(path.read_text())
    assert report.render_table(again) == text

    plots = write_plots(results, tmp_path)
    assert {p.name for p in plots} == {"model_latency_cdf.png", "latency_cdf.png", "throughput.png"}
    for plot in plots:
        data = plot.read_bytes()
        assert data.startswith(b"\x89PNG")
        assert len(data) < 200_000


def test_soak_plot_and_flatness(tmp_path: Path) -> None:
    results = {
        "soak": {
            "concurrency": 64,
            "duration_s": 10.0,
            "throughput_rps": 1000.0,
            "latency": {"p99_ms": 20.0},
            "errors": 0,
            "rss_series": [(float(t), 400 * MB) for t in range(10)],
            "rss_start_bytes": 400 * MB,
            "rss_end_bytes": 400 * MB,
            "peak_rss_bytes": 700 * MB,
            "rss_slope_mb_per_min": 0.0,
        }
    }
    checks = report.check_targets(results)
    assert _status(checks, "endpoint peak RSS") == "FAIL"  # 700 MB peak
    assert "Soak: 10 s at concurrency 64" in report.render_table(results)
    assert [p.name for p in write_plots(results, tmp_path)] == ["soak_rss.png"]


def test_run_record_server_cpu_figures() -> None:
    record = _load("endpoint", 8, latency_s=0.002, ok=90, errors=10, rss_mb=300)
    assert record["server_cores"] == pytest.approx(0.5)  # 1 CPU second over 2 s of wall time
    assert record["server_cpu_ms_per_request"] == pytest.approx(1000.0 / 100)  # sent = 100
    assert record["peak_rss_bytes"] == 300 * MB
    assert record["error_count"] == 10 and record["errors"] == {"http_503": 10}


def test_cost_per_million_prices_each_servers_best_throughput() -> None:
    from textclf.bench.prices import PRICES, cost_per_million

    assert cost_per_million(1000.0, 3.6) == pytest.approx(1.0)  # 3.6 M predictions per $3.60 hour
    results = _results(int8_p50=0.6, endpoint_ok=4000, endpoint_p99_s=0.02, fp32_acc=0.91, int8_acc=0.909)
    line = report.cost_lines(results)
    price = PRICES["ml.m5.large"].usd_per_hour
    # endpoint: best 2,000/s (c=64); baseline: best 300/s (c=64 vs 150/s at c=1).
    assert f"endpoint ${cost_per_million(2000.0, price):,.3f} (2,000/s at concurrency 64)" in line
    assert f"baseline ${cost_per_million(300.0, price):,.3f}" in line
    results["config"] |= {"instance_type": "ml.c6i.large"}
    assert "no price for ml.c6i.large; pass --price-per-hour" in report.cost_lines(results)
    results["config"] |= {"price_per_hour": 0.1}
    assert "at $0.100/h (--price-per-hour)" in report.cost_lines(results)


def test_the_priced_default_is_the_templates_default_instance_type() -> None:
    from textclf import config
    from textclf.deploy import DEFAULT_INSTANCE_TYPE
    from textclf.local.template import load_template

    template = load_template(config.REPO_ROOT / "template.yaml")
    assert template["Parameters"]["EndpointInstanceType"]["Default"] == DEFAULT_INSTANCE_TYPE
    from textclf.bench.prices import PRICES

    assert DEFAULT_INSTANCE_TYPE in PRICES
