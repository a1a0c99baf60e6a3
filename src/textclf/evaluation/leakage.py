"""What a random ROW split would have reported, next to the honest STORY split.

Headlines of one story are near-duplicates ("Apple unveils iPhone 6" from forty outlets). A
row split puts siblings of almost every test headline into the training data, so the test
score measures recall of seen stories, not generalisation to new ones. The demonstration
uses the TF-IDF baseline: it is cheap to fit twice on the full corpus, and its gap between
the two splits shows the leakage as clearly as a fine-tuned model's would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from textclf.errors import UserError
from textclf.evaluation import baseline as baseline_mod
from textclf.evaluation.metrics import classification_report

LEAKAGE_FILE = "leakage.json"


def _score(train: pd.DataFrame, test: pd.DataFrame, labels: list[str], seed: int) -> dict[str, Any]:
    index = {name: i for i, name in enumerate(labels)}
    started = time.perf_counter()
    fitted = baseline_mod.train_baseline(train["text"].tolist(), train["label"].map(index).to_numpy(), seed)
    fit_seconds = time.perf_counter() - started
    probs = baseline_mod.predict_proba(fitted, test["text"].tolist(), len(labels))
    report = classification_report(test["label"].map(index).to_numpy(), probs, labels)
    # Share of test headlines whose exact text also occurs in training: the crudest leak.
    seen = float(test["text"].isin(set(train["text"])).mean())
    shared_stories = float(test["story"].isin(set(train["story"])).mean())
    return {
        "train_rows": len(train),
        "test_rows": len(test),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "ece": report["ece"],
        "test_headlines_also_in_train": seen,
        "test_rows_whose_story_is_in_train": shared_stories,
        "fit_seconds": fit_seconds,
    }


def leakage_demo(data: Path, out: Path | None = None, seed: int = 13) -> dict[str, Any]:
    """Fit the baseline on a STORY split (``data``'s own) and on a ROW split of the same rows.

    The row split uses the same rows, fractions and per-split de-duplication as ``textclf
    data`` (``textclf.data.split_rows_randomly``); only the grouping differs.
    """
    from textclf.data import read_split, split_rows_randomly

    manifest_file = data / "manifest.json"
    if not manifest_file.is_file():
        raise UserError(f"{data} is not a processed dataset (no manifest.json): run `textclf data` first")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    fractions = manifest.get("fractions") or {"train": 0.8, "validation": 0.1, "test": 0.1}
    story = {name: read_split(data / name) for name in ("train", "validation", "test")}
    everything = pd.concat(story.values(), ignore_index=True)
    rows, _ = split_rows_randomly(everything, seed, fractions)
    labels = list(manifest["labels"])  # the dataset's label set, in class-id order
    story_scores = _score(story["train"], story["test"], labels, seed)
    row_scores = _score(rows["train"], rows["test"], labels, seed)
    result: dict[str, Any] = {
        "model": baseline_mod.BASELINE_NAME,
        "data": str(data),
        "seed": seed,
        "fractions": fractions,
        "story_split": story_scores,
        "row_split": row_scores,
        "accuracy_overstatement": row_scores["accuracy"] - story_scores["accuracy"],
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / LEAKAGE_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def format_leakage(result: dict[str, Any]) -> str:
    s, r = result["story_split"], result["row_split"]
    lines = [
        f"{'':<40}{'STORY split':>14}{'ROW split':>14}",
        f"{'test accuracy':<40}{s['accuracy']:>14.4f}{r['accuracy']:>14.4f}",
        f"{'test macro-F1':<40}{s['macro_f1']:>14.4f}{r['macro_f1']:>14.4f}",
        f"{'test rows whose story is in train':<40}{s['test_rows_whose_story_is_in_train']:>14.1%}"
        f"{r['test_rows_whose_story_is_in_train']:>14.1%}",
        f"{'test headlines also in train (exact)':<40}{s['test_headlines_also_in_train']:>14.1%}"
        f"{r['test_headlines_also_in_train']:>14.1%}",
        f"a random row split overstates accuracy by {result['accuracy_overstatement'] * 100:.1f} points "
        f"({result['model']})",
    ]
    return "\n".join(lines)
