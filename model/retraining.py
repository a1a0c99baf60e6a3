"""A retrain's extra channels: feedback rows to learn from, and the champion to beat.

A job started by the retrain function (``functions/textclf_api/logic/retrain.py``) gets, beside
the dataset's channels, optional ones:

* ``feedback``: JSON Lines ``{"text", "label", "prediction_id", "labeller", "received_at"}`` --
  labels posted by labellers, joined to the text the endpoint saw; appended to the training rows
  (all of them, whatever ``--max_train_samples`` draws from the parent's rows);
* ``recent``: the same, the newest feedback, never trained on;
* ``champion``: the serving model's ``model.tar.gz``.

After the challenger's archive is written, both models are scored in this job on the same rows:
the test channel, ``recent`` and its trusted slice (rows of ``--trusted_labellers``), as ``METRIC``
lines the deploy gate compares. For each feedback labeller the job also records how often their
labels contradict the champion's confident answers (``textclf_meta.json`` ``retraining``), so a
refusal can name the labellers whose rows moved the model. Shipped beside ``train.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from job_outputs import EVALUATION_FILE, metric, say

#: The champion's answer counts as confident from this top probability on: a label that
#: contradicts it is more likely wrong than the model.
CONFIDENT = 0.9
COLUMNS = ("text", "label", "prediction_id", "labeller", "received_at")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feedback_dir", default=os.environ.get("SM_CHANNEL_FEEDBACK", ""))
    p.add_argument("--recent_dir", default=os.environ.get("SM_CHANNEL_RECENT", ""))
    p.add_argument("--champion_dir", default=os.environ.get("SM_CHANNEL_CHAMPION", ""))


def read_rows(folder: str, labels: Sequence[str], name: str) -> pd.DataFrame:
    """The JSON Lines rows of a channel folder (an empty frame when there is none); rows whose
    label the model does not have are dropped and counted (the label set may have changed)."""
    files = sorted(Path(folder).rglob("*.jsonl")) if folder and Path(folder).is_dir() else []
    records = [
        json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    frame = pd.DataFrame(records, columns=list(COLUMNS)) if records else pd.DataFrame(columns=list(COLUMNS))
    known = frame["label"].isin(set(labels))
    if (~known).any():
        say(f"{name}: {int((~known).sum())} rows with labels not in labels.json left out")
    frame = frame[known].reset_index(drop=True)
    if len(frame):
        say(f"{name}: {len(frame)} rows from {frame['labeller'].nunique()} labellers")
    return frame


def with_feedback(parent: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """The parent's rows and every feedback row (text and label; no story)."""
    if feedback.empty:
        return parent
    return pd.concat([parent, feedback[["text", "label"]]], ignore_index=True)


