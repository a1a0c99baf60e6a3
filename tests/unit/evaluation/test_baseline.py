"""The TF-IDF + logistic-regression baseline: fits, probability layout, cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from textclf.evaluation import baseline

LABELS = ["business", "science_and_technology", "entertainment", "health"]


def _frame(tiny_data: Path, split: str) -> tuple[list[str], np.ndarray]:
    frame = pd.read_parquet(tiny_data / split / "data.parquet")
    return frame["text"].tolist(), frame["label"].map({n: i for i, n in enumerate(LABELS)}).to_numpy()


def test_baseline_learns_real_headlines(tiny_data: Path) -> None:
    texts, y = _frame(tiny_data, "train")
    model = baseline.train_baseline(texts, y)
    probs = baseline.predict_proba(model, texts, len(LABELS))
    assert probs.shape == (len(texts), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # Weakly regularised on a few hundred rows: it must fit its own training data.
    assert np.mean(probs.argmax(axis=1) == y) > 0.9
    test_texts, y_test = _frame(tiny_data, "test")
    test_probs = baseline.predict_proba(model, test_texts, len(LABELS))
    assert np.mean(test_probs.argmax(axis=1) == y_test) > 0.25  # better than chance on unseen stories


def test_probability_columns_follow_label_ids_when_a_class_is_missing() -> None:
    texts = ["stocks rally", "stocks fall", "new iphone", "iphone phone", "movie star", "movie festival"]
    y = np.array([0, 0, 1, 1, 2, 2])  # no class 3
    model = baseline.train_baseline(texts, y)
    probs = baseline.predict_proba(model, ["iphone phone"], 4)
    assert probs[0, 3] == 0.0
    assert probs[0].argmax() == 1


def test_cache_reuses_the_fit(tiny_data: Path, tmp_path: Path) -> None:
    texts, y = _frame(tiny_data, "train")
    train_file = tiny_data / "train" / "data.parquet"
    first, seconds = baseline.load_or_train(train_file, texts, y, tmp_path)
    assert seconds is not None
    second, cached_seconds = baseline.load_or_train(train_file, texts, y, tmp_path)
    assert cached_seconds is None
    sample = texts[:20]
    np.testing.assert_allclose(
        baseline.predict_proba(first, sample, 4), baseline.predict_proba(second, sample, 4)
    )
    # Another seed is another fit (and replaces the cached file).
    _, other = baseline.load_or_train(train_file, texts, y, tmp_path, seed=5)
    assert other is not None
    assert len(list(tmp_path.glob("baseline-*.pkl"))) == 1


def test_two_labels_give_two_probability_columns_and_anchor_ids() -> None:
    """Binary scikit-learn models answer one decision column; the report needs one per label."""
    texts = ["stocks rally", "stocks fall", "bank profit", "movie star", "movie festival", "film award"]
    y = np.array([0, 0, 0, 1, 1, 1])
    model = baseline.train_baseline(texts, y)
    assert model.decision_function(["stocks"]).shape == (1,)  # what the helpers must not trip on
    probs = baseline.predict_proba(model, ["stocks up", "movie night"], 2)
    assert probs.shape == (2, 2) and probs.argmax(1).tolist() == [0, 1]
    anchor = baseline.train_baseline(texts, y, recipe=baseline.ANCHOR)
    assert baseline.predict(anchor, ["stocks up", "movie night", "bank"]).tolist() == [0, 1, 0]


def test_each_recipe_keeps_its_own_cached_fit(tiny_data: Path, tmp_path: Path) -> None:
    texts, y = _frame(tiny_data, "train")
    train_file = tiny_data / "train" / "data.parquet"
    baseline.load_or_train(train_file, texts, y, tmp_path)
    fitted, seconds = baseline.load_or_train(train_file, texts, y, tmp_path, recipe=baseline.ANCHOR)
    assert seconds is not None and len(list(tmp_path.glob("*.pkl"))) == 2
    again, cached = baseline.load_or_train(train_file, texts, y, tmp_path, recipe=baseline.ANCHOR)
    assert cached is None
    assert (baseline.predict(again, texts) == baseline.predict(fitted, texts)).all()
    assert baseline.load_or_train(train_file, texts, y, tmp_path)[1] is None  # the LR fit is still there
