"""The job's input channels and how the training rows are drawn from them.

Channels hold ``*.parquet`` files (columns ``text``, ``label``, optional ``story``) and
``labels.json``, whose order is the class-id order. Shipped beside ``train.py``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def read_channel(path: str) -> pd.DataFrame:
    files = sorted(Path(path).rglob("*.parquet"))
    if not files:
        sys.exit(f"train.py: no .parquet files under {path}")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        sys.exit(f"train.py: {path} lacks columns {sorted(missing)}")
    return frame


def read_labels(train_dir: str) -> list[str]:
    # labels.json sits beside the parquet file (or one level up when the channel is the
    # dataset root); its order is the class-id order.
    for candidate in (Path(train_dir) / "labels.json", Path(train_dir).parent / "labels.json"):
        if candidate.is_file():
            labels = json.loads(candidate.read_text(encoding="utf-8"))
            if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
                sys.exit(f"train.py: {candidate} must be a non-empty JSON list of label names")
            return labels
    sys.exit(f"train.py: no labels.json in {train_dir}")


def sample_across_stories(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Up to ``n`` rows, deterministic by seed, spread over as many stories as possible.

    Headlines of one story are near-duplicates, so a plain random sample spends most of its
    budget re-learning the big stories. Round-robin instead: a random headline of every story
    (stories in random order), then a second one of every story that has one, and so on.
    """
    if n <= 0 or n >= len(frame):
        return frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    shuffled = frame.iloc[rng.permutation(len(frame))]
    if "story" not in shuffled.columns:
        return shuffled.iloc[:n].reset_index(drop=True)
    rank = shuffled.groupby("story", sort=False).cumcount().to_numpy()
    # Stories are numbered in order of first appearance in the shuffled frame = random order.
    story_order = pd.factorize(shuffled["story"])[0]
    take = np.lexsort((story_order, rank))[:n]
    return shuffled.iloc[np.sort(take)].reset_index(drop=True)


def prior_offset(full_prior: pd.Series, sample_labels: pd.Series, label2id: dict[str, int]) -> np.ndarray:
    """Per-label ``log(p_sample / p_all)``, added to the logits in the training loss.

    Round-robin sampling over-represents labels with many small stories. Training on
    ``logits + offset`` makes the raw logits (what is served) follow the label mix of all
    training rows, which is the mix test headlines come from (prior-shift correction).
    """
    sample_prior = sample_labels.value_counts(normalize=True)
    offset = np.zeros(len(label2id))
    for name, i in label2id.items():
        if sample_prior.get(name, 0) > 0 and full_prior.get(name, 0) > 0:
            offset[i] = math.log(sample_prior[name] / full_prior[name])
    return offset
