"""``baseline.json``: what the model saw when it was trained, for the monitor to compare
production with (written by the training job into the serving archive's root).

Shipped beside ``train.py``. The monitor (a Lambda, which cannot import this folder) reads the
vocabulary sketch with ``textclf_api.logic.vocabulary``; its tokenizer and hash are the ones
below, and tests/unit/api/test_vocabulary.py writes a sketch here and reads it there so the two
cannot drift apart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BASELINE_FILE = "baseline.json"
#: 2^20 bits = 128 KiB: with ~60k distinct training words (the news corpus) one hash sets ~6 % of
#: the bits, so an unseen word reads as seen ~6 % of the time -- novelty is a trend, not a count.
SKETCH_BITS = 1 << 20
SKETCH_KIND = "hashed-unigram-bitset"
SKETCH_HASH = "blake2b-8"
#: Ten equal bins of the top probability over [0, 1].
CONFIDENCE_EDGES = [round(i / 10, 1) for i in range(11)]
_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (runs of word characters)."""
    return _WORD.findall(text.lower())


def token_bit(token: str, bits: int) -> int:
    """The sketch bit of ``token``: its 8-byte BLAKE2b, big-endian, modulo ``bits``."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "big") % bits


def vocabulary_sketch(texts: Iterable[str], bits: int = SKETCH_BITS) -> dict[str, Any]:
    """The set of words of ``texts`` as a bitset (bit i of byte i // 8 is ``1 << (i % 8)``)."""
    data = bytearray(bits // 8)
    for word in {w for text in texts for w in tokens(text)}:
        bit = token_bit(word, bits)
        data[bit // 8] |= 1 << (bit % 8)
    return {
        "kind": SKETCH_KIND,
        "bits": bits,
        "hash": SKETCH_HASH,
        "data": base64.b64encode(bytes(data)).decode("ascii"),
    }


def _shares(values: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    total = len(values)
    return {label: (sum(1 for v in values if v == label) / total if total else 0.0) for label in labels}


def build(
    *,
    labels: Sequence[str],
    probs: np.ndarray,
    true_labels: Sequence[str],
    valid_texts: Sequence[str],
    train_texts: Iterable[str],
    cascade_coverage: float | None,
) -> dict[str, Any]:
    """The baseline of a model whose validation probabilities (the served blend's) are ``probs``."""
    top = probs.max(axis=1) if len(probs) else np.zeros(0)
    predicted = [labels[int(i)] for i in probs.argmax(axis=1)] if len(probs) else []
    counts, _ = np.histogram(top, bins=CONFIDENCE_EDGES)
    lengths = np.array([len(tokens(t)) for t in valid_texts] or [0])
    return {
        "labels": list(labels),
        # What the model answered on validation: the live distribution's reference.
        "label_prior": _shares(predicted, labels),
        "true_label_prior": _shares(list(true_labels), labels),
        "confidence_histogram": {"edges": CONFIDENCE_EDGES, "counts": [int(c) for c in counts]},
        "mean_top_probability": float(top.mean()) if len(top) else None,
        "cascade_coverage": cascade_coverage,
        # Word tokens (the sketch's), not the model's subwords: the monitor has no tokenizer.
        "token_length_quantiles": {f"p{q}": float(np.percentile(lengths, q)) for q in (50, 90, 99)},
        "vocabulary_sketch": vocabulary_sketch(train_texts),
        "rows": len(probs),
        "source": "validation",
    }


def write(dest: Path, baseline: dict[str, Any]) -> Path:
    path = dest / BASELINE_FILE
    path.write_text(json.dumps(baseline) + "\n", encoding="utf-8")
    return path
