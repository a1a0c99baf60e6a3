"""The vocabulary sketch across the deploy boundary: model/baseline.py writes it in the training
job, textclf_api.logic.vocabulary reads it in the monitor Lambda."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from textclf_api.logic import vocabulary

from textclf import config

AWKWARD = [
    "Fed's Yellen: rates to stay LOW — for now",
    "Café owners in São Paulo brace for the World Cup",
    'iPhone 6 rumours: 4.7" screen, A8 chip, $199',
    "Ebola outbreak: WHO says 1,200 dead; Guinea/Sierra-Leone border",
    "naïve ünïcödé Straße ΣΊΣΥΦΟΣ 東京 日本",
    "under_score and tabs\tand\nnewlines",
]


def shipped_baseline() -> ModuleType:
    """model/baseline.py as the training job imports it (the Lambda package cannot)."""
    spec = importlib.util.spec_from_file_location("shipped_baseline", config.model_code_dir() / "baseline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_writer_and_reader_tokenize_and_hash_alike() -> None:
    shipped = shipped_baseline()
    for text in AWKWARD:
        assert shipped.tokens(text) == vocabulary.tokens(text)
        for word in shipped.tokens(text):
            assert shipped.token_bit(word, shipped.SKETCH_BITS) == vocabulary.token_bit(
                word, shipped.SKETCH_BITS
            )
    assert shipped.SKETCH_KIND == vocabulary.KIND and shipped.SKETCH_HASH == vocabulary.HASH


def test_a_sketch_written_by_the_job_is_read_by_the_monitor() -> None:
    shipped = shipped_baseline()
    sketch = vocabulary.Sketch.of(shipped.vocabulary_sketch(AWKWARD[:4]))
    assert sketch.bits == shipped.SKETCH_BITS
    assert sketch.unseen(AWKWARD[:4]) == (0, sum(len(vocabulary.tokens(t)) for t in AWKWARD[:4]))
    missing, total = sketch.unseen(["Yellen says RATES stay low", "completely novel zzyzx qwghlm"])
    # Every word of the first text was seen (case folded), none of the second's four.
    assert total == 9 and missing == 4


def test_an_unknown_sketch_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown vocabulary sketch"):
        vocabulary.Sketch.of({"kind": "count-min", "hash": "blake2b-8", "bits": 8, "data": "AA=="})
    with pytest.raises(ValueError, match="bits"):
        vocabulary.Sketch.of({"kind": vocabulary.KIND, "hash": vocabulary.HASH, "bits": 64, "data": "AA=="})
