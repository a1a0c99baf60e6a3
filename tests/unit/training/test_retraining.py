"""A retrain's job: ``model/train.py`` with the feedback, recent and champion channels, for real."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from .test_train_script import FAST, METRIC_RE, run_script

pytestmark = pytest.mark.heavy  # a real (tiny) training run


def write_rows(path: Path, frame: pd.DataFrame, labeller: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for i, (text, label) in enumerate(zip(frame["text"], frame["label"], strict=True)):
            record = {"text": text, "label": label, "prediction_id": f"{labeller}-{i}", "labeller": labeller,
                      "received_at": f"2014-06-01T00:{i // 60:02d}:{i % 60:02d}Z"}  # fmt: skip
            out.write(json.dumps(record) + "\n")


def test_a_retrain_learns_the_feedback_and_scores_the_champion_on_the_same_rows(
    tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    labels = json.loads((tiny_data / "train" / "labels.json").read_text())
    valid = pd.read_parquet(tiny_data / "validation" / "data.parquet")
    half = len(valid) // 2
    honest = valid.iloc[:half]
    # mallory's labels are all wrong: the next label of the true one.
    poisoned = honest.assign(label=[labels[(labels.index(lab) + 1) % len(labels)] for lab in honest["label"]])
    write_rows(tmp_path / "feedback" / "a.jsonl", honest, "alice")
    with (tmp_path / "feedback" / "a.jsonl").open(
        "a", encoding="utf-8"
    ) as out:  # plus a label the model lacks
        out.write(json.dumps({"text": "x", "label": "sports", "prediction_id": "z", "labeller": "alice",
                              "received_at": "2014-06-01T01:00:00Z"}) + "\n")  # fmt: skip
    write_rows(tmp_path / "feedback" / "b.jsonl", poisoned, "mallory")
    write_rows(tmp_path / "recent" / "r.jsonl", valid.iloc[half:], "alice")
    (tmp_path / "champion").mkdir()
    with tarfile.open(tmp_path / "champion" / "model.tar.gz", "w:gz") as tar:  # the serving archive
        for item in tiny_model.iterdir():
            tar.add(item, arcname=item.name)
    env = {
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_CHANNEL_TRAIN": str(tiny_data / "train"),
        "SM_CHANNEL_VALIDATION": str(tiny_data / "validation"),
        "SM_CHANNEL_TEST": str(tiny_data / "test"),
        "SM_CHANNEL_FEEDBACK": str(tmp_path / "feedback"),
        "SM_CHANNEL_RECENT": str(tmp_path / "recent"),
        "SM_CHANNEL_CHAMPION": str(tmp_path / "champion"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
    }
    args = ["--epochs", "1", "--base_model", str(tiny_model), "--max_train_samples", "100",
            "--trusted_labellers", "alice", "--lexical_head", "0", *FAST]  # fmt: skip
    proc = run_script(args, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "feedback: 1 rows with labels not in labels.json left out" in proc.stdout
    printed = {name: float(value) for name, value in METRIC_RE.findall(proc.stdout)}
    from textclf_api.logic.training import METRIC_NAMES

    assert set(printed) <= set(METRIC_NAMES)
    expected = {"recent_accuracy", "champion_recent_accuracy", "trusted_accuracy",
                "champion_trusted_accuracy", "champion_test_accuracy", "test_accuracy"}  # fmt: skip
    assert expected <= set(printed)
    assert printed["trusted_accuracy"] == printed["recent_accuracy"]  # every recent row is alice's
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    # The sample draws 100 of the parent's rows; every feedback row is kept beside them.
    assert metrics["train_samples"] == 100 + 2 * half
    meta = json.loads((tmp_path / "model" / "textclf_meta.json").read_text())
    record = meta["retraining"]
    assert record["feedback_rows"] == 2 * half and record["recent_rows"] == len(valid) - half
    assert record["metrics"]["champion_recent_accuracy"] == pytest.approx(
        printed["champion_recent_accuracy"], abs=1e-5
    )
    assert set(record["labellers"]) == {"alice", "mallory"}
    for name in ("alice", "mallory"):
        entry = record["labellers"][name]
        assert (
            entry["rows"] == half and 0 <= entry["confident"] <= half and 0.0 <= entry["disagreement"] <= 1.0
        )
    # What the deploy function reads of it.
    from textclf_api.logic import artifacts

    influence = artifacts._influence(meta)
    assert influence["mallory"].rows == half
    assert json.loads((tmp_path / "output" / "retraining.json").read_text()) == record


def champion_archive(tiny_model: Path, dest: Path, **meta_changes: object) -> dict[str, object]:
    """The serving archive of a champion fine-tuned from ``tiny_model``: its classifier moved
    away from the base's, so a job that starts from it is told apart from one that does not."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = dest / "unpacked"
    shutil.copytree(tiny_model, folder)
    weights = load_file(folder / "model.safetensors")
    weights["classifier.weight"] = weights["classifier.weight"] + 0.5
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    meta = json.loads((folder / "textclf_meta.json").read_text()) | {"base_model": str(tiny_model)}
    meta.update(meta_changes)
    (folder / "textclf_meta.json").write_text(json.dumps(meta))
    (dest / "champion").mkdir()
    with tarfile.open(dest / "champion" / "model.tar.gz", "w:gz") as tar:
        for item in folder.iterdir():
            tar.add(item, arcname=item.name)
    return dict(weights)


