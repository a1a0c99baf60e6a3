"""Train/validation/test splits grouped by STORY (or any group), by time, plus the leaky row split.

Headlines of one story are near-duplicates ("Apple unveils iPhone 6" from 40 publishers), so a
random row split puts copies of test headlines in training and overstates accuracy. The story
split keeps every story whole. It is also stratified by label: every story carries a single
category, so stories are dealt per label and each split gets about the same class balance.
The same code splits generic data by its ``--group-column``, or, with one group per row, gives
a plain stratified split. :func:`split_by_time` trains on the past and tests on the future.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from textclf.errors import UserError

SPLITS: tuple[str, ...] = ("train", "validation", "test")


def check_fractions(val_frac: float, test_frac: float) -> dict[str, float]:
    """Split fractions as a mapping; train gets what is left, and must get something."""
    for name, value in (("--val-frac", val_frac), ("--test-frac", test_frac)):
        if not 0.0 <= value < 1.0:
            raise UserError(f"{name} must be in [0, 1), got {value}")
    train = 1.0 - val_frac - test_frac
    if train <= 0.0:
        raise UserError(f"--val-frac + --test-frac must be below 1, got {val_frac + test_frac}")
    return {"train": round(train, 10), "validation": val_frac, "test": test_frac}


def assign_stories(
    frame: pd.DataFrame, seed: int, fractions: Mapping[str, float], labels: Sequence[str] = ()
) -> dict[str, str]:
    """Map every story to a split name.

    Labels are dealt in the order of ``labels`` (the dataset's class-id order; it fixes how the
    seeded generator is consumed), then any others sorted. Per label, the label's stories are
    sorted (so input row order does not matter), shuffled with ``seed`` and dealt out in that
    order: a story goes to test if its rows keep test
    nearest its quota (``test`` x the label's rows), else to validation likewise, else to train.
    Quotas count rows, not stories, because story sizes range from 1 to over a thousand headlines.
    """
    rng = np.random.default_rng(seed)
    counts = frame.groupby(["story", "label"], sort=True).size().rename("n").reset_index()
    # A story's label is its most frequent one (UCI stories carry one; hand-made frames may not).
    counts = counts.sort_values(["story", "n", "label"], ascending=[True, False, True], kind="stable")
    per_story = counts.drop_duplicates("story")
    sizes = frame.groupby("story", sort=True).size()
    labels_present = set(per_story["label"])
    order = [*(x for x in labels if x in labels_present), *sorted(labels_present - set(labels))]
    assignment: dict[str, str] = {}
    for label in order:
        stories = np.sort(per_story.loc[per_story["label"] == label, "story"].to_numpy(dtype=object))
        stories = stories[rng.permutation(len(stories))]
        story_sizes = sizes.loc[stories].to_numpy()
        total = int(story_sizes.sum())
        quota = {name: fractions[name] * total for name in ("test", "validation")}
        filled = dict.fromkeys(quota, 0.0)
        for story, size in zip(stories, story_sizes, strict=True):
            split = "train"
            for name in ("test", "validation"):
                # Take the story while its midpoint lies inside the quota: overshoot and
                # undershoot are then at most half a story, and a 0 fraction takes nothing.
                if filled[name] + size / 2 <= quota[name] and quota[name] > 0:
                    split = name
                    filled[name] += size
                    break
            assignment[str(story)] = split
    return assignment


def drop_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop exact (text, label) repeats, keeping the lowest id; returns (frame, rows dropped)."""
    ordered = frame.sort_values("id", kind="stable")
    kept = ordered.drop_duplicates(subset=["text", "label"], keep="first")
    return kept.reset_index(drop=True), len(ordered) - len(kept)


def split_by_story(
    frame: pd.DataFrame,
    seed: int,
    fractions: Mapping[str, float],
    *,
    dedup: bool = True,
    labels: Sequence[str] = (),
) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """STORY-grouped split; returns ({split: frame}, {split: duplicates dropped})."""
    if frame.empty:
        raise UserError("no valid rows to split")
    assignment = assign_stories(frame, seed, fractions, labels)
    split_of_row = frame["story"].map(assignment)
    return _finish({name: frame[split_of_row == name] for name in SPLITS}, dedup)


def split_by_time(
    frame: pd.DataFrame, fractions: Mapping[str, float], *, grouped: bool, dedup: bool = True
) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Time-ordered split: train on the oldest rows, validation on the next, test on the newest.

    Units are dealt in time order: each ``timestamp`` value (rows of the same instant never
    straddle two splits, so no test row is as old as a training row), or with ``grouped`` each
    story, placed by its first timestamp and kept whole. A unit goes to the first split whose
    cumulative quota (rows) holds its midpoint, as in :func:`assign_stories`.
    """
    if frame.empty:
        raise UserError("no valid rows to split")
    key = frame["story"] if grouped else frame["timestamp"]
    units = frame.groupby(key, sort=False)["timestamp"].agg(["min", "size"]).reset_index()
    units.columns = pd.Index(["unit", "start", "size"])
    units["unit_str"] = units["unit"].astype(str)
    units = units.sort_values(["start", "unit_str"], kind="stable")
    sizes = units["size"].to_numpy(dtype=float)
    midpoints = np.cumsum(sizes) - sizes / 2
    train_end = fractions["train"] * len(frame)
    validation_end = train_end + fractions["validation"] * len(frame)
    names = np.where(
        midpoints <= train_end, "train", np.where(midpoints <= validation_end, "validation", "test")
    )
    split_of_unit = dict(zip(units["unit"], names, strict=True))
    split_of_row = key.map(split_of_unit)
    return _finish({name: frame[split_of_row == name] for name in SPLITS}, dedup)


def split_rows_randomly(
    frame: pd.DataFrame, seed: int, fractions: Mapping[str, float], *, dedup: bool = True
) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """LEAKY on purpose: a random split of ROWS, ignoring STORY.

    Only for showing how much a row split overstates accuracy next to :func:`split_by_story`;
    same fractions, same per-split dedup, so the two differ only in grouping.
    """
    if frame.empty:
        raise UserError("no valid rows to split")
    order = np.random.default_rng(seed).permutation(len(frame))
    n_test = round(fractions["test"] * len(frame))
    n_val = round(fractions["validation"] * len(frame))
    parts = {
        "test": frame.iloc[order[:n_test]],
        "validation": frame.iloc[order[n_test : n_test + n_val]],
        "train": frame.iloc[order[n_test + n_val :]],
    }
    return _finish(parts, dedup)


def _finish(parts: Mapping[str, pd.DataFrame], dedup: bool) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    out: dict[str, pd.DataFrame] = {}
    dropped: dict[str, int] = {}
    for name in SPLITS:
        part = parts[name]
        if dedup:
            out[name], dropped[name] = drop_duplicates(part)
        else:
            out[name], dropped[name] = part.sort_values("id", kind="stable").reset_index(drop=True), 0
    return out, dropped
