"""``textclf bench`` end to end: model level, endpoint level (vs baseline), API path, soak.

Every server runs as its own process (``servers.ServerProcess``) and is stopped in ``finally``
blocks, so a failed level never leaves a server behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import random
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from textclf_api.settings import DEFAULT_INFERENCE_SERVER

from textclf.bench import cloud, report
from textclf.bench.cloud import DEFAULT_DLC_VENV
from textclf.bench.loadgen import LoadResult, run_load
from textclf.bench.plots import write_plots
from textclf.bench.servers import (
    RssSampler,
    ServerProcess,
    listening,
    process_tree_cpu_seconds,
    python_module_argv,
)
from textclf.bench.stats import cdf_points, linear_slope
from textclf.config import artifacts_dir
from textclf.errors import UserError
from textclf.local import API_KEY_ENV

log = logging.getLogger(__name__)

LEVELS = ("model", "endpoint", "api")
#: ``soak`` runs only when asked for (``--soak SECONDS`` or ``--levels ...,soak``): it takes minutes.
#: ``cloud`` too: it needs the DLC's model server (``make dlc-venv``).
ALL_LEVELS = (*LEVELS, "cloud", "soak")
DEFAULT_SOAK_S = 300.0
HOST = "127.0.0.1"


@dataclass
class BenchConfig:
    """Everything a run depends on (written to ``bench.json`` so a figure can be traced back)."""

    model_dir: Path
    package: Path
    data: Path
    out: Path
    duration_s: float = 30.0
    warmup_s: float = 3.0
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32, 64])
    levels: tuple[str, ...] = LEVELS
    soak_s: float = 0.0
    soak_concurrency: int = 64
    single_calls: int = 1000
    batch_calls: int = 30
    accuracy_sample: int | None = None  # None = the full test split
    headlines: int = 5000
    max_requests_per_level: int = 2_000_000
    request_timeout_s: float = 10.0
    api_duration_s: float | None = None
    seed: int = 0
    docs_img: Path | None = None
    #: What the cost line prices the measured throughput on (the deploy default) and at what
    #: hourly rate (None: the documented table, ``bench.prices``).
    instance_type: str = "ml.m5.large"
    price_per_hour: float | None = None
    onnx_dirs: dict[str, Path] = field(default_factory=dict)
    #: Also serve the archive with data capture on (every invocation, to a folder) beside the
    #: plain endpoint at the endpoint level: what capture costs, in the same run.
    capture: bool = False
    #: The cloud level: the virtualenv holding the DLC's model server, and container variables
    #: set on top of the deploy function's (tuning runs: workers, threads, MMS_* settings).
    dlc_venv: Path = DEFAULT_DLC_VENV
    #: The cloud level's servers: ``dlc``, ``textclf`` (textclf's inference image) or both; by
    #: default the template's InferenceServer default (its one owner: the deploy function's settings).
    inference_servers: tuple[str, ...] = (DEFAULT_INFERENCE_SERVER,)
    dlc_env: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()} | {
            "onnx_dirs": {k: str(v) for k, v in self.onnx_dirs.items()}
        }


#: The CPU features that decide which int8 GEMM kernels onnxruntime picks at run time.
INT8_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def describe_machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was when the run began."""
    cpu_model = platform.processor() or ""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
            if flags and line.startswith("model name"):
                break  # the first processor's entry is enough
    except OSError:
        pass
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "cpu_model": cpu_model,
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cpus": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg_1_5_15": load,
        # A speed figure holds only beside its baseline on the same CPU kind: say which kind.
        "int8_instructions": [name for name in INT8_FEATURES if name in flags],
    }


def load_headlines(data: Path, limit: int, seed: int) -> tuple[list[str], list[str]]:
    """(texts, labels) of the test split, shuffled deterministically; ``limit`` <= 0 = all."""
    from textclf.data import read_split

    frame = read_split(data)
    if frame.empty:
        raise UserError(f"{data}: the split is empty")
    texts = frame["text"].astype(str).tolist()
    labels = frame["label"].astype(str).tolist()
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    if limit > 0:
        order = order[:limit]
    return [texts[i] for i in order], [labels[i] for i in order]


# -- model level -----------------------------------------------------------------------------


