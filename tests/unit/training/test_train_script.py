"""``model/train.py``: the SageMaker contract end to end, with a tiny model on real rows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from sklearn.metrics import f1_score

from textclf import config

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

# The regex a SageMaker MetricDefinition uses (docs/DESIGN.md).
METRIC_RE = re.compile(r"^METRIC (\w+)=([0-9.eE+-]+)$", re.MULTILINE)
FAST = ["--batch_size", "16", "--learning_rate", "1e-3", "--max_length", "24", "--num_threads", "1"]
# The plain trained model (what `textclf train` asks for); the job's archive is tested on its own.
FAST += ["--serving_runtime", "none"]


def run_script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(config.model_code_dir() / "train.py"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def assert_same_weights(expected_dir: Path, got_dir: Path) -> None:
    """The two trained model folders hold the same tensors (names and values, float tolerance)."""
    expected = load_file(expected_dir / "model.safetensors")
    got = load_file(got_dir / "model.safetensors")
    assert got.keys() == expected.keys()
    for key, tensor in expected.items():
        torch.testing.assert_close(got[key], tensor, rtol=1e-5, atol=1e-6, msg=key)


def test_sagemaker_contract_end_to_end(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    env = {
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_CHANNEL_TRAIN": str(tiny_data / "train"),
        "SM_CHANNEL_VALIDATION": str(tiny_data / "validation"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
    }
    # Hyperparameters arrive as strings, exactly as SageMaker passes them.
    proc = run_script(["--epochs", "2", "--base_model", str(tiny_model), *FAST], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    metrics = METRIC_RE.findall(proc.stdout)
    names = {name for name, _ in metrics}
    assert {"train_loss", "validation_loss", "validation_accuracy", "validation_macro_f1", "epoch"} <= names
    epochs = [float(v) for name, v in metrics if name == "epoch"]
    assert epochs == [1.0, 2.0]
    for name, value in metrics:
        assert np.isfinite(float(value)), name

    model_dir = tmp_path / "model"
    labels = json.loads((tiny_data / "train" / "labels.json").read_text())
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["id2label"] == {str(i): name for i, name in enumerate(labels)}
    assert cfg["label2id"] == {name: i for i, name in enumerate(labels)}
    meta = json.loads((model_dir / "textclf_meta.json").read_text())
    assert meta["max_length"] == 24 and meta["truncation"] == "head"
    assert meta["labels"] == labels
    assert meta["runtime"] == "torch"
    assert meta["base_model"] == str(tiny_model)
    assert meta["hyperparameters"]["epochs"] == 2.0
    assert "model_dir" not in meta["hyperparameters"]  # paths are not hyperparameters
    report = json.loads((model_dir / "metrics.json").read_text())
    assert len(report["evaluations"]) == 2
    # The served model is the transformer blended with the lexical head: its figures lead.
    head = report["lexical_head"]
    assert report["transformer_validation_accuracy"] == report["evaluations"][-1]["validation_accuracy"]
    assert report["validation_accuracy"] == head["blend_accuracy"]
    assert head["blend_accuracy"] >= report["transformer_validation_accuracy"]  # w = 1 is a candidate
    assert 0.0 <= head["blend_weight"] <= 1.0 and head["ngrams"] > 0
    assert head["train_rows"] == report["train_samples"]
    assert meta["lexical_head"] == head
    assert {"lexical_accuracy", "blend_accuracy", "blend_weight"} <= names
    # The trigger-training Lambda's MetricDefinitions catch every metric the script prints.
    from textclf_api.logic.training import METRIC_NAMES

    assert names <= set(METRIC_NAMES)
    assert (model_dir / "lexical_vocab.txt").is_file() and (model_dir / "lexical_head.npz").is_file()
    assert report["train_samples"] == len(pd.read_parquet(tiny_data / "train" / "data.parquet"))
    assert set(report["label_prior_offset"]) == set(labels)
    assert (model_dir / "training_curve.png").stat().st_size > 1000
    assert (model_dir / "model.safetensors").is_file()
    assert (tmp_path / "output" / "metrics.json").is_file()

    # The saved directory is a self-sufficient classifier: tokenizer + model load from it alone.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    batch = tokenizer(["Stocks fall as earnings disappoint"], return_tensors="pt")
    assert model(**batch).logits.shape == (1, len(labels))
    assert tokenizer.model_max_length == 24


def test_job_output_is_the_archive_the_endpoint_serves(
    tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """Default hyperparameters of a job: the model dir is a complete, gated, evaluated archive."""
    env = {
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_CHANNEL_TRAIN": str(tiny_data / "train"),
        "SM_CHANNEL_VALIDATION": str(tiny_data / "validation"),
        "SM_CHANNEL_TEST": str(tiny_data / "test"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
    }
    fast = FAST[: FAST.index("--serving_runtime")]
    proc = run_script(["--epochs", "1", "--base_model", str(tiny_model), *fast], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model_dir = tmp_path / "model"
    from textclf.bundle import SERVING_CODE

    for name in (*SERVING_CODE, "requirements.txt"):
        assert (model_dir / "code" / name).is_file(), name
    assert (model_dir / "code" / "inference.py").read_bytes() == (
        config.model_code_dir() / "inference.py"
    ).read_bytes()
    meta = json.loads((model_dir / "textclf_meta.json").read_text())
    assert meta["runtime"] in ("onnx-int8", "onnx-fp32", "torch")
    if meta["runtime"] != "torch":
        assert meta["fidelity"]["passed"] is True and (model_dir / "model.onnx").is_file()
        assert not (model_dir / "model.safetensors").exists()  # no dead torch weights in an ONNX archive
    refused = meta["packaging"]["runtimes_refused"]
    assert all(r.split(":")[0] in ("onnx-int8", "onnx-fp32") for r in refused)

    # Evaluation on the test channel, through the archive's own inference.py.
    evaluation = json.loads((model_dir / "evaluation.json").read_text())
    test = pd.read_parquet(tiny_data / "test" / "data.parquet")
    assert evaluation["rows"] == len(test) and evaluation["runtime"] == meta["runtime"]
    assert (tmp_path / "output" / "evaluation.json").read_text() == (
        model_dir / "evaluation.json"
    ).read_text()
    printed = dict(METRIC_RE.findall(proc.stdout))
    assert float(printed["test_accuracy"]) == pytest.approx(evaluation["model"]["accuracy"], abs=1e-5)
    assert float(printed["test_macro_f1"]) == pytest.approx(evaluation["model"]["macro_f1"], abs=1e-5)
    assert float(printed["baseline_test_accuracy"]) == pytest.approx(
        evaluation["baseline"]["accuracy"], abs=1e-5
    )
    assert meta["evaluation"]["test_accuracy"] == evaluation["model"]["accuracy"]
    # baseline.json in the archive root, for the monitor: validation figures of the served model
    # and a sketch of the training words that the monitor's reader understands.
    base = json.loads((model_dir / "baseline.json").read_text())
    valid = pd.read_parquet(tiny_data / "validation" / "data.parquet")
    assert base["labels"] == meta["labels"] and base["rows"] == len(valid) and base["source"] == "validation"
    assert sum(base["label_prior"].values()) == pytest.approx(1.0)
    truth = valid["label"].value_counts(normalize=True)
    assert base["true_label_prior"] == pytest.approx({k: float(truth.get(k, 0.0)) for k in meta["labels"]})
    assert sum(base["confidence_histogram"]["counts"]) == len(valid)
    assert 1 / len(meta["labels"]) <= base["mean_top_probability"] <= 1
    assert base["cascade_coverage"] == (meta.get("cascade") or {}).get("coverage")
    from textclf_api.logic.vocabulary import Sketch

    sketch = Sketch.of(base["vocabulary_sketch"])
    train_texts = pd.read_parquet(tiny_data / "train" / "data.parquet")["text"]
    assert sketch.unseen(train_texts)[0] == 0
    from textclf_api.logic.training import METRIC_NAMES

    assert set(printed) <= set(METRIC_NAMES)

    # The local endpoint serves the folder unchanged (its own code/inference.py), and the accuracy
    # it reaches on the test rows is the one the job reported.
    from textclf.serving.endpoint import ServingModel

    served = ServingModel.load(model_dir)
    assert served.module.__file__ == str((model_dir / "code" / "inference.py").resolve())
    predictions = served.predict(test["text"].tolist())
    accuracy = float(
        np.mean([p["label"] == gold for p, gold in zip(predictions, test["label"], strict=True)])
    )
    assert accuracy == pytest.approx(evaluation["model"]["accuracy"], abs=1e-9)


def test_labels_come_from_labels_json(
    train_module: ModuleType, tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """Reordered labels.json -> reordered id2label: the script never hard-codes labels."""
    train = tmp_path / "train"
    train.mkdir()
    (train / "data.parquet").write_bytes((tiny_data / "train" / "data.parquet").read_bytes())
    labels = list(reversed(json.loads((tiny_data / "labels.json").read_text())))
    (train / "labels.json").write_text(json.dumps(labels))
    args = ["--train_dir", str(train), "--validation_dir", str(tiny_data / "validation")]
    args += [
        "--model_dir",
        str(tmp_path / "model"),
        "--epochs",
        "0.5",
        "--base_model",
        str(tiny_model),
        *FAST,
    ]
    assert train_module.main(args) == 0
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert [cfg["id2label"][str(i)] for i in range(len(labels))] == labels


def test_unknown_label_in_data_fails_clearly(
    train_module: ModuleType, tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    train = tmp_path / "train"
    train.mkdir()
    (train / "data.parquet").write_bytes((tiny_data / "train" / "data.parquet").read_bytes())
    (train / "labels.json").write_text(json.dumps(["business", "health"]))
    args = ["--train_dir", str(train), "--validation_dir", str(tiny_data / "validation")]
    with pytest.raises(SystemExit, match=r"not in labels\.json"):
        train_module.main([*args, "--model_dir", str(tmp_path / "m"), "--base_model", str(tiny_model)])


def _args(tiny_model: Path, tiny_data: Path, out: Path, ckpt: Path | None) -> list[str]:
    args = ["--train_dir", str(tiny_data / "train"), "--validation_dir", str(tiny_data / "validation")]
    args += [
        "--model_dir",
        str(out),
        "--base_model",
        str(tiny_model),
        "--epochs",
        "2",
        "--evals_per_epoch",
        "2",
    ]
    args += [*FAST, "--logging_steps", "5"]
    if ckpt is not None:
        args += ["--checkpoint_dir", str(ckpt)]
    return args


def interrupt_after_checkpoint(
    train_module: ModuleType, monkeypatch: pytest.MonkeyPatch, nth: int, args: list[str]
) -> list[int]:
    """Run ``train.py`` and kill it (a spot interruption) right after its ``nth`` checkpoint.

    Returns the global steps checkpointed; the Trainer's checkpoint writer is restored afterwards.
    """
    real_save = train_module.fine_tune.JobTrainer._save_checkpoint
    saves: list[int] = []

    def save_then_die(self: Any, model: Any, trial: Any) -> None:
        real_save(self, model, trial)
        saves.append(self.state.global_step)
        if len(saves) == nth:
            raise KeyboardInterrupt("simulated spot interruption")

    monkeypatch.setattr(train_module.fine_tune.JobTrainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_module.main(args)
    monkeypatch.setattr(train_module.fine_tune.JobTrainer, "_save_checkpoint", real_save)
    return saves


def test_resume_after_interruption_matches_uninterrupted_run(  # noqa: PLR0917 - pytest fixtures
    train_module: ModuleType,
    tiny_model: Path,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A spot interruption right after a checkpoint, then a restart: same final weights."""
    assert train_module.main(_args(tiny_model, tiny_data, tmp_path / "straight", None)) == 0

    ckpt = tmp_path / "ckpt"
    # After the second evaluation (epoch 1 of 2).
    saves = interrupt_after_checkpoint(
        train_module, monkeypatch, 2, _args(tiny_model, tiny_data, tmp_path / "resumed", ckpt)
    )
    assert not (tmp_path / "resumed" / "config.json").exists()
    capsys.readouterr()

    assert train_module.main(_args(tiny_model, tiny_data, tmp_path / "resumed", ckpt)) == 0
    out = capsys.readouterr().out
    assert f"resumed from {ckpt / f'checkpoint-{saves[1]}'} at step {saves[1]}" in out
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")
    history = json.loads((tmp_path / "resumed" / "metrics.json").read_text())["evaluations"]
    # The history from before the interruption survived the restart.
    expected = json.loads((tmp_path / "straight" / "metrics.json").read_text())["evaluations"]
    assert [h["step"] for h in history] == [h["step"] for h in expected]
    assert len(history) == 4 and history[1]["epoch"] == 1.0 and history[3]["epoch"] == 2.0
    for got, want in zip(history, expected, strict=True):
        assert got["validation_accuracy"] == pytest.approx(want["validation_accuracy"])


