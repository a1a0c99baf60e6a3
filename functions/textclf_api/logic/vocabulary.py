"""The vocabulary sketch of ``baseline.json``, read by the monitor: which words of production
texts the model never saw in training.

The training job writes the sketch with ``model/baseline.py``, which this package cannot import
(the Lambda ships ``textclf_api`` only, the training job ``model/``). The tokenizer and hash are
therefore stated in both places, and tests/unit/api/test_vocabulary.py writes a sketch with one
and reads it with the other on awkward texts, so they cannot silently disagree.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KIND = "hashed-unigram-bitset"
HASH = "blake2b-8"
_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (runs of word characters): model/baseline.py's."""
    return _WORD.findall(text.lower())


def token_bit(token: str, bits: int) -> int:
    """model/baseline.py's bit of ``token``: its 8-byte BLAKE2b, big-endian, modulo ``bits``."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "big") % bits


@dataclass(frozen=True)
class Sketch:
    bits: int
    data: bytes

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> Sketch:
        """The sketch of a baseline's ``vocabulary_sketch``; ValueError if it is another kind."""
        if record.get("kind") != KIND or record.get("hash") != HASH:
            raise ValueError(f"unknown vocabulary sketch {record.get('kind')!r}/{record.get('hash')!r}")
        bits = int(record["bits"])
        data = base64.b64decode(str(record["data"]))
        if bits <= 0 or len(data) * 8 < bits:
            raise ValueError(f"the vocabulary sketch holds {len(data) * 8} bits, not {bits}")
        return cls(bits, data)

    def __contains__(self, token: object) -> bool:
        bit = token_bit(str(token), self.bits)
        return bool(self.data[bit // 8] & (1 << (bit % 8)))

    def unseen(self, texts: Iterable[str]) -> tuple[int, int]:
        """(tokens not in the sketch, tokens) over ``texts``, every occurrence counted."""
        missing = total = 0
        for text in texts:
            for word in tokens(text):
                total += 1
                missing += word not in self
        return missing, total
