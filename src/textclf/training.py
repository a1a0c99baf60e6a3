"""``textclf train``: run ``model/train.py`` locally exactly as SageMaker would run it.

The script gets its hyperparameters as flags and its folders through the ``SM_*`` variables,
so the laptop run exercises the same contract as the cloud job. Output is staged in
``<out>.partial/`` (model, output data, checkpoints) and moved to ``<out>`` only when the run
succeeded: an interrupted run never leaves a half-written model behind, and the next run
resumes from its checkpoint. A finished model is reused when the data manifest, the
hyperparameters and ``train.py`` itself are unchanged (``--force`` retrains).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from textclf_api import hyperparameters as hp

from textclf import config
from textclf.bundle import build_source_bundle, shipped_model_files
from textclf.errors import UserError
from textclf.hashing import sha256_file

log = logging.getLogger(__name__)

#: Written beside the model: what produced it, for the reuse check.
RUN_RECORD = "train_run.json"

# Local CPU defaults: hyperparameters.py's ``local`` profile (measured on a 2-core machine,
# docs/results.md: data loading, training and validation within 15 minutes), else the job's.
DEFAULT_EPOCHS: float = hp.local_default("epochs")
DEFAULT_MAX_TRAIN_SAMPLES: int = hp.local_default("max_train_samples")
DEFAULT_MAX_EVAL_SAMPLES: int = hp.local_default("max_eval_samples")
DEFAULT_BATCH_SIZE: int = hp.local_default("batch_size")
DEFAULT_LEARNING_RATE: float = hp.local_default("learning_rate")
DEFAULT_SEED: int = hp.local_default("seed")
DEFAULT_WARMUP_RATIO: float = hp.local_default("warmup_ratio")
DEFAULT_WEIGHT_DECAY: float = hp.local_default("weight_decay")
DEFAULT_FREEZE_LAYERS: int = hp.local_default("freeze_layers")
DEFAULT_EVALS_PER_EPOCH: int = hp.local_default("evals_per_epoch")
#: Used when there is no EDA report: headlines are short (p99.5 is about 27 MiniLM tokens).
DEFAULT_MAX_LENGTH: int = hp.local_default("max_length")
#: ``--truncation``'s choices (model/truncation.py's modes, as hyperparameters.py lists them).
TRUNCATION_MODES: tuple[str, ...] = hp.BY_NAME["truncation"].choices or ()


@dataclass(frozen=True)
class TrainSettings:
    """Everything ``train.py`` is told; each field but ``num_threads`` changes the model."""

    base_model: str
    epochs: float = DEFAULT_EPOCHS
    max_train_samples: int = DEFAULT_MAX_TRAIN_SAMPLES
    max_eval_samples: int = DEFAULT_MAX_EVAL_SAMPLES
    max_length: int = DEFAULT_MAX_LENGTH
    truncation: str = hp.local_default("truncation")
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE
    seed: int = DEFAULT_SEED
    warmup_ratio: float = DEFAULT_WARMUP_RATIO
    weight_decay: float = DEFAULT_WEIGHT_DECAY
    freeze_layers: int = DEFAULT_FREEZE_LAYERS
    evals_per_epoch: int = DEFAULT_EVALS_PER_EPOCH
    lexical_head: int = hp.local_default("lexical_head")
    # The plain model folder: `textclf evaluate` and `textclf package` take it from here locally.
    # A SageMaker job (train.py's default, auto) writes the finished serving archive instead.
    serving_runtime: str = hp.local_default("serving_runtime")
    num_threads: int = hp.local_default("num_threads")
    #: Data-parallel processes (torchrun + gloo): ``batch_size`` rows each per step.
    processes: int = 1

    def __post_init__(self) -> None:
        # The bounds train.py enforces, checked before a subprocess is started for nothing.
        # (The CLI spells the flags with dashes.)
        problems = hp.problems(self.flags())
        if problems:
            raise UserError("; ".join(line.replace("_", "-") for line in problems))

    def flags(self) -> dict[str, Any]:
        # The process count is the launcher's business (torchrun), not a flag of train.py.
        return {k: v for k, v in asdict(self).items() if k != "processes"}

    def hyperparameters(self) -> dict[str, str]:
        """SageMaker-style hyperparameters: every value a string, names as ``train.py`` flags."""
        return {k: str(v) for k, v in self.flags().items()}

    def identity(self) -> dict[str, str]:
        # Thread count changes speed, not the model: a re-run on another machine reuses it. The
        # process count changes the effective batch, so the model.
        kept = {k: v for k, v in self.hyperparameters().items() if k != "num_threads"}
        return kept | ({"processes": str(self.processes)} if self.processes > 1 else {})


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    reused: bool
    metrics: dict[str, Any]
    wall_time_s: float


def default_max_train_samples(max_length: int) -> int:
    """The local default sample for ``max_length``: all of the CPU profile's rows for headlines,
    fewer for longer texts so that training keeps to about the same CPU time.

    A row's cost on a CPU grows faster than its length (attention, and the activations no longer
    fit in cache): 256-token documents trained at 4.3 rows/s on 2 cores where 32-token headlines
    train at about 100 rows/s (docs/results.md, "Your own data"), so the sample shrinks as
    ``(32 / L) ** 1.5``.
    """
    if max_length <= DEFAULT_MAX_LENGTH:
        return DEFAULT_MAX_TRAIN_SAMPLES
    scaled = DEFAULT_MAX_TRAIN_SAMPLES * (DEFAULT_MAX_LENGTH / max_length) ** 1.5
    return max(1_000, int(round(scaled, -2)))


def default_max_length(eda_json: Path | None = None) -> int:
    """``max_length`` chosen by ``textclf eda`` (covers >= 99.5% of headlines), else a fixed default."""
    path = eda_json if eda_json is not None else config.artifacts_dir() / "eda" / "eda.json"
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["max_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_LENGTH
    return int(value) if isinstance(value, int) and value >= 8 else DEFAULT_MAX_LENGTH


def default_base_model() -> str:
    return str(config.local_base_model())


def default_num_threads() -> int:
    """All cores this process may use (training keeps every logical core busy)."""
    from textclf.threads import available_cores

    return available_cores()


def train_script() -> Path:
    return config.model_code_dir() / "train.py"


def check_data(data: Path) -> Path:
    """The processed dataset (``textclf data`` output) with train and validation channels."""
    if not (data / "manifest.json").is_file():
        raise UserError(f"{data} is not a processed dataset (no manifest.json): run `textclf data` first")
    for split in ("train", "validation"):
        channel = data / split
        if not any(channel.glob("*.parquet")):
            raise UserError(f"{channel}: no parquet file; run `textclf data` again")
        if not (channel / "labels.json").is_file():
            raise UserError(f"{channel}: no labels.json; run `textclf data` again")
    return data


def run_record(data: Path, settings: TrainSettings, script: Path) -> dict[str, Any]:
    return {
        "data_manifest_sha256": sha256_file(data / "manifest.json"),
        # Every file that ships with train.py: a change to any of them retrains.
        "model_code_sha256": {name: sha256_file(script.with_name(name)) for name in shipped_model_files()},
        "hyperparameters": settings.identity(),
    }


def reusable(out: Path, record: dict[str, Any]) -> bool:
    """True when ``out`` holds a complete model trained from the same inputs."""
    try:
        previous = json.loads((out / RUN_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    complete = all((out / name).is_file() for name in ("config.json", "textclf_meta.json", "metrics.json"))
    same = {k: previous.get(k) for k in record} == record
    return complete and same


def launcher(processes: int) -> list[str]:
    """What starts ``train.py``: python, or torchrun with ``processes`` on this one host -- what
    the SageMaker training toolkit runs when a job has ``sagemaker_torch_distributed_enabled``."""
    if processes <= 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]


def command(settings: TrainSettings, script: Path) -> list[str]:
    cmd = [*launcher(settings.processes), str(script)]
    for name, value in settings.hyperparameters().items():
        cmd += [f"--{name}", value]
    return cmd


def environment(data: Path, staging: Path) -> dict[str, str]:
    """The SageMaker training-container variables ``train.py`` reads, pointing at local folders."""
    env = dict(os.environ)
    env.update(
        {
            "SM_MODEL_DIR": str(staging / "model"),
            "SM_CHANNEL_TRAIN": str(data / "train"),
            "SM_CHANNEL_VALIDATION": str(data / "validation"),
            "SM_OUTPUT_DATA_DIR": str(staging / "output"),
            # Tokenisation happens once up front; the Rust pool would only compete for cores.
            "TOKENIZERS_PARALLELISM": "false",
            # OpenMP threads that spin while waiting collapse when another process shares the
            # cores: measured 9 vs 62 headlines/s with 2 threads on a busy 2-core machine.
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        }
    )
    return env


def run_training(data: Path, out: Path, settings: TrainSettings, *, force: bool = False) -> TrainResult:
    """Train (or reuse) a model in ``out``; raises ``UserError`` for bad inputs or a failed run."""
    script = train_script()
    if not script.is_file():
        raise UserError(f"training script not found: {script}")
    check_data(data)
    record = run_record(data, settings, script)
    if not force and reusable(out, record):
        log.info("reusing %s: same data, hyperparameters and train.py (--force retrains)", out)
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        return TrainResult(model_dir=out, reused=True, metrics=metrics, wall_time_s=0.0)

    staging = out.with_name(out.name + ".partial")
    if force and staging.exists():
        shutil.rmtree(staging)  # --force also means: do not resume an old checkpoint
    cmd = [*command(settings, script), "--checkpoint_dir", str(staging / "checkpoints")]
    log.info("running %s", " ".join(cmd))
    started = time.time()
    # stdout/stderr are inherited: the progress bar and METRIC lines stream to the terminal.
    proc = subprocess.run(cmd, env=environment(data, staging), check=False)
    wall = time.time() - started
    if proc.returncode != 0:
        raise UserError(
            f"train.py failed with exit code {proc.returncode}; "
            f"re-running resumes from {staging / 'checkpoints'}"
        )
    model_dir = staging / "model"
    (model_dir / RUN_RECORD).write_text(
        json.dumps({**record, "wall_time_s": round(wall, 1), "command": cmd}, indent=2) + "\n",
        encoding="utf-8",
    )
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model_dir.rename(out)
    shutil.rmtree(staging, ignore_errors=True)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return TrainResult(model_dir=out, reused=False, metrics=metrics, wall_time_s=wall)


def summary(result: TrainResult) -> str:
    m = result.metrics
    acc, f1 = m.get("validation_accuracy"), m.get("validation_macro_f1")
    parts = [f"model: {result.model_dir}" + (" (reused)" if result.reused else "")]
    if isinstance(acc, float) and isinstance(f1, float):
        parts.append(f"validation accuracy {acc:.4f}, macro-F1 {f1:.4f}")
    if not result.reused:
        parts.append(f"wall time {result.wall_time_s / 60:.1f} min")
    return "; ".join(parts)


def source_bundle_key(s3_uri: str) -> tuple[str, str]:
    """``(bucket, key)``: a ``.tar.gz`` URI names the object, anything else is a prefix."""
    if not s3_uri.startswith("s3://") or not s3_uri[5:].split("/", 1)[0]:
        raise UserError(f"--s3-uri must look like s3://bucket/prefix/, got {s3_uri!r}")
    bucket, _, key = s3_uri[5:].partition("/")
    if not key.endswith(".tar.gz"):
        key = "/".join(p for p in (key.strip("/"), "sourcedir.tar.gz") if p)
    return bucket, key


def upload_source_bundle(s3_uri: str, *, client: Any = None, workdir: Path | None = None) -> str:
    """Build the bundle and upload it; returns the ``s3://`` URI written."""
    import tempfile

    import boto3
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = source_bundle_key(s3_uri)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        bundle = build_source_bundle(Path(tmp) / "sourcedir.tar.gz")
        s3 = client if client is not None else boto3.client("s3")
        try:
            s3.upload_file(str(bundle), bucket, key)
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise UserError(f"upload to s3://{bucket}/{key} failed: {exc}") from exc
    return f"s3://{bucket}/{key}"
