"""``model/train.py`` under torchrun: data-parallel training with gloo on this CPU, for real.

The SageMaker training toolkit starts the script with ``torchrun`` when the job has
``sagemaker_torch_distributed_enabled``; these tests start it the same way with two processes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from textclf import config, training

METRIC_RE = re.compile(r"^METRIC (\w+)=([0-9.eE+-]+)$", re.MULTILINE)


def torchrun(processes: int, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node=N train.py ...`` (the toolkit's command on one host)."""
    return subprocess.run(
        [*training.launcher(processes), str(config.model_code_dir() / "train.py"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def job_env(data: Path, out: Path) -> dict[str, str]:
    return {
        "SM_MODEL_DIR": str(out / "model"),
        "SM_CHANNEL_TRAIN": str(data / "train"),
        "SM_CHANNEL_VALIDATION": str(data / "validation"),
        "SM_OUTPUT_DATA_DIR": str(out / "output"),
    }


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_shards_are_disjoint_equal_and_cover_the_epoch(train_module: ModuleType, world_size: int) -> None:
    """The Trainer's sharding as train.py sets it up (the length-grouped order, whole rounds of full
    batches under DDP): accelerate's BatchSamplerShard over the epoch's batches, one per rank."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    lengths = np.random.default_rng(0).integers(5, 30, size=1_003).tolist()
    sampler = train_module.fine_tune.EpochSeededLengthSampler(16, lengths, 7, world_size)
    batches = BatchSampler(sampler, 16, drop_last=False)
    # One process: accelerate leaves the batches as they are; more: one BatchSamplerShard per rank.
    shards = (
        [list(batches)]
        if world_size == 1
        else [list(BatchSamplerShard(batches, world_size, r)) for r in range(world_size)]
    )
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    assert len(shards[0]) == train_module.fine_tune.steps_per_epoch(len(lengths), 16, world_size)
    rows = [np.concatenate(s) for s in shards]
    together = np.concatenate(rows)
    assert len(np.unique(together)) == len(together)  # no row on two ranks
    # At most the partial batch and the batches that do not fill a round are left out.
    assert len(together) >= len(lengths) - 16 * world_size


@pytest.mark.heavy
def test_torchrun_two_processes_train_one_archive(
    train_module: ModuleType, tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    args = ["--base_model", str(tiny_model), "--epochs", "2", "--batch_size", "16", "--max_length", "24"]
    args += [
        "--learning_rate",
        "1e-3",
        "--serving_runtime",
        "torch",
        "--checkpoint_dir",
        str(tmp_path / "ckpt"),
    ]
    proc = torchrun(2, args, job_env(tiny_data, tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # Rank 0 alone prints the metrics: one line per evaluation, not one per rank.
    printed = METRIC_RE.findall(proc.stdout)
    assert [float(v) for name, v in printed if name == "epoch"] == [1.0, 2.0]
    assert [name for name, _ in printed].count("blend_accuracy") == 1

    model_dir = tmp_path / "model"
    meta = json.loads((model_dir / "textclf_meta.json").read_text())
    report = json.loads((model_dir / "metrics.json").read_text())
    dist = report["distributed"]
    assert meta["distributed"] == {
        k: dist[k] for k in ("world_size", "effective_batch_size", "rows_per_rank")
    }
    assert dist["world_size"] == 2 and dist["backend"] == "gloo" and dist["effective_batch_size"] == 32
    # Both ranks trained, on disjoint rows: half an epoch's batches each, every epoch.
    n_train = report["train_samples"]
    steps = dist["steps_per_epoch"]
    assert steps == n_train // 16 // 2 and report["steps"] == 2 * steps  # full batches, same count per rank
    assert dist["rows_per_rank"][0] > 0 and dist["rows_per_rank"][1] > 0
    assert sum(dist["rows_per_rank"]) <= 2 * n_train
    assert sum(dist["rows_per_rank"]) > 2 * (n_train - 2 * 16)  # only the batches that fill no round are left
    assert dist["rows_trained_by_two_ranks_in_one_epoch"] == 0
    # One archive, written once: the serving layout, the lexical head fitted once on rank 0.
    assert (model_dir / "code" / "inference.py").is_file() and meta["runtime"] == "torch"
    assert meta["lexical_head"]["train_rows"] == n_train
    assert (tmp_path / "output" / "metrics.json").is_file()
    last = f"checkpoint-{2 * steps}"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        last,
        train_module.fine_tune.FINGERPRINT_FILE,
    ]

    # A restarted job (spot): every rank resumes from rank 0's checkpoint at the last step and
    # the archive it writes holds the same weights.
    first = load_file(model_dir / "model.safetensors")
    again = torchrun(2, args, job_env(tiny_data, tmp_path / "again"))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"resumed from {tmp_path / 'ckpt' / last} at step {2 * steps}" in again.stdout
    second = load_file(tmp_path / "again" / "model" / "model.safetensors")
    for key, tensor in first.items():
        torch.testing.assert_close(second[key], tensor, msg=key)
