"""A retrain's job: ``model/train.py`` with the feedback, recent and champion channels, for real."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

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