def test_resume_in_the_middle_of_an_epoch_replays_its_batch_order(
    train_module: ModuleType,
    tiny_model: Path,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed between two evaluations (a --save_steps checkpoint inside epoch 2): the restart
    draws the epoch's (seed, epoch) order again, skips the batches done and ends on the very
    weights of an uninterrupted run."""
    assert train_module.main(_args(tiny_model, tiny_data, tmp_path / "straight", None)) == 0
    ckpt = tmp_path / "ckpt"
    args = [*_args(tiny_model, tiny_data, tmp_path / "resumed", ckpt), "--save_steps", "7"]
    # Checkpoints at 7, the first evaluation, 14, the end of epoch 1, 21: killed inside epoch 2,
    # whose order (unlike the first epoch's) a fresh generator would not draw again by chance.
    saves = interrupt_after_checkpoint(train_module, monkeypatch, 5, args)
    steps_per_epoch = json.loads((tmp_path / "straight" / "metrics.json").read_text())["steps"] // 2
    assert saves[-1] % 7 == 0 and steps_per_epoch < saves[-1] < 2 * steps_per_epoch
    assert train_module.main(args) == 0
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")


def test_resume_after_the_last_evaluation_still_blends(
    train_module: ModuleType,
    tiny_model: Path,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Killed after the final checkpoint: the restart trains nothing but must re-score validation
    before it fits the lexical head, or the blend would be chosen on empty probabilities."""
    assert train_module.main(_args(tiny_model, tiny_data, tmp_path / "straight", None)) == 0
    ckpt = tmp_path / "ckpt"
    # The last evaluation of 2 epochs x 2.
    interrupt_after_checkpoint(
        train_module, monkeypatch, 4, _args(tiny_model, tiny_data, tmp_path / "resumed", ckpt)
    )
    assert train_module.main(_args(tiny_model, tiny_data, tmp_path / "resumed", ckpt)) == 0

    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert len(resumed["evaluations"]) == 4
    for key in ("transformer_accuracy", "lexical_accuracy", "blend_accuracy", "blend_weight", "temperature"):
        assert resumed["lexical_head"][key] == pytest.approx(straight["lexical_head"][key]), key


def test_checkpoint_of_another_run_is_ignored(
    train_module: ModuleType,
    tiny_model: Path,
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ckpt = tmp_path / "ckpt"
    assert train_module.main([*_args(tiny_model, tiny_data, tmp_path / "a", ckpt), "--seed", "1"]) == 0
    capsys.readouterr()
    assert train_module.main([*_args(tiny_model, tiny_data, tmp_path / "b", ckpt), "--seed", "2"]) == 0
    assert "belongs to another run" in capsys.readouterr().out
    # Trained from scratch, not from run a's weights: the same as a seed-2 run with no checkpoint.
    assert train_module.main([*_args(tiny_model, tiny_data, tmp_path / "fresh", None), "--seed", "2"]) == 0
    assert_same_weights(tmp_path / "fresh", tmp_path / "b")


class _Planted:
    """Unpickling this runs code: what a tampered checkpoint could carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def test_a_checkpoint_that_would_run_code_is_ignored_not_loaded(  # noqa: PLR0917 - pytest fixtures
    train_module: ModuleType,
    tiny_model: Path,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A checkpoint of this very run (same fingerprint) whose optimiser state was replaced by a
    pickle that runs code: not unpickled, and the run starts over (the weights of a fresh run)."""
    ckpt = tmp_path / "ckpt"
    args = [*_args(tiny_model, tiny_data, tmp_path / "out", ckpt), "--seed", "1"]
    saves = interrupt_after_checkpoint(train_module, monkeypatch, 1, args)
    marker = tmp_path / "code-ran"
    torch.save({"payload": _Planted(marker)}, ckpt / f"checkpoint-{saves[0]}" / "optimizer.pt")
    capsys.readouterr()
    assert train_module.main(args) == 0
    assert not marker.exists()
    out = capsys.readouterr().out
    assert "not a plain checkpoint" in out and "resumed from" not in out
    fresh = [*_args(tiny_model, tiny_data, tmp_path / "fresh", None), "--seed", "1"]
    assert train_module.main(fresh) == 0
    assert_same_weights(tmp_path / "fresh", tmp_path / "out")


def test_freeze_layers_keeps_the_bottom_fixed(
    train_module: ModuleType,
    tiny_model: Path,
    tiny_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The tiny model has one layer: --freeze_layers 3 freezes the embeddings and no layer
    # (the top layer always trains), and says so.
    args = _args(tiny_model, tiny_data, tmp_path / "m", None)
    assert train_module.main([*args, "--freeze_layers", "3", "--epochs", "1"]) == 0
    assert "the model has 1 layers; freezing 0" in capsys.readouterr().out
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(tmp_path / "m" / "model.safetensors")
    embeddings = [k for k in before if ".embeddings." in k]
    assert embeddings
    for key in embeddings:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])
    layer = [k for k in before if ".encoder.layer.0." in k and k.endswith("weight")]
    assert any(not torch.equal(after[k], before[k]) for k in layer)


def test_story_sampling_is_diverse_and_deterministic(train_module: ModuleType) -> None:
    # One huge story and 50 single-headline stories: a random 60-row sample would be ~90%
    # from the big story; round-robin takes every small story first.
    frame = pd.DataFrame(
        {
            "text": [f"big {i}" for i in range(500)] + [f"small {i}" for i in range(50)],
            "label": ["business"] * 550,
            "story": ["big"] * 500 + [f"s{i}" for i in range(50)],
        }
    )
    a = train_module.channels.sample_across_stories(frame, 60, 7)
    b = train_module.channels.sample_across_stories(frame, 60, 7)
    c = train_module.channels.sample_across_stories(frame, 60, 8)
    assert len(a) == 60
    assert a.equals(b)
    assert not a.equals(c)
    assert a["story"].nunique() == 51
    assert (a["story"] == "big").sum() == 10
    assert len(train_module.channels.sample_across_stories(frame, 0, 7)) == 550  # 0 = everything


def test_prior_offset_undoes_the_sampling_shift(train_module: ModuleType) -> None:
    label2id = {"a": 0, "b": 1, "c": 2}
    full = pd.Series(["a"] * 80 + ["b"] * 20).value_counts(normalize=True)
    sample = pd.Series(["a"] * 50 + ["b"] * 50)
    offset = train_module.channels.prior_offset(full, sample, label2id)
    # a: log(0.5 / 0.8), b: log(0.5 / 0.2); a label absent from the data gets no offset.
    np.testing.assert_allclose(offset, [np.log(0.5 / 0.8), np.log(0.5 / 0.2), 0.0])
    # Softmax(logits) where softmax(logits + offset) = sample posterior -> full-data posterior.
    sample_posterior = np.array([0.5, 0.5, 0.0]) + 1e-12
    logits = np.log(sample_posterior) - offset
    full_posterior = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(full_posterior[:2], [0.8, 0.2], atol=1e-9)


def test_length_grouped_batches_cover_every_row_once(train_module: ModuleType) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 40, size=1000).tolist()

    def batches(seed: int, epoch: int) -> list[list[int]]:
        sampler = train_module.fine_tune.EpochSeededLengthSampler(16, lengths, seed)
        sampler.set_epoch(epoch)
        order = list(sampler)
        return [order[i : i + 16] for i in range(0, len(order), 16)]

    epoch0 = batches(1, 0)
    rows = [i for b in epoch0 for i in b]
    assert sorted(rows) == list(range(1000))
    # Inside a batch lengths are close: padding waste far below that of random batches.
    length = np.array(lengths)
    waste = sum(int(length[b].max() - length[b].min()) for b in epoch0)
    random_waste = sum(
        int(length[b].max() - length[b].min()) for b in np.array_split(rng.permutation(1000), 63)
    )
    assert waste < random_waste / 4
    # The order is a function of (seed, epoch) alone (what a resumed job replays).
    assert batches(1, 0) == epoch0
    assert batches(1, 1) != epoch0
    assert batches(2, 0) != epoch0


