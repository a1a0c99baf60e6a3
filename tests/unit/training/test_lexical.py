"""``model/lexical.py``: the TF-IDF head is scikit-learn's recipe, fitted and served identically."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from textclf.labels import LABELS
from textclf.packaging import load_inference_module

TEXTS = [
    "Fed's Yellen: rates stay low -- markets rally",
    "Apple unveils iPhone 6; apple shares rise",
    "Ebola outbreak: WHO warns of spread",
    "Box office: 'Transformers' tops, again and again and again",
    "a",  # no word of two characters: no features, bias only
    "Éléphant café crème brûlée",  # non-ASCII words
]


@pytest.fixture(scope="module")
def lexical() -> ModuleType:
    # The copy model/inference.py loads from its own folder: the module the endpoint serves with.
    module: ModuleType = load_inference_module().lexical
    return module


@pytest.fixture(scope="module")
def rows(tiny_data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        pd.read_parquet(tiny_data / "train" / "data.parquet"),
        pd.read_parquet(tiny_data / "validation" / "data.parquet"),
    )


def test_ngrams_are_lowercased_words_and_pairs(lexical: ModuleType) -> None:
    assert lexical.ngrams("Fed's Yellen: RATES a b low") == [
        "fed",
        "yellen",
        "rates",
        "low",
        "fed yellen",
        "yellen rates",
        "rates low",
    ]


def test_features_equal_scikit_learn_tfidf(
    lexical: ModuleType, rows: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, valid = rows
    texts = train["text"].tolist() + TEXTS
    ours = lexical.Vectorizer.fit(texts, min_df=2)
    theirs = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(texts)
    assert ours.vocab == sorted(theirs.vocabulary_)
    probe = valid["text"].tolist()[:50] + TEXTS
    feats = ours.transform(probe)
    dense = np.zeros((feats.rows, len(ours.vocab)))
    for r in range(feats.rows):
        span = slice(feats.indptr[r], feats.indptr[r + 1])
        dense[r, feats.indices[span]] = feats.values[span]
    want = theirs.transform(probe).toarray()[:, [theirs.vocabulary_[t] for t in ours.vocab]]
    np.testing.assert_allclose(dense, want, atol=1e-6)


def test_fit_matches_scikit_learn_logistic_regression(
    lexical: ModuleType, rows: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, valid = rows
    l2i = {name: i for i, name in enumerate(LABELS)}
    y = train["label"].map(l2i).to_numpy()
    vectorizer, weight, bias = lexical.fit(train["text"].tolist(), y, len(LABELS), c=3.0, max_iter=300)
    head = lexical.LexicalHead(vectorizer, weight, bias, (0.0, 1.0))
    ours = head.logits(valid["text"].tolist())
    features = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    reference = LogisticRegression(C=3.0, max_iter=2000, tol=1e-8).fit(
        features.fit_transform(train["text"]), y
    )
    theirs = reference.decision_function(features.transform(valid["text"]))
    # Same convex objective, different solvers: the optima agree closely.
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.97
    ours_p, theirs_p = (
        lexical.blend(np.full_like(ours, 0.25), ours, 0.0, 1.0),
        reference.predict_proba(features.transform(valid["text"])),
    )
    assert np.abs(ours_p - theirs_p).max() < 0.05


def test_a_binary_head_is_scikit_learns_binary_logistic_regression(
    lexical: ModuleType, rows: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Two labels: two softmax columns, not scikit-learn's one logistic column. With the L2 on both
    columns the optimum is w1 = -w0 = d / 2, i.e. logistic regression on d with C' = 2C."""
    train, valid = (frame[frame["label"].isin(["business", "health"])] for frame in rows)
    y = (train["label"] == "health").to_numpy(dtype=np.int64)
    vectorizer, weight, bias = lexical.fit(train["text"].tolist(), y, 2, c=3.0, max_iter=300)
    assert weight.shape == (len(vectorizer.vocab), 2) and bias.shape == (2,)
    head = lexical.LexicalHead(vectorizer, weight, bias, (0.5, 1.0))
    ours = head.probabilities(valid["text"].tolist())
    assert ours.shape == (len(valid), 2)
    features = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    reference = LogisticRegression(C=6.0, max_iter=2000, tol=1e-8).fit(
        features.fit_transform(train["text"]), y
    )
    theirs = reference.predict_proba(features.transform(valid["text"]))
    assert np.abs(ours - theirs).max() < 1e-3
    # The blend, its choice on validation and the explanation all work on two columns.
    y_valid = (valid["label"] == "health").to_numpy(dtype=np.int64)
    transformer = np.full((len(valid), 2), 0.5)
    w, _t, scores = lexical.choose_blend(transformer, head.logits(valid["text"].tolist()), y_valid)
    assert (
        w < 1.0 and scores["blend_accuracy"] == scores["lexical_accuracy"] > 0.8
    )  # a coin flip adds nothing
    blended = head.combine(transformer, valid["text"].tolist())
    assert blended.shape == (len(valid), 2) and np.allclose(blended.sum(1), 1.0)
    pairs = head.contributions(valid["text"].iloc[0], 1)
    assert pairs and all(isinstance(g, str) for g, _ in pairs)


