"""``make replay``: the whole proof in one command, on a fresh artifacts folder.

The initial data (rows before --start, split by time with stories whole); a model trained on
them with a small CPU budget and packaged, which the local stack starts serving; the initial
model, trained again through the stack's POST /train with the same budget (so it is registered,
gated and deployed like every retrain after it, and is their first champion); the replay; the
report; the stack stopped.
Each step runs the user's own command as a child process (``textclf.demo``'s way).

The budget (:data:`BUDGET`) keeps the initial training run within about 2.5 minutes on 2 busy
cores (8,000 rows of one epoch with the lower layers frozen: 2.4 min measured, validation
accuracy 0.885 on the newest March stories); each retrain (:data:`RETRAIN_REQUEST`) continues
from the serving model's weights (train.py's warm start) on half as many of March's rows plus
every label posted so far, about a minute, so five months and four retrains fit in 40 minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from textclf import config
from textclf.demo import _stop, start_serve
from textclf.errors import UserError

#: train.py hyperparameters of the initial model and of every retrain (``textclf serve
#: --train-default``): one budget, so the served models differ in their data only.
BUDGET: dict[str, object] = {
    "epochs": 1,
    "max_train_samples": 8000,
    "max_eval_samples": 1000,
    "evals_per_epoch": 1,
    "learning_rate": 2e-4,
    "freeze_layers": 3,
    "max_length": 32,
}
#: The bootstrap archive the stack starts with is replaced by the initial model at once: it only
#: needs to load, so its transformer sees a few hundred rows.
BOOTSTRAP_ROWS = 256
#: The stack's RetrainRequest: a warm start needs fewer of the parent's rows (the champion has
#: learnt them) and a gentler step; the feedback rows are all kept whatever the sample.
RETRAIN_REQUEST: dict[str, object] = {"max_train_samples": 4000, "learning_rate": 1e-4}
#: FeedbackDailyCap counts per UTC day, and the replay posts five months of labels (about 5,000
#: per labeller) within the hour: the default cap (5,000) would refuse August's with 429.
FEEDBACK_DAILY_CAP = 50_000
#: With a poisoning labeller, the honest one (the stack's first labeller key, ``local-`` and the
#: template's LabellerApiKey) is the gate's TrustedLabellers; checked against the running stack.
HONEST_LABELLER = "local-LabellerApiKey"
#: Retrains serve the plain torch model, as the initial package does: no ONNX export in the job.
RETRAIN_RUNTIME = "torch"
#: The initial model's POST /train, training and rollout together (a retrain's budget).
INITIAL_MODEL_TIMEOUT_S = 1800.0
#: How often the monitor runs during the replay (template parameter MonitorSchedule).
MONITOR_RATE = "rate(1 minute)"
#: The labels alarm's threshold (RetrainAfterLabels): a month's feedback (4,000 x 0.25 = 1,000
#: labels) with room for requests that failed, so each full month can start a retrain.
RETRAIN_AFTER_LABELS = 800


def _step(args: list[str]) -> None:
    print(f"\n==> textclf {' '.join(args)}", flush=True)
    started = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "textclf", *args])
    if code != 0:
        raise UserError(f"`textclf {args[0]}` failed (exit {code}); see its message above")
    print(f"    ({time.perf_counter() - started:.0f} s)", flush=True)


def _parameters(poison: bool) -> list[str]:
    """MonitorSchedule at :data:`MONITOR_RATE` when the template has the monitor (else none)."""
    from textclf.local import template as tpl

    parameters = tpl.load_template(config.REPO_ROOT / "template.yaml").get("Parameters") or {}
    if "MonitorSchedule" not in parameters:
        print("note: template.yaml has no MonitorSchedule: the stack runs without a monitor", flush=True)
        return []
    return [
        "--parameter-overrides",
        f"MonitorSchedule={MONITOR_RATE}",
        f"RetrainAfterLabels={RETRAIN_AFTER_LABELS}",
        f"RetrainRequest={json.dumps(RETRAIN_REQUEST, separators=(',', ':'))}",
        f"FeedbackDailyCap={FEEDBACK_DAILY_CAP}",
        *([f"TrustedLabellers={HONEST_LABELLER}"] if poison else []),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m textclf.replay.proof", description=__doc__)
    parser.add_argument("--data", required=True, help="the UCI zip or newsCorpora.csv")
    parser.add_argument("--start", default="2014-04-01")
    parser.add_argument("--end", default="2014-09-01")
    parser.add_argument("--rows-per-window", default="4000")
    parser.add_argument("--feedback-rate", default="0.25")
    parser.add_argument("--poison-rate", default="")
    parser.add_argument("--poison-windows", default="")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--endpoint-port", type=int, default=8080)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:
        print(f"make replay: error: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    art = config.artifacts_dir()
    if not Path(args.data).is_file():
        raise UserError(f"DATA={args.data}: no such file (the UCI .zip or newsCorpora.csv)")
    started = time.perf_counter()
    shutil.rmtree(art, ignore_errors=True)  # a fresh artifacts folder: nothing reused
    _step(["data", "--source", args.data, "--until", args.start, "--time-column", "TIMESTAMP"])
    # The local stack starts serving an archive (its endpoint is in-process); this one only
    # bootstraps it: the replay's initial model is the registered one trained next.
    bootstrap = {**BUDGET, "max_train_samples": BOOTSTRAP_ROWS}
    _step(["train", *(x for name, v in bootstrap.items() for x in (f"--{name.replace('_', '-')}", str(v)))])
    _step(["package", "--runtime", RETRAIN_RUNTIME])
    serve = [
        "--port",
        str(args.port),
        "--endpoint-port",
        str(args.endpoint_port),
        "--fresh",
        "--labellers",
        "2",
    ]
    for name, value in {**BUDGET, "serving_runtime": RETRAIN_RUNTIME}.items():
        serve += ["--train-default", f"{name}={value}"]
    serve += _parameters(poison=bool(args.poison_rate))
    proc = start_serve(serve, art / "replay" / "serve.log", args.port)
    try:
        if args.poison_rate:
            _check_honest_labeller()
        # The initial model is trained through POST /train like every later one, so it is in the
        # registry (the gate's champion, the retrains' parent): retraining skips a hand-deployed
        # archive, which no registry version describes.
        initial = art / "replay" / "initial-model.tar.gz"
        _initial_model(initial)
        replay = [
            "replay",
            "--model",
            str(initial),
            "--data",
            args.data,
            "--start",
            args.start,
            "--end",
            args.end,
            "--window",
            "month",
        ]
        replay += [
            "--rows-per-window",
            args.rows_per_window,
            "--feedback-rate",
            args.feedback_rate,
            "--oracle",
        ]
        if args.poison_rate:
            replay += ["--poison-rate", args.poison_rate, "--poison-windows", args.poison_windows]
        _step(replay)
    finally:
        print(f"local stack stopped (exit {_stop(proc)})", flush=True)
    print(f"make replay: {(time.perf_counter() - started) / 60:.1f} min; report in {art / 'replay'}")
    return 0


def _check_honest_labeller() -> None:
    from textclf.local.stack import state_file

    state = json.loads(state_file().read_text(encoding="utf-8"))
    first = next(iter(json.loads(state.get("labeller_keys") or "{}")), None)
    if first != HONEST_LABELLER:
        raise UserError(f"the stack's first labeller is {first!r}, not {HONEST_LABELLER!r}: TrustedLabellers")


def _initial_model(dest: Path, timeout_s: float = INITIAL_MODEL_TIMEOUT_S) -> None:
    """POST /train on the running stack, wait until its model serves, and keep its archive at
    ``dest`` (the replay's frozen model)."""
    from textclf.local.stack import state_file
    from textclf.replay.client import local_access
    from textclf.serving import local_session

    print("\n==> POST /train (the initial model, through the stack)", flush=True)
    started = time.perf_counter()
    state = json.loads(state_file().read_text(encoding="utf-8"))
    access = local_access(state)
    with httpx.Client(base_url=access.api_url, timeout=60, trust_env=False) as http:
        answer = http.post("/train", json={}, headers={"Idempotency-Key": "replay-initial-model"})
        if answer.status_code != 202:
            raise UserError(f"POST /train answered {answer.status_code}: {answer.text[:300]}")
        job = answer.json()["training_job_name"]
        deadline = time.monotonic() + timeout_s
        while True:
            status = http.get(f"/train/{job}").json()
            deployment = status.get("deployment") or {}
            if deployment.get("status") == "deployed":
                break
            if status.get("status") in ("Failed", "Stopped") or deployment.get("status") in (
                "rejected",
                "failed",
            ):
                raise UserError(f"the initial model did not deploy: {status}")
            if time.monotonic() > deadline:
                raise UserError(f"the initial model did not deploy within {timeout_s:.0f} s: {status}")
            time.sleep(10)
    bucket, _, key = str(status["model_artifact_uri"]).removeprefix("s3://").partition("/")
    s3 = local_session(access.region).client("s3", endpoint_url=access.control_plane_url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, key, str(dest))
    version = deployment.get("model_version")
    print(f"    job {job}: version {version} serves ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
