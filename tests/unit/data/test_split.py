from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from textclf.data.parse import parse_lines
from textclf.data.split import (
    SPLITS,
    assign_stories,
    check_fractions,
    drop_duplicates,
    split_by_story,
    split_by_time,
    split_rows_randomly,
)
from textclf.errors import UserError
from textclf.labels import LABELS

FRACTIONS = check_fractions(0.1, 0.1)


def synthetic_frame(n_stories: int = 400, seed: int = 0) -> pd.DataFrame:
    """Stories of 1-60 headlines, one label each, unique texts."""
    rng = np.random.default_rng(seed)
    rows = []
    next_id = 1
    for s in range(n_stories):
        label = LABELS[s % len(LABELS)]
        for _ in range(int(rng.integers(1, 60))):
            rows.append({"id": next_id, "text": f"headline {next_id}", "label": label, "story": f"st{s:04d}"})
            next_id += 1
    return pd.DataFrame(rows)


def _stories(parts: dict[str, pd.DataFrame]) -> dict[str, set[str]]:
    return {name: set(frame["story"]) for name, frame in parts.items()}


def test_no_story_in_two_splits_and_all_rows_kept() -> None:
    frame = synthetic_frame()
    parts, dropped = split_by_story(frame, seed=13, fractions=FRACTIONS)
    stories = _stories(parts)
    assert not stories["train"] & stories["validation"]
    assert not stories["train"] & stories["test"]
    assert not stories["validation"] & stories["test"]
    assert sum(len(p) for p in parts.values()) == len(frame)
    assert dropped == dict.fromkeys(SPLITS, 0)


def test_row_fractions_and_label_balance_close_to_target() -> None:
    frame = synthetic_frame(n_stories=800)
    parts, _ = split_by_story(frame, seed=1, fractions=FRACTIONS)
    for name in ("validation", "test"):
        share = len(parts[name]) / len(frame)
        # Whole stories of up to 60 rows: within about a story per label of the target.
        assert abs(share - 0.1) < 0.02, (name, share)
        for label in LABELS:
            label_share = (parts[name]["label"] == label).mean()
            assert abs(label_share - (frame["label"] == label).mean()) < 0.03


def test_deterministic_by_seed_and_independent_of_row_order() -> None:
    frame = synthetic_frame()
    first = assign_stories(frame, seed=13, fractions=FRACTIONS)
    again = assign_stories(frame.sample(frac=1.0, random_state=5), seed=13, fractions=FRACTIONS)
    other = assign_stories(frame, seed=14, fractions=FRACTIONS)
    assert first == again
    assert first != other


def test_zero_fraction_gives_empty_split() -> None:
    frame = synthetic_frame(n_stories=50)
    parts, _ = split_by_story(frame, seed=0, fractions=check_fractions(0.0, 0.2))
    assert parts["validation"].empty
    assert len(parts["test"]) > 0
    assert list(parts["validation"].columns) == list(frame.columns)


def test_one_story_per_label_stays_in_train() -> None:
    # A single story would overshoot a 10% quota by 90%: it must go to train, not test.
    frame = synthetic_frame(n_stories=4)
    parts, _ = split_by_story(frame, seed=0, fractions=FRACTIONS)
    assert len(parts["train"]) == len(frame)


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (-0.1, 0.1, r"--val-frac must be in \[0, 1\), got -0.1"),
        (0.5, 0.5, r"--val-frac \+ --test-frac must be below 1, got 1.0"),
        (0.1, 1.0, r"--test-frac must be in \[0, 1\), got 1.0"),
        (0.9, 0.2, r"--val-frac \+ --test-frac must be below 1, got 1.1"),
    ],
)
def test_bad_fractions_are_user_errors(val: float, test: float, message: str) -> None:
    with pytest.raises(UserError, match=message):
        check_fractions(val, test)


def test_duplicates_dropped_inside_a_split_only() -> None:
    frame = pd.DataFrame(
        {
            "id": [5, 1, 2, 3, 4],
            "text": ["same", "same", "same", "same", "other"],
            "label": ["business", "business", "health", "business", "business"],
            "story": ["a", "a", "a", "b", "a"],
        }
    )
    kept, dropped = drop_duplicates(frame)
    # (same, business) x3 -> the lowest id survives; (same, health) is a different pair.
    assert dropped == 2
    assert sorted(kept["id"]) == [1, 2, 4]

    # The same (text, label) in two stories landing in different splits is not a split duplicate.
    many = synthetic_frame(n_stories=200)
    many.loc[many.index[-1], "text"] = many.loc[many.index[0], "text"]
    many.loc[many.index[-1], "label"] = many.loc[many.index[0], "label"]
    _, dropped_per_split = split_by_story(many, seed=3, fractions=FRACTIONS)
    first_story, last_story = many["story"].iloc[0], many["story"].iloc[-1]
    assignment = assign_stories(many, seed=3, fractions=FRACTIONS)
    expected = 1 if assignment[first_story] == assignment[last_story] else 0
    assert sum(dropped_per_split.values()) == expected


def test_random_row_split_is_leaky_and_story_split_is_not() -> None:
    frame = synthetic_frame()
    leaky, _ = split_rows_randomly(frame, seed=13, fractions=FRACTIONS)
    assert sum(len(p) for p in leaky.values()) == len(frame)
    assert abs(len(leaky["test"]) - 0.1 * len(frame)) <= 1
    assert _stories(leaky)["train"] & _stories(leaky)["test"]
    again, _ = split_rows_randomly(frame, seed=13, fractions=FRACTIONS)
    assert all(again[name]["id"].tolist() == leaky[name]["id"].tolist() for name in SPLITS)


def test_empty_frame_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no valid rows"):
        split_by_story(synthetic_frame().iloc[:0], seed=0, fractions=FRACTIONS)


def test_real_rows_split_story_disjoint(real_rows_sample: tuple[str, ...]) -> None:
    frame = parse_lines(real_rows_sample).frame
    parts, dropped = split_by_story(frame, seed=13, fractions=FRACTIONS)
    stories = _stories(parts)
    assert not (stories["train"] & stories["test"]) and not (stories["train"] & stories["validation"])
    assert not stories["validation"] & stories["test"]
    assert sum(len(p) for p in parts.values()) + sum(dropped.values()) == len(frame)
    assert len(parts["test"]) > 0 and len(parts["validation"]) > 0
    for part in parts.values():
        assert not part.duplicated(["text", "label"]).any()


def test_time_split_never_puts_one_instant_in_two_splits() -> None:
    # 100 rows over 20 instants of 5 rows: the cuts fall between instants, in time order.
    frame = pd.DataFrame(
        {
            "id": range(100),
            "text": [f"t{i}" for i in range(100)],
            "label": ["a", "b"] * 50,
            "story": [str(i) for i in range(100)],
            "timestamp": [1_000 * (i % 20) for i in range(100)],
        }
    )
    parts, _ = split_by_time(frame.sample(frac=1.0, random_state=1), FRACTIONS, grouped=False)
    assert [len(parts[name]) for name in SPLITS] == [80, 10, 10]
    assert parts["train"]["timestamp"].max() < parts["validation"]["timestamp"].min()
    assert parts["validation"]["timestamp"].max() < parts["test"]["timestamp"].min()
    assert parts["test"]["id"].tolist() == sorted(parts["test"]["id"])
    parts, _ = split_by_time(frame, check_fractions(0.0, 0.2), grouped=False)
    assert parts["validation"].empty and len(parts["test"]) == 20
