"""Bench report: a plain-text table, ``bench.json`` and PNG plots.

The report is built from one ``results`` dict (the same one written to ``bench.json``), so the
table, the JSON and the plots can never disagree, and a saved ``bench.json`` can be rendered
again (``render_table(json.load(...))``) without rerunning anything.

Targets are the thresholds below (the model and the endpoint; the served configuration); each is
checked against the measured figures of the same run and reported as pass, FAIL, or n/a (level not
run).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MB = 1024 * 1024

#: Targets of the model and the endpoint (thresholds, not results: results always come from the run).
TARGET_INT8_P50_MS = 1.0
TARGET_INT8_SPEEDUP = 5.0
TARGET_ENDPOINT_RPS = 1500.0
TARGET_ENDPOINT_P99_MS = 50.0
TARGET_ENDPOINT_SPEEDUP = 5.0
TARGET_RSS_MB = 600.0
TARGET_API_P50_MS = 10.0
TARGET_ACCURACY_DROP_POINTS = 0.3
TARGET_CONCURRENCY = 64
# The served configuration against the pipeline baseline at TARGET_CONCURRENCY, at
# accuracy (and macro-F1) no more than 0.1 point below the fp32 model on the test split.
TARGET_SERVED_SPEEDUP = 15.0
TARGET_SERVED_P99_SHARE = 0.1
TARGET_SERVED_ACCURACY_DROP_POINTS = 0.1
#: The stack the template deploys against the local endpoint, same run: at least 0.8x its rate.
TARGET_CLOUD_RATIO = 0.8
TARGET_CLOUD_P99_MS = 60.0
#: Data capture of every invocation may cost at most 5% of the endpoint's throughput.
TARGET_CAPTURE_RATIO = 0.95
#: The endpoint-level server that captures (``textclf bench --capture``).
CAPTURE_SERVER = "endpoint-capture"
#: The model-level row that is what the endpoint serves (int8 + the packaged cascade), else int8.
SERVED_RUNTIMES = ("onnx-int8+cascade", "onnx-int8")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Fixed-width text table; numbers right-aligned."""
    cells = [[_fmt(v) if not isinstance(v, str) else v for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(values: Sequence[str], raw: Sequence[Any] | None = None) -> str:
        parts = []
        for i, v in enumerate(values):
            numeric = raw is not None and isinstance(raw[i], int | float) and not isinstance(raw[i], bool)
            parts.append(v.rjust(widths[i]) if numeric else v.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(cells[i], rows[i]) for i in range(len(rows))]
    return "\n".join(out)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as GitHub markdown (for docs/benchmarks.md)."""
    head = "| " + " | ".join(headers) + " |"
    sep = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"
    body = ["| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in row) + " |" for row in rows]
    return "\n".join([head, sep, *body])


# -- rows ------------------------------------------------------------------------------------


def model_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    model = results.get("model") or {}
    runtimes = model.get("runtimes") or []
    base = next((r for r in runtimes if r["name"] == "pipeline"), None)
    base_p50 = base["single"]["p50_ms"] if base else math.nan
    headers = ["runtime", "p50 ms", "p99 ms", "batch-32 headlines/s", "p50 speed-up vs pipeline"]
    rows = []
    for r in runtimes:
        p50 = r["single"]["p50_ms"]
        speedup = base_p50 / p50 if p50 and not math.isnan(base_p50) else math.nan
        rows.append([r["name"], p50, r["single"]["p99_ms"], r["batch_throughput"], speedup])
    return headers, rows


def load_rows(
    results: Mapping[str, Any], runs: Sequence[Mapping[str, Any]] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """One row per load run: the endpoint level's, or ``runs`` (the cloud level's)."""
    headers = [
        "server",
        "concurrency",
        "headlines/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "peak RSS MB",
        "server CPU ms/req",
        "client CPU",
        "error kinds",
    ]
    rows = []
    for run in results.get("endpoint_level") or [] if runs is None else runs:
        rows.append(
            [
                run["server"],
                run["concurrency"],
                run["throughput_rps"],
                run["latency"]["p50_ms"],
                run["latency"]["p99_ms"],
                run["error_count"],
                run["peak_rss_bytes"] / MB,
                run.get("server_cpu_ms_per_request"),
                f"{100 * run['client_cpu_fraction']:.0f}%",
                ", ".join(f"{kind} x{n}" for kind, n in sorted((run.get("errors") or {}).items())) or "-",
            ]
        )
    return headers, rows


def api_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["path", "concurrency", "first call ms", "requests", "p50 ms", "p99 ms", "errors"]
    rows = []
    for run in results.get("api_level") or []:
        rows.append(
            [
                run["path"],
                run["concurrency"],
                run.get("first_call_ms"),  # absent in results written before it was measured
                run["ok"],
                run["latency"]["p50_ms"],
                run["latency"]["p99_ms"],
                run["error_count"],
            ]
        )
    return headers, rows


def find_run(results: Mapping[str, Any], server: str, concurrency: int) -> Mapping[str, Any] | None:
    for run in results.get("endpoint_level") or []:
        if run["server"] == server and run["concurrency"] == concurrency:
            return run
    return None


def check_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each model and endpoint target with the measured value and pass / FAIL / n/a."""
    checks: list[dict[str, Any]] = []

    def add(name: str, measured: float | None, target: str, ok: bool | None) -> None:
        status = "n/a" if ok is None else ("pass" if ok else "FAIL")
        checks.append({"target": name, "measured": measured, "threshold": target, "status": status})

    runtimes = {r["name"]: r for r in (results.get("model") or {}).get("runtimes") or []}
    int8 = runtimes.get("onnx-int8")
    pipe = runtimes.get("pipeline")
    p50 = int8["single"]["p50_ms"] if int8 else None
    add(
        "ONNX int8 single-headline p50 (ms)",
        p50,
        f"<= {TARGET_INT8_P50_MS}",
        None if p50 is None else p50 <= TARGET_INT8_P50_MS,
    )
    speed = pipe["single"]["p50_ms"] / p50 if (pipe and p50) else None
    add(
        "ONNX int8 p50 speed-up vs pipeline",
        speed,
        f">= {TARGET_INT8_SPEEDUP}x",
        None if speed is None else speed >= TARGET_INT8_SPEEDUP,
    )
    acc = (results.get("model") or {}).get("accuracy")
    drop = None
    if acc and "onnx-fp32" in acc["accuracy"] and "onnx-int8" in acc["accuracy"]:
        drop = 100.0 * (acc["accuracy"]["onnx-fp32"] - acc["accuracy"]["onnx-int8"])
    add(
        "int8 accuracy drop vs fp32 (points)",
        drop,
        f"<= {TARGET_ACCURACY_DROP_POINTS}",
        None if drop is None else drop <= TARGET_ACCURACY_DROP_POINTS,
    )

    endpoint = find_run(results, "endpoint", TARGET_CONCURRENCY)
    baseline = find_run(results, "baseline", TARGET_CONCURRENCY)
    rps = endpoint["throughput_rps"] if endpoint else None
    add(
        f"endpoint headlines/s at concurrency {TARGET_CONCURRENCY}",
        rps,
        f">= {TARGET_ENDPOINT_RPS:,.0f}",
        None if rps is None else rps >= TARGET_ENDPOINT_RPS,
    )
    p99 = endpoint["latency"]["p99_ms"] if endpoint else None
    add(
        f"endpoint p99 at concurrency {TARGET_CONCURRENCY} (ms)",
        p99,
        f"<= {TARGET_ENDPOINT_P99_MS}",
        None if p99 is None else p99 <= TARGET_ENDPOINT_P99_MS,
    )
    ratio = (
        rps / baseline["throughput_rps"]
        if (rps is not None and baseline and baseline["throughput_rps"])
        else None
    )
    add(
        f"endpoint / baseline throughput at concurrency {TARGET_CONCURRENCY}",
        ratio,
        f">= {TARGET_ENDPOINT_SPEEDUP}x",
        None if ratio is None else ratio >= TARGET_ENDPOINT_SPEEDUP,
    )
    endpoint_runs = [r for r in results.get("endpoint_level") or [] if r["server"] == "endpoint"]
    errors = sum(r["error_count"] for r in endpoint_runs) if endpoint_runs else None
    add("endpoint errors (all levels)", errors, "0", None if errors is None else errors == 0)
    soak = results.get("soak")
    if soak:
        peak = soak["peak_rss_bytes"] / MB
        add(
            f"endpoint peak RSS over {soak['duration_s']:.0f} s soak (MB)",
            peak,
            f"<= {TARGET_RSS_MB:.0f}, flat",
            peak <= TARGET_RSS_MB and soak["errors"] == 0,
        )
    elif endpoint_runs:
        peak = max(r["peak_rss_bytes"] for r in endpoint_runs) / MB
        add("endpoint peak RSS (MB, no soak run)", peak, f"<= {TARGET_RSS_MB:.0f}", peak <= TARGET_RSS_MB)
    else:
        add("endpoint peak RSS (MB)", None, f"<= {TARGET_RSS_MB:.0f}", None)
    api = next((r for r in results.get("api_level") or [] if r["concurrency"] == 1), None)
    api_ok: bool | None = None
    api_p50: float | None = None
    if api is not None:
        api_p50 = float(api["latency"]["p50_ms"])
        api_ok = api_p50 <= TARGET_API_P50_MS and api["error_count"] == 0
    add("full local API path p50 at concurrency 1 (ms)", api_p50, f"<= {TARGET_API_P50_MS}", api_ok)
    checks += served_targets(results)
    if cloud_runs(results):
        checks += cloud_targets(results)
    ratios = capture_ratios(results)
    if ratios:
        at = TARGET_CONCURRENCY if TARGET_CONCURRENCY in ratios else max(ratios)
        add(
            f"throughput with data capture / without at concurrency {at}",
            ratios[at],
            f">= {TARGET_CAPTURE_RATIO}",
            ratios[at] >= TARGET_CAPTURE_RATIO,
        )
    return checks


def capture_ratios(results: Mapping[str, Any]) -> dict[int, float]:
    """Concurrency -> headlines/s of the capturing endpoint over the plain one's, same run."""
    ratios: dict[int, float] = {}
    for run in results.get("endpoint_level") or []:
        if run["server"] != CAPTURE_SERVER:
            continue
        plain = find_run(results, "endpoint", run["concurrency"])
        if plain and plain["throughput_rps"]:
            ratios[int(run["concurrency"])] = run["throughput_rps"] / plain["throughput_rps"]
    return ratios


def capture_line(results: Mapping[str, Any]) -> str:
    ratios = capture_ratios(results)
    if not ratios:
        return ""
    written = results.get("capture") or {}
    each = ", ".join(f"c={c} {ratio:.3f}x" for c, ratio in sorted(ratios.items()))
    return (
        f"Data capture (every invocation, SageMaker's capture lines, buffered and written by a thread "
        f"of its own): throughput with / without {each}; {written.get('lines', '?'):,} lines in "
        f"{written.get('files', '?')} files written"
    )


def served_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The served endpoint vs the baseline server at concurrency 64, and the served
    runtime's test-split accuracy and macro-F1 vs fp32."""
    checks: list[dict[str, Any]] = []

    def add(name: str, measured: float | None, target: str, ok: bool | None) -> None:
        status = "n/a" if ok is None else ("pass" if ok else "FAIL")
        checks.append({"target": name, "measured": measured, "threshold": target, "status": status})

    endpoint = find_run(results, "endpoint", TARGET_CONCURRENCY)
    baseline = find_run(results, "baseline", TARGET_CONCURRENCY)
    speedup = share = None
    if endpoint is not None and baseline is not None:
        if baseline["throughput_rps"]:
            speedup = endpoint["throughput_rps"] / baseline["throughput_rps"]
        if baseline["latency"]["p99_ms"]:
            share = endpoint["latency"]["p99_ms"] / baseline["latency"]["p99_ms"]
    add(
        f"served / baseline headlines/s at concurrency {TARGET_CONCURRENCY}",
        speedup,
        f">= {TARGET_SERVED_SPEEDUP:.0f}x",
        None if speedup is None else speedup >= TARGET_SERVED_SPEEDUP,
    )
    add(
        f"served p99 / baseline p99 at concurrency {TARGET_CONCURRENCY}",
        share,
        f"<= {TARGET_SERVED_P99_SHARE}",
        None if share is None else share <= TARGET_SERVED_P99_SHARE,
    )
    acc = (results.get("model") or {}).get("accuracy") or {}
    served = next((name for name in SERVED_RUNTIMES if name in acc.get("accuracy", {})), None)
    for metric, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        figures = acc.get(metric) or {}
        drop = None
        if served and "onnx-fp32" in figures and served in figures:
            drop = 100.0 * (figures["onnx-fp32"] - figures[served])
        add(
            f"served ({served or 'n/a'}) {label} drop vs onnx-fp32 (points)",
            drop,
            f"<= {TARGET_SERVED_ACCURACY_DROP_POINTS}",
            # A hair of float slack: 0.910 - 0.909 is 0.10000000000000009 points.
            None if drop is None else drop <= TARGET_SERVED_ACCURACY_DROP_POINTS + 1e-9,
        )
    return checks


def target_rows(results: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    checks = results.get("targets") or check_targets(results)
    return ["target", "measured", "threshold", "status"], [
        [c["target"], c["measured"], c["threshold"], c["status"]] for c in checks
    ]


def sub_batch_rows(sweep: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[list[Any]]]:
    sizes = sorted({int(size) for rates in sweep.values() for size in rates})
    headers = ["runtime", *[f"passes of {size}" for size in sizes]]
    return headers, [
        [name, *[rates.get(str(size), math.nan) for size in sizes]] for name, rates in sweep.items()
    ]


def ceiling_line(ceiling: Mapping[str, Any], runtimes: Mapping[str, Any]) -> str:
    """The compute bound in words, with int8's measured batch gain over fp32 applied to it."""
    line = (
        f"Compute ceiling: {ceiling['gflop_per_headline']:.3f} GFLOP per headline "
        f"(mean {ceiling['mean_tokens']:.1f} tokens, {ceiling['shape']['layers']} layers x "
        f"{ceiling['shape']['hidden']}); fp32 GEMM at the model's shapes {ceiling['gemm_gflops_fp32']:.0f} "
        f"GFLOP/s on {ceiling['threads']} threads -> at most "
        f"{ceiling['ceiling_headlines_per_s_fp32']:,.0f} headlines/s in fp32"
    )
    fp32, int8 = runtimes.get("onnx-fp32"), runtimes.get("onnx-int8")
    if fp32 and int8 and fp32.get("batch_throughput"):
        gain = int8["batch_throughput"] / fp32["batch_throughput"]
        line += (
            f"; int8 measured {gain:.2f}x fp32 in batches -> about "
            f"{gain * ceiling['ceiling_headlines_per_s_fp32']:,.0f} headlines/s with int8 kernels"
        )
    return line + " (no server can beat this model on this machine)"


def cost_lines(results: Mapping[str, Any], runs: Sequence[Mapping[str, Any]] | None = None) -> str:
    """Cost per million predictions of each server at its best measured throughput, on one
    instance of the configured type (price from ``prices.PRICES`` or ``--price-per-hour``):
    the endpoint level's servers, or ``runs`` (the cloud level's)."""
    from textclf.bench.prices import PRICES, cost_per_million
    from textclf.deploy import DEFAULT_INSTANCE_TYPE

    cfg = results.get("config") or {}
    instance = str(cfg.get("instance_type") or DEFAULT_INSTANCE_TYPE)
    override = cfg.get("price_per_hour")
    known = PRICES.get(instance)
    if override is None and known is None:
        return f"Cost per million predictions: no price for {instance}; pass --price-per-hour"
    if override is not None:
        price, where = float(override), "--price-per-hour"
    else:
        assert known is not None
        price, where = known.usd_per_hour, f"{known.region} on-demand, {known.source}, {known.as_of}"
    best: dict[str, Mapping[str, Any]] = {}
    for run in results.get("endpoint_level") or [] if runs is None else runs:
        if run["error_count"]:
            continue  # a rate bought by shedding load is not a rate the endpoint serves
        if run["server"] not in best or run["throughput_rps"] > best[run["server"]]["throughput_rps"]:
            best[run["server"]] = run
    items = [
        f"{name} ${cost_per_million(run['throughput_rps'], price):,.3f} "
        f"({run['throughput_rps']:,.0f}/s at concurrency {run['concurrency']})"
        for name, run in best.items()
    ]
    return (
        f"Cost per million predictions on one {instance} at ${price:.3f}/h ({where}), at each server's "
        f"best throughput measured without errors: " + ("; ".join(items) or "none without errors")
    )


def cloud_runs(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((results.get("cloud_level") or {}).get("runs") or [])


def cloud_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each cloud server (the DLC's, textclf's image) against the local endpoint of the same run,
    at concurrency 64: throughput ratio, p99 and errors."""
    from textclf.bench.cloud import CLOUD_SERVERS, LOCAL_SERVER

    runs = {"cloud_level": cloud_runs(results)}
    local = _find(runs, LOCAL_SERVER)
    checks: list[dict[str, Any]] = []
    for kind, name in CLOUD_SERVERS.items():
        server = _find(runs, name)
        if server is None:
            continue
        base = local["throughput_rps"] if local else 0.0
        ratio = server["throughput_rps"] / base if base else None
        p99 = server["latency"]["p99_ms"]
        errors = sum(r["error_count"] for r in runs["cloud_level"] if r["server"] == name)
        checks += [
            _check(
                f"cloud ({kind}) / local endpoint headlines/s at concurrency {TARGET_CONCURRENCY}",
                ratio,
                f">= {TARGET_CLOUD_RATIO}",
                None if ratio is None else ratio >= TARGET_CLOUD_RATIO,
            ),
            _check(
                f"cloud ({kind}) p99 at concurrency {TARGET_CONCURRENCY} (ms)",
                p99,
                f"<= {TARGET_CLOUD_P99_MS:.0f}",
                p99 <= TARGET_CLOUD_P99_MS,
            ),
            _check(f"cloud ({kind}) errors (all levels)", errors, "0", errors == 0),
        ]
    return checks


def cpu_share_line(runs: Sequence[Mapping[str, Any]]) -> str:
    """Each cloud server's CPU per request over the local endpoint's at the same concurrency.

    On a machine other work keeps busy, the scheduler gives a server of several processes (the
    DLC's JVM and workers) more of the cores than a one-process server, so throughput ratios
    drift with the background load; the CPU one request costs drifts far less, and on a
    dedicated instance capacity is the cores over it."""
    from textclf.bench.cloud import LOCAL_SERVER

    local = {r["concurrency"]: r for r in runs if r["server"] == LOCAL_SERVER}
    items = []
    for run in runs:
        base = local.get(run["concurrency"])
        cpu, base_cpu = run.get("server_cpu_ms_per_request"), (base or {}).get("server_cpu_ms_per_request")
        if run["server"] != LOCAL_SERVER and cpu and base_cpu and not run["error_count"]:
            items.append(f"{run['server']} {cpu / base_cpu:.2f}x at concurrency {run['concurrency']}")
    return (
        "Server CPU per request relative to local-endpoint (steadier than throughput when other work "
        "shares the cores; on a dedicated instance capacity is cores / CPU per request): "
        + ("; ".join(items) or "-")
    )


def _find(results: Mapping[str, Any], server: str) -> Mapping[str, Any] | None:
    return next(
        (
            r
            for r in results.get("cloud_level") or []
            if r["server"] == server and r["concurrency"] == TARGET_CONCURRENCY
        ),
        None,
    )


def _check(name: str, measured: float | None, threshold: str, ok: bool | None) -> dict[str, Any]:
    status = "n/a" if ok is None else ("pass" if ok else "FAIL")
    return {"target": name, "measured": measured, "threshold": threshold, "status": status}


def render_table(results: Mapping[str, Any], *, markdown: bool = False) -> str:
    """The whole report as text (stdout) or markdown (docs)."""
    table = markdown_table if markdown else format_table
    parts: list[str] = []
    machine = results.get("machine")
    if machine:
        load = machine.get("loadavg_1_5_15") or []
        end = machine.get("loadavg_at_end") or []
        parts.append(
            f"Machine: {machine.get('cpu_model')}, {machine.get('logical_cpus')} logical CPUs "
            f"({machine.get('physical_cpus')} physical), {machine.get('memory_gb')} GB RAM; "
            f"load average (1 min) {_fmt(load[0]) if load else '?'} at start, "
            f"{_fmt(end[0]) if end else '?'} at end; int8 instructions: "
            f"{', '.join(machine.get('int8_instructions') or []) or 'unknown'}"
        )
    model = results.get("model")
    if model:
        n = model.get("single_calls_per_runtime")
        parts.append(
            f"Model level (one process; {n} single-headline calls per runtime, test-split headlines)"
        )
        parts.append(table(*model_rows(results)))
        acc = model.get("accuracy")
        if acc:
            what = f"sample of {acc['n']:,}" if acc["sampled"] else f"full split, {acc['n']:,} headlines"
            accs = ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc["accuracy"].items())
            f1s = ", ".join(f"{k} {v:.4f}" for k, v in (acc.get("macro_f1") or {}).items())
            parts.append(
                f"Accuracy on the STORY-grouped test split ({what}): {accs}"
                + (f"; macro-F1: {f1s}" if f1s else "")
                + f"; argmax agreement (first two) {100 * acc['agreement']:.2f}%"
            )
        sweep = model.get("sub_batch")
        if sweep:
            parts.append(
                "Batches of 32 headlines scored in passes of N rows (inference.py BATCH_SIZE), headlines/s"
            )
            parts.append(table(*sub_batch_rows(sweep)))
        ceiling = model.get("ceiling")
        if ceiling:
            parts.append(ceiling_line(ceiling, {r["name"]: r for r in model.get("runtimes") or []}))
    if results.get("endpoint_level"):
        cfg = results.get("config") or {}
        parts.append(
            f"Endpoint level, local servers (textclf serve-endpoint and the baseline; closed loop, one "
            f"headline per request, {cfg.get('duration_s')} s per level after {cfg.get('warmup_s')} s "
            "warm-up; servers in their own processes)"
        )
        parts.append(table(*load_rows(results)))
        capture = capture_line(results)
        if capture:
            parts.append(capture)
        if not cloud_runs(results):
            parts.append("Local servers, not the cloud path: " + cost_lines(results))
    cloud = results.get("cloud_level") or {}
    if cloud.get("skipped") and not cloud_runs(results):
        parts.append(f"Cloud level skipped: {cloud['skipped']}")
    elif cloud:
        cfg = results.get("config") or {}
        servers = cloud.get("servers") or {}
        env = {**(servers.get("deploy_environment") or {}), **(servers.get("overrides") or {})}
        names = servers.get("names") or [r["server"] for r in cloud_runs(results)]
        kinds: dict[str, str] = {
            "cloud-dlc": "the HF inference DLC's model server (multi-model-server 1.1.11 + "
            "sagemaker-huggingface-inference-toolkit 2.6.0, run without Docker)",
            "cloud-textclf": "textclf's inference image's serve (textclf.serving.container: the "
            "micro-batching endpoint), run without Docker",
        }
        described = "; ".join(f"{n} = {kinds[n]}" for n in names if n in kinds)
        parts.append(
            f"Cloud level: {described}; each with the deploy function's container environment {env}; "
            f"local-endpoint = textclf serve-endpoint; same run, interleaved, {cfg.get('duration_s')} s "
            "per level" + (f" ({cloud['skipped']}: the DLC was left out)" if cloud.get("skipped") else "")
        )
        parts.append(table(*load_rows(results, cloud_runs(results))))
        parts.append(cpu_share_line(cloud_runs(results)))
        parts.append("Cloud path: " + cost_lines(results, cloud_runs(results)))
    if results.get("api_level"):
        parts.append("Full local API path (HTTP -> Lambda handler -> boto3 -> endpoint)")
        parts.append(table(*api_rows(results)))
    soak = results.get("soak")
    if soak:
        parts.append(
            f"Soak: {soak['duration_s']:.0f} s at concurrency {soak['concurrency']}: "
            f"{soak['throughput_rps']:,.0f} headlines/s, p99 {soak['latency']['p99_ms']:.1f} ms, "
            f"errors {soak['errors']}, RSS start {soak['rss_start_bytes'] / MB:.0f} MB, "
            f"end {soak['rss_end_bytes'] / MB:.0f} MB, peak {soak['peak_rss_bytes'] / MB:.0f} MB, "
            f"slope {soak['rss_slope_mb_per_min']:+.2f} MB/min"
        )
    parts.append("Targets (the model and the endpoint; the served configuration)")
    parts.append(table(*target_rows(results)))
    return "\n\n".join(parts) + "\n"


def write_json(results: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    return path