def test_blend_weight_one_is_the_transformer_alone(lexical: ModuleType) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=10)
    logits = rng.normal(size=(10, 4)) * 5
    np.testing.assert_allclose(lexical.blend(probs, logits, 1.0, 1.0), probs, rtol=1e-9)
    lexical_only = lexical.blend(probs, logits, 0.0, 1.0)
    np.testing.assert_allclose(lexical_only.sum(1), 1.0)
    assert (lexical_only.argmax(1) == logits.argmax(1)).all()


def test_choose_blend_finds_the_complementary_mix(lexical: ModuleType) -> None:
    """Each expert is right on a different half; only a mix of the two can be right on both."""
    y = np.array([0, 1] * 50)
    probs = np.where(np.arange(100)[:, None] < 50, np.eye(2)[y] * 0.6 + 0.2, np.eye(2)[1 - y] * 0.1 + 0.45)
    logits = np.where(np.arange(100)[:, None] < 50, np.eye(2)[1 - y] * 0.2, np.eye(2)[y] * 3.0)
    w, t, scores = lexical.choose_blend(probs, logits, y)
    assert scores["transformer_accuracy"] == 0.5 and scores["lexical_accuracy"] == 0.5
    assert scores["blend_accuracy"] == 1.0
    assert 0.0 < w < 1.0 and t > 0
    # blend_min_weight: the transformer keeps at least that weight, whatever validation prefers.
    floored, _, floored_scores = lexical.choose_blend(probs, logits, y, min_weight=1.0)
    assert floored == 1.0 and floored_scores["blend_accuracy"] == 0.5  # the transformer alone


def test_save_and_load_round_trip(lexical: ModuleType, tmp_path: Path) -> None:
    vectorizer = lexical.Vectorizer.fit(TEXTS * 2)
    rng = np.random.default_rng(1)
    head = lexical.LexicalHead(
        vectorizer, rng.normal(size=(len(vectorizer.vocab), 4)), rng.normal(size=4), (0.4, 1.3)
    )
    head.save(tmp_path)
    loaded = lexical.LexicalHead.load(tmp_path)
    assert loaded.vectorizer.vocab == vectorizer.vocab
    assert (loaded.blend_weight, loaded.temperature) == (0.4, 1.3)
    np.testing.assert_allclose(loaded.logits(TEXTS), head.logits(TEXTS), rtol=1e-6)
    assert np.allclose(loaded.logits(["a"]), head.bias)  # no known n-gram: the bias alone


def test_load_without_a_head_and_with_half_a_head(lexical: ModuleType, tmp_path: Path) -> None:
    assert lexical.LexicalHead.load(tmp_path) is None
    (tmp_path / lexical.VOCAB_FILE).write_text("word\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="only one of"):
        lexical.LexicalHead.load(tmp_path)
