"""SHA-256 of a file, read in 1 MiB chunks: every cache key, reuse fingerprint and content address.

Its own module (no pandas behind it) so the CLI's light commands can import it cheaply.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex digest of ``path``'s bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