def _weights_digest(model_dir: Path) -> str:
    """Identity of a trained model (weights + config): staged runtimes are reused while it holds."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and (path.suffix in (".safetensors", ".bin") or path.name == "config.json"):
            digest.update(path.name.encode())
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def prepare_onnx_dirs(cfg: BenchConfig) -> dict[str, Path]:
    """ONNX fp32 and int8 folders for the model level: given ones, else exported under ``out``.

    Export and quantisation use ``textclf.packaging.stage_runtime`` (the same code as
    ``textclf package``) and are cached by the trained weights' digest, so reruns skip them.
    """
    from textclf.packaging import stage_runtime

    dirs = dict(cfg.onnx_dirs)
    digest = _weights_digest(cfg.model_dir)
    for runtime in ("onnx-fp32", "onnx-int8"):
        if runtime in dirs:
            continue
        dest = cfg.out / "runtimes" / runtime
        stamp = dest / ".bench-source"
        if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == digest:
            log.info("model bench: reusing %s export in %s", runtime, dest)
        else:
            log.info("model bench: exporting %s into %s", runtime, dest)
            if dest.exists():
                shutil.rmtree(dest)
            stage_runtime(cfg.model_dir, runtime, dest)
            stamp.write_text(digest + "\n", encoding="utf-8")
        dirs[runtime] = dest
    return dirs


def run_model_level(cfg: BenchConfig, texts: list[str], labels: list[str]) -> dict[str, Any]:
    from textclf.bench.model_bench import (
        cascade_runtime,
        inference_runtime,
        measure_accuracy,
        pipeline_runtime,
        sub_batch_sweep,
        time_runtimes,
    )

    onnx_dirs = prepare_onnx_dirs(cfg)
    runtimes = [pipeline_runtime(cfg.model_dir), inference_runtime("torch", cfg.model_dir)]
    runtimes += [inference_runtime(name, onnx_dirs[name]) for name in ("onnx-fp32", "onnx-int8")]
    threshold = packaged_cascade_threshold(cfg.package)
    if threshold is not None:
        # The threshold the packaged archive serves with, on the int8 model: "int8 + cascade".
        runtimes.append(cascade_runtime(CASCADE_RUNTIME, onnx_dirs["onnx-int8"], threshold))
    log.info("model bench: timing %s", ", ".join(r.name for r in runtimes))
    timings = time_runtimes(
        runtimes,
        texts[: max(cfg.single_calls, 32 * cfg.batch_calls, 32)],
        single_calls=cfg.single_calls,
        batch_calls=cfg.batch_calls,
    )
    result: dict[str, Any] = {
        "single_calls_per_runtime": cfg.single_calls,
        "batch_calls_per_runtime": cfg.batch_calls,
        "runtimes": [t.to_dict() for t in timings],
        "cdf": {},
    }
    for t in timings:
        xs, ys = cdf_points(t.single_latencies_s)
        result["cdf"][t.name] = {"ms": xs, "fraction": ys}
    torch_model = next(r.model for r in runtimes if r.name == "torch")
    result["ceiling"] = model_ceiling(cfg.model_dir, torch_model, texts[:2000])
    log.info("model bench: rows per forward pass (sub-batch) for ONNX fp32 and int8")
    result["sub_batch"] = sub_batch_sweep(
        {r.name: r.model for r in runtimes if r.name in ("onnx-fp32", "onnx-int8")},
        texts[: 32 * max(cfg.batch_calls, 1)],
        batch_calls=max(cfg.batch_calls, 1),
    )
    quantized = [r for r in runtimes if r.name in ("onnx-fp32", "onnx-int8", CASCADE_RUNTIME)]
    if len(quantized) >= 2:
        n = len(texts) if cfg.accuracy_sample is None else min(cfg.accuracy_sample, len(texts))
        log.info("model bench: accuracy of onnx-fp32 and onnx-int8 on %d test headlines", n)
        accuracy = measure_accuracy(
            quantized,  # fp32 first: agreement is int8 vs fp32
            texts[:n],
            labels[:n],
            sampled=n < len(texts),
        )
        result["accuracy"] = accuracy.to_dict()
    return result


#: The model-level row of the int8 model with the packaged archive's confidence cascade.
CASCADE_RUNTIME = "onnx-int8+cascade"


def packaged_cascade_threshold(package: Path) -> float | None:
    """The cascade threshold recorded in the package -- an archive or a model folder, as the
    endpoint takes either (None: it has no cascade)."""
    from textclf.packaging.build import META_FILE, read_archive_meta

    if package.is_dir():
        meta_file = package / META_FILE
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else None
    else:
        meta = read_archive_meta(package) if package.is_file() else None
    cascade = (meta or {}).get("cascade")
    return float(cascade["threshold"]) if isinstance(cascade, dict) and "threshold" in cascade else None


def model_ceiling(model_dir: Path, model: Any, texts: list[str]) -> dict[str, Any]:
    """:func:`textclf.bench.ceiling.compute_ceiling` for the benchmarked model and headlines.

    ``model`` is the loaded ``inference.Classifier``: its tokenizer and ``max_length`` give the
    token counts the served model really sees.
    """
    from textclf.bench.ceiling import compute_ceiling
    from textclf.packaging.runtime import load_inference_module

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    encoded = model.tokenizer(texts, truncation=True, max_length=model.max_length)["input_ids"]
    return compute_ceiling(config, [len(ids) for ids in encoded], load_inference_module().num_threads())


# -- servers ---------------------------------------------------------------------------------


def _server_on_its_socket(
    cfg: BenchConfig, name: str, argv: list[str], env: Mapping[str, str] | None = None
) -> ServerProcess:
    """One server process answering ``/ping`` on a socket bound here (``--fd``)."""
    sock, port = listening(HOST, name)
    return ServerProcess(
        name,
        argv,
        HOST,
        port,
        ready_path="/ping",
        log_path=cfg.out / "logs" / f"{name}.log",
        sockets=[("--fd", sock)],
        env=env,
    )


def endpoint_server(cfg: BenchConfig, name: str = "endpoint") -> ServerProcess:
    argv = python_module_argv("textclf", "serve-endpoint", "--host", HOST, "--model", str(cfg.package))
    return _server_on_its_socket(cfg, name, argv)


#: The same archive served with its confidence cascade switched off (inference.py CASCADE_ENV).
NO_CASCADE_SERVER = "endpoint-no-cascade"


def endpoint_server_without_cascade(cfg: BenchConfig) -> ServerProcess:
    argv = python_module_argv("textclf", "serve-endpoint", "--host", HOST, "--model", str(cfg.package))
    return _server_on_its_socket(cfg, NO_CASCADE_SERVER, argv, {**os.environ, "TEXTCLF_CASCADE": "off"})


def endpoint_server_with_capture(cfg: BenchConfig) -> ServerProcess:
    argv = python_module_argv("textclf", "serve-endpoint", "--host", HOST, "--model", str(cfg.package))
    argv += ["--capture-dir", str(capture_dir(cfg)), "--capture-percent", "100"]
    return _server_on_its_socket(cfg, report.CAPTURE_SERVER, argv)


def capture_dir(cfg: BenchConfig) -> Path:
    return cfg.out / "capture"


def captured(cfg: BenchConfig) -> dict[str, int]:
    """What the capturing endpoint wrote (read after it stopped: its last flush is in)."""
    files = sorted(capture_dir(cfg).rglob("*.jsonl"))
    lines = sum(path.read_bytes().count(b"\n") for path in files)
    return {"files": len(files), "lines": lines, "bytes": sum(path.stat().st_size for path in files)}


def baseline_server(cfg: BenchConfig) -> ServerProcess:
    argv = python_module_argv("textclf.bench.baseline_server", "--model", str(cfg.model_dir), "--host", HOST)
    return _server_on_its_socket(cfg, "baseline", argv)


#: The x-api-key the benchmark's local stack is started with (POST /predict requires one).
BENCH_API_KEY = "textclf-bench-key"


def api_stack(cfg: BenchConfig) -> ServerProcess:
    api_sock, port = listening(HOST, "API")
    endpoint_sock, _ = listening(HOST, "endpoint")
    argv = python_module_argv("textclf", "serve", "--host", HOST, "--model", str(cfg.package))
    # The benchmarked archive, not what an earlier `make serve` deployed (that state is left alone).
    argv += ["--state-dir", str(artifacts_dir() / "local-stack" / "bench-state"), "--fresh"]
    env = {**os.environ, API_KEY_ENV: BENCH_API_KEY}
    # /health answers 200 only once the endpoint, the control plane and the API are all up.
    return ServerProcess(
        "api",
        argv,
        HOST,
        port,
        ready_path="/health",
        log_path=cfg.out / "logs" / "api.log",
        startup_timeout_s=180,
        sockets=[("--fd", api_sock), ("--endpoint-fd", endpoint_sock)],
        env=env,
    )


def invocation_bodies(texts: Sequence[str], key: str = "inputs") -> list[bytes]:
    return [json.dumps({key: t}).encode("utf-8") for t in texts]


@dataclass
class LoadedRun:
    """One load run against one server process, with that process's memory and CPU use."""

    result: LoadResult
    sampler: RssSampler
    server_cpu_s: float
    wall_s: float

    def record(self, server: str) -> dict[str, Any]:
        result = self.result
        record = {"server": server, **result.to_dict(), "peak_rss_bytes": self.sampler.peak_bytes}
        # Server CPU per request (warm-up included on both sides of the ratio): how much of the
        # machine one request costs, which on a shared 2-core box says more than latency alone.
        record["server_cpu_s"] = self.server_cpu_s
        record["server_cores"] = self.server_cpu_s / self.wall_s if self.wall_s > 0 else 0.0
        record["server_cpu_ms_per_request"] = (
            1000.0 * self.server_cpu_s / result.sent if result.sent else None
        )
        xs, ys = cdf_points(result.latencies_s)
        record["cdf"] = {"ms": xs, "fraction": ys}
        return record