@dataclass
class Scorer:
    """A model loaded with the job's own inference.py, answering label names."""

    classifier: Any
    inference: Any

    def probabilities(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """(the predicted label of each text, its top probability)."""
        if not texts:
            return [], np.zeros(0)
        probs = self.inference.predict_proba(self.classifier, texts)
        labels = list(self.classifier.labels)
        return [labels[int(i)] for i in probs.argmax(1)], probs.max(1)

    def accuracy(self, frame: pd.DataFrame) -> float:
        predicted, _ = self.probabilities(frame["text"].astype(str).tolist())
        return float(np.mean(np.asarray(predicted) == frame["label"].to_numpy()))


def load_scorer(model_dir: Path, inference: Any) -> Scorer:
    return Scorer(inference.load_classifier(model_dir), inference)


def unpack_champion(folder: str, dest: Path) -> Path | None:
    """The champion channel's ``model.tar.gz`` unpacked into ``dest`` (None: no champion)."""
    archives = sorted(Path(folder).rglob("*.tar.gz")) if folder and Path(folder).is_dir() else []
    if not archives:
        return None
    with tarfile.open(archives[0]) as tar:
        tar.extractall(dest, filter="data")
    return dest


def warm_start_dir(args: argparse.Namespace, labels: Sequence[str], folder: Path | None) -> Path | None:
    """``folder``, the unpacked champion, for the job to continue from; None (and why, said) when
    there is none or it cannot be: another label set or base model, or an ONNX archive without
    torch weights."""
    if not args.warm_start or folder is None:
        return None
    meta_path = folder / "textclf_meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    why = None
    if not any(folder.glob("*.safetensors")):
        why = f"its archive has no torch weights (runtime {meta.get('runtime', '?')})"
    elif list(meta.get("labels") or []) != list(labels):
        why = f"its labels {meta.get('labels')} are not the dataset's {list(labels)}"
    elif meta.get("base_model") != args.base_model:
        why = f"it was fine-tuned from {meta.get('base_model')}, this job from {args.base_model}"
    if why is not None:
        say(f"warm start: not from the champion ({why}); training from {args.base_model}")
        return None
    say(f"warm start: continuing from the champion's weights (fine-tuned from {args.base_model})")
    return folder


def labeller_influence(feedback: pd.DataFrame, champion: Scorer) -> dict[str, dict[str, Any]]:
    """Per labeller: rows, rows the champion answers confidently, and the share of those whose
    label contradicts that answer."""
    if feedback.empty:
        return {}
    predicted, top = champion.probabilities(feedback["text"].astype(str).tolist())
    frame = feedback.assign(predicted=predicted, confident=top >= CONFIDENT)
    out: dict[str, dict[str, Any]] = {}
    for labeller, rows in frame.groupby("labeller", sort=True):
        sure = rows[rows["confident"]]
        disagree = int((sure["label"] != sure["predicted"]).sum())
        out[str(labeller)] = {
            "rows": len(rows),
            "confident": len(sure),
            "disagreement": round(disagree / len(sure), 4) if len(sure) else 0.0,
        }
    return out


def evaluate(
    args: argparse.Namespace,
    serving_dir: Path,
    test: pd.DataFrame | None,
    *,
    feedback: pd.DataFrame,
    recent: pd.DataFrame,
    inference: Any,
    champion_dir: Path | None,
) -> dict[str, Any] | None:
    """Score challenger (``serving_dir``) and champion (unpacked in ``champion_dir``; None: no
    champion) on the same rows; print the METRIC lines and record the figures in the archive's
    ``textclf_meta.json`` and ``evaluation.json``."""
    trusted_names = {t.strip() for t in args.trusted_labellers.split(",") if t.strip()}
    trusted = recent[recent["labeller"].isin(trusted_names)] if not recent.empty else recent
    if champion_dir is None and recent.empty:
        return None
    challenger = load_scorer(serving_dir, inference)
    champion = load_scorer(champion_dir, inference) if champion_dir is not None else None
    figures: dict[str, float] = {}
    slices = (("recent", recent), ("trusted", trusted), ("test", test))
    for name, rows in slices:
        if rows is None or rows.empty:
            continue
        if name != "test":  # the challenger's test accuracy is printed by job_outputs
            figures[f"{name}_accuracy"] = challenger.accuracy(rows)
        if champion is not None:
            figures[f"champion_{name}_accuracy"] = champion.accuracy(rows)
    influence = labeller_influence(feedback, champion) if champion is not None else {}
    for name, value in figures.items():
        metric(name, value)
    record = {
        "feedback_rows": len(feedback),
        "recent_rows": len(recent),
        "trusted_rows": len(trusted),
        "trusted_labellers": sorted(trusted_names),
        "confident_at": CONFIDENT,
        "metrics": figures,
        "labellers": influence,
    }
    out = Path(args.output_data_dir) if args.output_data_dir else None
    documents = [serving_dir / "textclf_meta.json", serving_dir / EVALUATION_FILE]
    for path in documents + ([out / EVALUATION_FILE] if out is not None else []):
        if path.is_file():
            document = json.loads(path.read_text(encoding="utf-8"))
            document["retraining"] = record
            path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "retraining.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