def test_a_retrain_warm_starts_from_the_champions_weights(
    tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """With a learning rate too small to move them, the retrain ends with the champion's weights,
    not the base model's; and it says so in its log and textclf_meta.json."""
    import torch
    from safetensors.torch import load_file

    champion = champion_archive(tiny_model, tmp_path)
    env = {
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_CHANNEL_TRAIN": str(tiny_data / "train"),
        "SM_CHANNEL_VALIDATION": str(tiny_data / "validation"),
        "SM_CHANNEL_CHAMPION": str(tmp_path / "champion"),
    }
    args = ["--epochs", "1", "--base_model", str(tiny_model), "--max_train_samples", "32",
            "--lexical_head", "0", *FAST, "--learning_rate", "1e-9"]  # fmt: skip
    proc = run_script(args, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warm start: continuing from the champion's weights" in proc.stdout
    trained = load_file(tmp_path / "model" / "model.safetensors")
    base = load_file(tiny_model / "model.safetensors")
    assert torch.allclose(trained["classifier.weight"], champion["classifier.weight"], atol=1e-5)
    assert not torch.allclose(trained["classifier.weight"], base["classifier.weight"], atol=0.1)
    assert json.loads((tmp_path / "model" / "textclf_meta.json").read_text())["warm_started"] is True


@pytest.mark.parametrize(
    "case",
    [
        ({"warm_start": 0}, None),
        ({"labels": ["a", "b"]}, "its labels ['a', 'b'] are not the dataset's"),
        ({"base_model": "distilbert-base-uncased"}, "it was fine-tuned from distilbert-base-uncased"),
        ({"onnx": True}, "its archive has no torch weights (runtime onnx-int8)"),
    ],
)
def test_no_warm_start_from_a_champion_that_does_not_fit(
    tiny_model: Path,
    train_module: ModuleType,
    tmp_path: Path,
    case: tuple[dict[str, object], str | None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Another label set or base model, an ONNX archive, or warm_start 0: from the base model."""
    import argparse

    change, why = case

    retraining = train_module.retraining
    labels = json.loads((tiny_model / "textclf_meta.json").read_text())["labels"]
    meta = {k: v for k, v in change.items() if k in ("labels", "base_model")}
    if change.get("onnx"):
        meta["runtime"] = "onnx-int8"
    champion_archive(tiny_model, tmp_path, **meta)
    if change.get("onnx"):  # an ONNX archive ships model.onnx, not the torch weights
        with tarfile.open(tmp_path / "champion" / "model.tar.gz") as tar:
            members = [m for m in tar.getmembers() if not m.name.endswith(".safetensors")]
            tar.extractall(tmp_path / "onnx", members=members, filter="data")
        (tmp_path / "champion" / "model.tar.gz").unlink()
        with tarfile.open(tmp_path / "champion" / "model.tar.gz", "w:gz") as tar:
            for item in (tmp_path / "onnx").iterdir():
                tar.add(item, arcname=item.name)
    args = argparse.Namespace(
        warm_start=change.get("warm_start", 1),
        champion_dir=str(tmp_path / "champion"),
        base_model=str(tiny_model),
    )
    unpacked = retraining.unpack_champion(str(tmp_path / "champion"), tmp_path / "scratch")
    assert retraining.warm_start_dir(args, labels, unpacked) is None
    said = capsys.readouterr().out
    assert (why is None and said == "") or (why is not None and why in said and "training from" in said)