def _loaded_run(
    server: ServerProcess,
    path: str,
    bodies: list[bytes],
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    max_requests: int,
    request_timeout_s: float,
    rss_interval_s: float = 0.25,
    headers: Mapping[str, str] | None = None,
) -> LoadedRun:
    sampler = RssSampler(server.pid, interval_s=rss_interval_s)
    cpu0 = process_tree_cpu_seconds(server.pid)
    t0 = time.perf_counter()
    with sampler:
        result = run_load(
            server.base_url + path,
            bodies,
            concurrency=concurrency,
            duration_s=duration_s,
            warmup_s=warmup_s,
            max_requests=max_requests,
            request_timeout_s=request_timeout_s,
            headers=headers,
        )
    wall = time.perf_counter() - t0
    return LoadedRun(result, sampler, process_tree_cpu_seconds(server.pid) - cpu0, wall)


def run_endpoint_level(cfg: BenchConfig, bodies: list[bytes]) -> list[dict[str, Any]]:
    """The local endpoint, its variants and the baseline, levels interleaved between them."""
    factories = [endpoint_server, baseline_server]
    if packaged_cascade_threshold(cfg.package) is not None:
        factories.insert(1, endpoint_server_without_cascade)  # what the cascade buys, same run
    if cfg.capture:
        shutil.rmtree(capture_dir(cfg), ignore_errors=True)
        factories.insert(1, endpoint_server_with_capture)  # what capture costs, same run
    return _interleaved(cfg, [factory(cfg) for factory in factories], bodies, "endpoint level")


