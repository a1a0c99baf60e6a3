"""``textclf bench``: serving benchmark (model, endpoint and API level) against the usual baseline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from textclf.errors import UserError

#: What ``--quick`` changes: seconds instead of minutes, for smoke runs and CI.
QUICK: dict[str, Any] = {
    "duration": 3.0,
    "warmup": 1.0,
    "concurrency": "1,8",
    "single_calls": 100,
    "batch_calls": 5,
    "accuracy_sample": 500,
    "headlines": 1000,
}


def _concurrency(value: str) -> list[int]:
    try:
        levels = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from exc
    if not levels or any(c < 1 or c > 1024 for c in levels):
        raise argparse.ArgumentTypeError("concurrency levels must be 1..1024")
    return levels


def _levels(value: str) -> tuple[str, ...]:
    from textclf.bench.runner import ALL_LEVELS

    levels = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in levels if v not in ALL_LEVELS]
    if unknown or not levels:
        raise argparse.ArgumentTypeError(f"levels are {', '.join(ALL_LEVELS)}; got {value!r}")
    return levels


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="serving benchmark: model runtimes, endpoint vs a pipeline baseline server, API path",
        description="Measure single-headline latency and batch throughput per runtime (torch, HF "
        "pipeline, ONNX fp32/int8) and int8 accuracy; closed-loop HTTP load against the local "
        "endpoint and a baseline FastAPI+pipeline server at several concurrency levels; and the "
        "full local API path. Writes a table to stdout, bench.json and PNG plots.",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="trained model folder (default <artifacts>/model)"
    )
    parser.add_argument(
        "--package",
        type=Path,
        default=None,
        help="serving archive the endpoint runs (default <artifacts>/package/model.tar.gz)",
    )
    parser.add_argument("--data", type=Path, default=None, help="test split (default <artifacts>/data/test)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default <artifacts>/bench)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per load level (default 30)")
    parser.add_argument(
        "--warmup", type=float, default=None, help="unmeasured seconds before each level (default 3)"
    )
    parser.add_argument(
        "--concurrency", type=_concurrency, default=None, help="closed-loop client counts (default 1,8,32,64)"
    )
    parser.add_argument(
        "--levels",
        type=_levels,
        default=None,
        help="levels to run, from model,endpoint,api,cloud,soak (default model,endpoint,api; soak "
        "also runs when --soak is given; cloud serves the archive as the deployed endpoint does: "
        "textclf's inference image by default, see --inference-server)",
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="soak: run the endpoint at concurrency 64 this long and record its RSS over time "
        "(default 300 when --levels names soak)",
    )
    parser.add_argument(
        "--accuracy-sample",
        type=int,
        default=None,
        help="test headlines for int8-vs-fp32 accuracy (default: the full split)",
    )
    parser.add_argument(
        "--single-calls", type=int, default=None, help="single-headline calls per runtime (default 1000)"
    )
    parser.add_argument(
        "--batch-calls", type=int, default=None, help="batch-32 calls per runtime (default 30)"
    )
    parser.add_argument(
        "--onnx-fp32", type=Path, default=None, help="ONNX fp32 model folder (default: exported into --out)"
    )
    parser.add_argument(
        "--onnx-int8", type=Path, default=None, help="ONNX int8 model folder (default: exported into --out)"
    )
    parser.add_argument(
        "--docs-img",
        type=Path,
        default=None,
        help="also copy the PNGs here, e.g. docs/img (default: only in --out)",
    )
    parser.add_argument(
        "--instance-type",
        default=None,
        help="instance type the cost line prices throughput on (default: the deploy default)",
    )
    parser.add_argument(
        "--price-per-hour",
        type=float,
        default=None,
        help="USD per instance-hour for the cost line (default: textclf.bench.prices)",
    )
    parser.add_argument(
        "--capture",
        action="store_true",
        help="endpoint level: also run the endpoint with data capture of every invocation (to "
        "<out>/capture) beside the plain one, and report the throughput ratio",
    )
    parser.add_argument(
        "--dlc-venv",
        type=Path,
        default=None,
        help="cloud level: virtualenv with the DLC's model server (default .venv-dlc; make dlc-venv)",
    )
    parser.add_argument(
        "--inference-server",
        choices=("dlc", "textclf", "both"),
        default=None,
        help="cloud level: the server the endpoint runs, as the template's InferenceServer: textclf "
        "(textclf's inference image's entrypoint, the template's default), dlc (the HF DLC's model "
        "server: serverless endpoints and the fallback; needs make dlc-venv) or both (default: the "
        "template's InferenceServer default)",
    )
    parser.add_argument(
        "--dlc-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="cloud level: a container variable on top of the deploy function's, e.g. "
        "SAGEMAKER_MODEL_SERVER_WORKERS=1, TEXTCLF_NUM_THREADS=2, MMS_JOB_QUEUE_SIZE=1000 (repeatable; "
        "default: none)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="seconds, not minutes: a smoke run (figures not meaningful)"
    )
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """A ``BenchConfig`` from the flags (explicit flags win over ``--quick``)."""
    from textclf_api.settings import DEFAULT_INFERENCE_SERVER

    from textclf import config
    from textclf.bench.cloud import DEFAULT_DLC_VENV, parse_env_overrides
    from textclf.bench.runner import DEFAULT_SOAK_S, LEVELS, BenchConfig

    art = config.artifacts_dir()

    def pick(name: str, default: Any) -> Any:
        value = getattr(args, name)
        if value is not None:
            return value
        return QUICK[name] if args.quick and name in QUICK else default

    concurrency = args.concurrency or (
        _concurrency(str(QUICK["concurrency"])) if args.quick else [1, 8, 32, 64]
    )
    duration = float(pick("duration", 30.0))
    if duration <= 0 or float(pick("warmup", 3.0)) < 0:
        raise UserError("--duration must be > 0 and --warmup >= 0")
    if args.soak < 0:
        raise UserError("--soak must be >= 0 seconds")
    levels = tuple(args.levels or LEVELS)
    soak_s = float(args.soak)
    if soak_s > 0 and "soak" not in levels:
        levels = (*levels, "soak")
    elif "soak" in levels and soak_s == 0:
        soak_s = DEFAULT_SOAK_S
    sample = pick("accuracy_sample", None)
    if sample is not None and sample < 1:
        raise UserError("--accuracy-sample must be >= 1")
    out = (args.out or art / "bench").resolve()
    onnx_dirs = {
        k: v for k, v in (("onnx-fp32", args.onnx_fp32), ("onnx-int8", args.onnx_int8)) if v is not None
    }
    from textclf.deploy import DEFAULT_INSTANCE_TYPE

    if args.price_per_hour is not None and args.price_per_hour <= 0:
        raise UserError("--price-per-hour must be > 0")
    return BenchConfig(
        model_dir=(args.model or art / "model").resolve(),
        package=(args.package or art / "package" / "model.tar.gz").resolve(),
        data=(args.data or art / "data" / "test").resolve(),
        out=out,
        duration_s=duration,
        warmup_s=float(pick("warmup", 3.0)),
        concurrency=concurrency,
        levels=levels,
        soak_s=soak_s,
        single_calls=int(pick("single_calls", 1000)),
        batch_calls=int(pick("batch_calls", 30)),
        accuracy_sample=sample,
        headlines=int(QUICK["headlines"]) if args.quick else 5000,
        # Quick runs are smoke runs: their figures must never replace the documented ones.
        docs_img=args.docs_img.resolve() if args.docs_img and not args.quick else None,
        onnx_dirs=onnx_dirs,
        instance_type=args.instance_type or DEFAULT_INSTANCE_TYPE,
        price_per_hour=args.price_per_hour,
        capture=args.capture,
        dlc_venv=(args.dlc_venv or DEFAULT_DLC_VENV).resolve(),
        dlc_env=parse_env_overrides(args.dlc_env),
        inference_servers=(
            ("dlc", "textclf")
            if args.inference_server == "both"
            else (args.inference_server or DEFAULT_INFERENCE_SERVER,)
        ),
    )


def run(args: argparse.Namespace) -> int:
    from textclf.bench.runner import run_bench

    cfg = config_from_args(args)
    results = run_bench(cfg, progress=lambda msg: print(f"bench: {msg}", flush=True))
    print()
    print((cfg.out / "bench.txt").read_text(encoding="utf-8"), end="")
    written = ["bench.json", "bench.txt", "bench.md", *results.get("plots", [])]
    print(f"\nwrote {', '.join(written)} in {cfg.out}")
    return 0