def test_macro_f1_matches_sklearn(train_module: ModuleType) -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        y_true = rng.integers(0, 4, 200)
        y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, 200))
        assert train_module.job_outputs.macro_f1(y_true, y_pred) == pytest.approx(
            f1_score(y_true, y_pred, average="macro")
        )
    # A class never predicted and never present does not drag the score (as in sklearn).
    assert train_module.job_outputs.macro_f1(np.array([0, 1, 1]), np.array([0, 1, 0])) == pytest.approx(
        f1_score([0, 1, 1], [0, 1, 0], average="macro")
    )


def test_sagemaker_checkpoint_dir_is_used_when_present(
    train_module: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(train_module, "SAGEMAKER_CHECKPOINT_DIR", str(tmp_path))
    assert train_module.parse_args([]).checkpoint_dir == str(tmp_path)
    monkeypatch.setattr(train_module, "SAGEMAKER_CHECKPOINT_DIR", str(tmp_path / "absent"))
    assert train_module.parse_args([]).checkpoint_dir == ""
    assert train_module.parse_args(["--checkpoint_dir", "x"]).checkpoint_dir == "x"


def test_sm_environment_gives_the_default_dirs(
    train_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SM_MODEL_DIR", "/opt/ml/model")
    monkeypatch.setenv("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train")
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation")
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")
    # The module reads the environment when parsing, not when imported: reload-free check.
    args = train_module.parse_args(["--epochs", "1"])
    assert (args.model_dir, args.train_dir, args.validation_dir, args.output_data_dir) == (
        "/opt/ml/model",
        "/opt/ml/input/data/train",
        "/opt/ml/input/data/validation",
        "/opt/ml/output/data",
    )


def test_transformer_only_when_the_lexical_head_is_off(
    train_module: ModuleType, tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    args = ["--train_dir", str(tiny_data / "train"), "--validation_dir", str(tiny_data / "validation")]
    args += ["--model_dir", str(tmp_path / "model"), "--epochs", "0.5", "--base_model", str(tiny_model)]
    assert train_module.main([*args, *FAST, "--lexical_head", "0"]) == 0
    report = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert report["lexical_head"] is None
    assert report["validation_accuracy"] == report["evaluations"][-1]["validation_accuracy"]
    assert not list((tmp_path / "model").glob("lexical_*"))