def run_cloud_level(cfg: BenchConfig, bodies: list[bytes]) -> dict[str, Any]:
    """The archive as the template's endpoint serves it -- the DLC's model server, textclf's
    inference image, or both -- with the deploy function's container environment, beside the
    local endpoint, interleaved. Without the DLC virtualenv the DLC is left out, said in one line
    (``{"skipped": why}`` when nothing else was asked for)."""
    skipped = cloud.skip_reason(cfg.dlc_venv) if "dlc" in cfg.inference_servers else None
    wanted = [name for name in cfg.inference_servers if not (name == "dlc" and skipped)]
    if not wanted:
        return {"skipped": skipped}
    factories = {"dlc": cloud.dlc_server, "textclf": cloud.textclf_image_server}
    servers = [endpoint_server(cfg, cloud.LOCAL_SERVER), *(factories[name](cfg, HOST) for name in wanted)]

    def answering(server: ServerProcess) -> None:
        if server.name == cloud.DLC_SERVER:
            cloud.wait_answers(server, bodies[0])

    runs = _interleaved(cfg, servers, bodies, "cloud level", ready=answering)
    result = {"servers": cloud.settings_line(cfg, [cloud.CLOUD_SERVERS[n] for n in wanted]), "runs": runs}
    return result | ({"skipped": skipped} if skipped else {})


