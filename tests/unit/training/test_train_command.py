"""``textclf train``: runs train.py with SM_* folders, reuses identical runs, reports user errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers.tiny_model import weight_distance, without_dropout
from textclf import training
from textclf.cli import main

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

FAST = ["--max-train-samples", "120", "--max-eval-samples", "40", "--batch-size", "16", "--max-length", "24"]
FAST += ["--learning-rate", "1e-3", "--threads", "1"]


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[training.TrainSettings]:
    """The settings each `textclf train` hands run_training, which only records them."""
    recorded: list[training.TrainSettings] = []

    def record(data: Path, out: Path, settings: training.TrainSettings, **_: object) -> training.TrainResult:
        recorded.append(settings)
        return training.TrainResult(model_dir=out, reused=True, metrics={}, wall_time_s=0.0)

    monkeypatch.setattr(training, "run_training", record)
    return recorded


def test_train_reuse_and_force(
    tiny_model: Path, tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # capfd, not capsys: train.py is a subprocess writing straight to the inherited stdout.
    capsys = capfd
    out = tmp_path / "model"
    argv = [
        "train",
        "--data",
        str(tiny_data),
        "--out",
        str(out),
        "--base-model",
        str(tiny_model),
        "--epochs",
        "1",
    ]
    assert main([*argv, *FAST]) == 0
    first = capsys.readouterr().out
    assert "METRIC validation_accuracy=" in first  # streamed from the subprocess
    assert "validation accuracy" in first
    record = json.loads((out / training.RUN_RECORD).read_text())
    assert record["hyperparameters"]["max_train_samples"] == "120"
    assert json.loads((out / "metrics.json").read_text())["train_samples"] == 120
    assert not out.with_name("model.partial").exists()  # staging removed after success
    weights = (out / "model.safetensors").stat().st_mtime_ns

    # Same data, same settings: reused without running train.py.
    assert main([*argv, *FAST]) == 0
    assert "(reused)" in capsys.readouterr().out
    assert (out / "model.safetensors").stat().st_mtime_ns == weights

    # --force retrains even when nothing changed (another hyperparameter changes the identity,
    # see test_command_and_environment_follow_the_sagemaker_contract).
    before = (out / "model.safetensors").stat().st_mtime_ns
    assert main([*argv, *FAST, "--force"]) == 0
    assert "(reused)" not in capsys.readouterr().out
    assert (out / "model.safetensors").stat().st_mtime_ns != before


def test_missing_data_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "m"), "--base-model", "x"]
    )
    assert code == 2
    assert "run `textclf data` first" in capsys.readouterr().err


def test_bad_flag_values_are_user_errors(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A real dataset: each call fails on the flag it names, not on the data.
    out = ["--out", str(tmp_path / "m"), "--base-model", str(tmp_path / "unused")]
    assert main(["train", "--data", str(tiny_data), *out, "--epochs", "0"]) == 2
    assert "--epochs must be > 0" in capsys.readouterr().err
    assert main(["train", "--data", str(tiny_data), *out, "--max-length", "4"]) == 2
    assert "--max-length must be >= 8" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_failed_training_keeps_no_model(
    tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    code = main(
        ["train", "--data", str(tiny_data), "--out", str(out), "--base-model", str(tmp_path / "no-model")]
    )
    assert code == 2
    assert "train.py failed" in capfd.readouterr().err
    assert not (out / "config.json").exists()


def test_default_max_length_comes_from_eda(tmp_path: Path) -> None:
    eda = tmp_path / "eda.json"
    assert training.default_max_length(eda) == training.DEFAULT_MAX_LENGTH  # no report yet
    eda.write_text(json.dumps({"max_length": 40}))
    assert training.default_max_length(eda) == 40
    eda.write_text("not json")
    assert training.default_max_length(eda) == training.DEFAULT_MAX_LENGTH


def test_command_and_environment_follow_the_sagemaker_contract(tmp_path: Path) -> None:
    settings = training.TrainSettings(base_model="m", epochs=2.0, max_length=40, num_threads=3)
    cmd = training.command(settings, Path("/code/train.py"))
    flags = dict(zip(cmd[2::2], cmd[3::2], strict=True))
    assert flags["--epochs"] == "2.0"
    assert flags["--max_length"] == "40"
    assert flags["--base_model"] == "m"
    assert flags["--num_threads"] == "3"
    env = training.environment(tmp_path / "data", tmp_path / "stage")
    assert env["SM_CHANNEL_TRAIN"] == str(tmp_path / "data" / "train")
    assert env["SM_CHANNEL_VALIDATION"] == str(tmp_path / "data" / "validation")
    assert env["SM_MODEL_DIR"] == str(tmp_path / "stage" / "model")
    assert env["OMP_WAIT_POLICY"] in ("PASSIVE", os.environ.get("OMP_WAIT_POLICY"))
    # Thread count is not part of the model's identity; everything else is.
    assert "num_threads" not in settings.identity()
    assert settings.identity() != training.TrainSettings(base_model="m", epochs=3.0, max_length=40).identity()


def test_processes_run_train_py_under_torchrun(
    tiny_data: Path, tmp_path: Path, seen: list[training.TrainSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = training.TrainSettings(base_model="m", processes=2)
    cmd = training.command(settings, Path("/code/train.py"))
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert "--processes" not in cmd  # the launcher's setting, not a train.py flag
    # The effective batch changes, so the model does: not reused from a one-process run.
    assert settings.identity() != training.TrainSettings(base_model="m").identity()

    # `--processes` reaches the settings run_training starts torchrun from. Two processes train
    # for real in test_bench_train_runs_both_... (the same run_training, the same weights as one
    # process) and in test_distributed.py (train.py under torchrun, its archive and resume).
    argv = ["train", "--data", str(tiny_data), "--out", str(tmp_path / "m"), "--base-model", "m"]
    assert main([*argv, "--processes", "2", "--batch-size", "16"]) == 0
    assert (seen[-1].processes, seen[-1].batch_size) == (2, 16)
    assert main([*argv, "--processes", "0"]) == 2
    assert "--processes must be between 1 and 64" in capsys.readouterr().err


def test_bench_train_runs_both_and_prints_them_side_by_side(
    tiny_model: Path, tiny_data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """One process with batch 16 and two with 8 each, on the same rows in the same order: when
    DDP averages both ranks' gradients every step, each step is the one-process step on the same
    16 rows, so both runs end with the same weights (to float rounding; dropout is off so nothing
    else differs). Ranks that did not combine their gradients move elsewhere (measured: one
    process with batch 8 ends 0.025 away from one with 16, against 4e-8 for DDP, after moving
    0.054 from the base weights)."""
    base = without_dropout(tiny_model, tmp_path / "base")
    out = tmp_path / "bench"
    argv = ["bench-train", "--data", str(tiny_data), "--base-model", str(base), "--out", str(out)]
    # 256 rows, a multiple of 16: under DDP no row is left out of a round. The length-grouped
    # order's megabatches hold min(rows // (4 * batch), 50) batches (transformers): 64 rows for
    # batch 8 and for 16, so both runs draw the very same order from the seed.
    assert main([*argv, "--rows", "256", "--eval-rows", "100", "--batch-size", "16"]) == 0
    printed = capfd.readouterr().out
    assert "int8 instructions:" in printed  # the machine the figures hold for
    rows = [line for line in printed.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and "| 16 |" in rows[0] and "| 8 |" in rows[1]  # per-process batch
    report = json.loads((out / "bench_train.json").read_text())
    assert [r["processes"] for r in report["runs"]] == [1, 2]
    assert report["runs"][0]["steps"] == report["runs"][1]["steps"] == 16  # the same optimiser steps
    two = json.loads((out / "processes-2" / "metrics.json").read_text())["distributed"]
    assert (two["world_size"], two["backend"], two["effective_batch_size"]) == (2, "gloo", 16)

    moved = weight_distance(base, out / "processes-1")
    assert moved > 0.01  # it trained: the comparison is between two moves, not two copies
    apart = weight_distance(out / "processes-1", out / "processes-2")
    assert apart <= 1e-3 * moved, (apart, moved)

    assert main([*argv, "--processes", "1"]) == 2
    assert "--processes" in capfd.readouterr().err


def test_truncation_reaches_train_py_and_a_bad_one_is_refused(
    tiny_data: Path, tmp_path: Path, seen: list[training.TrainSettings], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", str(tiny_data), "--out", str(tmp_path / "m"), "--base-model", "m"]
    assert main([*argv, "--truncation", "head+tail"]) == 0
    assert seen[-1].truncation == "head+tail"
    flags = dict(zip(*[iter(training.command(seen[-1], Path("/code/train.py"))[2:])] * 2, strict=True))
    assert flags["--truncation"] == "head+tail"
    assert seen[-1].identity() != training.TrainSettings(base_model="m").identity()
    assert main([*argv]) == 0 and seen[-1].truncation == "head"  # the default
    with pytest.raises(SystemExit) as exited:  # argparse's own usage error
        main([*argv, "--truncation", "middle"])
    assert exited.value.code == 2
    assert "--truncation: invalid choice: 'middle'" in capsys.readouterr().err


def test_longer_texts_train_on_fewer_rows_by_default() -> None:
    # Headlines keep the CPU profile's sample; longer texts keep about its CPU time instead.
    samples = {length: training.default_max_train_samples(length) for length in (16, 32, 64, 128, 256, 512)}
    assert samples[16] == samples[32] == training.DEFAULT_MAX_TRAIN_SAMPLES == 32_000
    assert samples[64] == 11_300 and samples[128] == 4_000 and samples[256] == 1_400
    assert samples[512] == 1_000  # never below a useful floor