def _interleaved(
    cfg: BenchConfig,
    servers: list[ServerProcess],
    bodies: list[bytes],
    level: str,
    ready: Callable[[ServerProcess], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """All servers up at once (an idle server costs no CPU), levels interleaved between them.

    Interleaving (endpoint c=1, baseline c=1, endpoint c=8, ...) spreads any drift in background
    load over both servers instead of favouring whichever ran first.
    """
    records: list[dict[str, Any]] = []
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
            ready(server)
        for concurrency in cfg.concurrency:
            for server in servers:
                log.info("%s: %s at concurrency %d for %g s", level, server.name, concurrency, cfg.duration_s)
                run = _loaded_run(
                    server,
                    "/invocations",
                    bodies,
                    concurrency=concurrency,
                    duration_s=cfg.duration_s,
                    warmup_s=cfg.warmup_s,
                    max_requests=cfg.max_requests_per_level,
                    request_timeout_s=cfg.request_timeout_s,
                )
                records.append(run.record(server.name))
                log.info(
                    "  %.0f headlines/s, p99 %.1f ms, errors %s",
                    run.result.throughput_rps,
                    run.result.summary().p99_ms,
                    dict(run.result.errors) or 0,
                )
    finally:
        for server in servers:
            server.stop()
    return records


def run_api_level(cfg: BenchConfig, texts: Sequence[str]) -> list[dict[str, Any]]:
    bodies = invocation_bodies(texts, key="text")
    duration = cfg.api_duration_s or cfg.duration_s
    headers = {"x-api-key": BENCH_API_KEY}
    with api_stack(cfg) as server:
        # /health does not touch the predict path: its first call imports and builds what the
        # handler defers (schemas, the runtime client). Timed apart as the cold first call, so a
        # short run's window measures warm calls on a loaded machine too.
        first_call_ms = _first_call_ms(server.base_url + "/predict", bodies[0], headers, cfg)
        log.info("API level: first POST /predict %.0f ms (cold)", first_call_ms)
        log.info("API level: POST /predict at concurrency 1 for %g s", duration)
        run = _loaded_run(
            server,
            "/predict",
            bodies,
            concurrency=1,
            duration_s=duration,
            warmup_s=cfg.warmup_s,
            max_requests=cfg.max_requests_per_level,
            request_timeout_s=cfg.request_timeout_s,
            headers=headers,
        )
    record = run.record("api")
    record["path"] = "POST /predict (API -> Lambda handler -> boto3 -> endpoint)"
    record["first_call_ms"] = first_call_ms
    return [record]


def _first_call_ms(url: str, body: bytes, headers: Mapping[str, str], cfg: BenchConfig) -> float:
    request = urllib.request.Request(
        url, data=body, headers={"content-type": "application/json", **headers}, method="POST"
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=max(cfg.request_timeout_s, 60.0)) as reply:
            reply.read()
    except (OSError, urllib.error.HTTPError) as exc:
        raise UserError(f"the local API did not answer its first POST /predict: {exc}") from exc
    return 1000.0 * (time.perf_counter() - t0)


def run_soak(cfg: BenchConfig, bodies: list[bytes]) -> dict[str, Any]:
    with endpoint_server(cfg) as server:
        log.info("soak: endpoint at concurrency %d for %.0f s", cfg.soak_concurrency, cfg.soak_s)
        run = _loaded_run(
            server,
            "/invocations",
            bodies,
            concurrency=cfg.soak_concurrency,
            duration_s=cfg.soak_s,
            warmup_s=cfg.warmup_s,
            max_requests=10 * cfg.max_requests_per_level,
            request_timeout_s=cfg.request_timeout_s,
            rss_interval_s=1.0,
        )
    result, sampler = run.result, run.sampler
    series = [(round(t, 2), rss) for t, rss in sampler.samples]
    # Flatness is judged after warm-up: the first seconds include arena growth to steady state.
    steady = [(t, rss) for t, rss in series if t >= cfg.warmup_s + 0.1 * cfg.soak_s] or series
    slope_per_s = linear_slope([t for t, _ in steady], [rss / report.MB for _, rss in steady])
    return {
        "concurrency": cfg.soak_concurrency,
        "duration_s": cfg.soak_s,
        "throughput_rps": result.throughput_rps,
        "latency": result.summary().to_dict(),
        "errors": result.error_count,
        "error_kinds": result.errors,
        "rss_series": series,
        "rss_start_bytes": steady[0][1],
        "rss_end_bytes": steady[-1][1],
        "peak_rss_bytes": sampler.peak_bytes,
        "rss_slope_mb_per_min": 60.0 * slope_per_s,
        "per_second_ok": result.per_second_ok,
    }


# -- whole run -------------------------------------------------------------------------------


def check_inputs(cfg: BenchConfig) -> None:
    """Fail in one line, before minutes of work, when an input is missing."""
    if not cfg.data.exists():
        raise UserError(f"no test split at {cfg.data}: run `textclf data` first or pass --data")
    if ("model" in cfg.levels or "endpoint" in cfg.levels) and not (cfg.model_dir / "config.json").is_file():
        raise UserError(f"no trained model at {cfg.model_dir}: run `textclf train` first or pass --model")
    if "soak" in cfg.levels and cfg.soak_s <= 0:
        raise UserError("the soak level needs a duration: --soak SECONDS")
    if {"endpoint", "api", "soak", "cloud"} & set(cfg.levels) and not cfg.package.exists():
        raise UserError(
            f"no serving package at {cfg.package}: run `textclf package --runtime onnx-int8` first "
            "or pass --package"
        )


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the levels ``cfg`` asks for and write ``bench.json``, plots and ``bench.txt``."""
    say = progress or (lambda msg: log.info("%s", msg))
    check_inputs(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": describe_machine(),
        "config": cfg.to_dict(),
    }
    needed = max(cfg.headlines, cfg.single_calls, 32 * cfg.batch_calls)
    limit = (
        0
        if ("model" in cfg.levels and cfg.accuracy_sample is None)
        else max(needed, cfg.accuracy_sample or 0)
    )
    texts, labels = load_headlines(cfg.data, limit, cfg.seed)
    say(f"{len(texts):,} test headlines loaded from {cfg.data}")
    load_texts = texts[: cfg.headlines]
    bodies = invocation_bodies(load_texts)

    if "model" in cfg.levels:
        say("model level: pipeline, torch, onnx-fp32, onnx-int8 in one process")
        results["model"] = run_model_level(cfg, texts, labels)
    if "endpoint" in cfg.levels:
        say(f"endpoint level: concurrency {cfg.concurrency}, {cfg.duration_s:g} s each, endpoint vs baseline")
        results["endpoint_level"] = run_endpoint_level(cfg, bodies)
        if cfg.capture:
            results["capture"] = captured(cfg)
    if "cloud" in cfg.levels:
        servers = " and ".join(cfg.inference_servers)
        say(f"cloud level: {servers} vs the local endpoint, concurrency {cfg.concurrency}")
        results["cloud_level"] = run_cloud_level(cfg, bodies)
        if "skipped" in results["cloud_level"]:
            say(f"cloud level skipped: {results['cloud_level']['skipped']}")
    if "api" in cfg.levels:
        say("API level: textclf serve, POST /predict at concurrency 1")
        results["api_level"] = run_api_level(cfg, load_texts)
    if "soak" in cfg.levels:
        say(f"soak: {cfg.soak_s:.0f} s at concurrency {cfg.soak_concurrency}")
        results["soak"] = run_soak(cfg, bodies)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with contextlib.suppress(OSError):
        results["machine"]["loadavg_at_end"] = list(os.getloadavg())
    results["targets"] = report.check_targets(results)

    plots = write_plots(results, cfg.out)
    results["plots"] = [p.name for p in plots]
    report.write_json(results, cfg.out / "bench.json")
    if cfg.docs_img is not None:
        cfg.docs_img.mkdir(parents=True, exist_ok=True)
        for plot in plots:
            shutil.copy2(plot, cfg.docs_img / f"bench_{plot.name}")
    text = report.render_table(results)
    (cfg.out / "bench.txt").write_text(text, encoding="utf-8")
    (cfg.out / "bench.md").write_text(report.render_table(results, markdown=True), encoding="utf-8")
    return results
