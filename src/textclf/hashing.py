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


#: ``model.tar.gz`` -> ``model.tar.gz.sha256`` (``sha256sum`` format): the digest recorded when the
#: archive was written, which whoever serves it checks (``textclf.serving.model_store``).
CHECKSUM_SUFFIX = ".sha256"


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def write_checksum(path: Path, digest: str | None = None) -> str:
    """Record ``path``'s SHA-256 beside it (``sha256sum -c`` can check it) and return it."""
    digest = digest or sha256_file(path)
    checksum_path(path).write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    return digest


def recorded_checksum(path: Path) -> str | None:
    """The SHA-256 recorded beside ``path``, or None when there is no record."""
    record = checksum_path(path)
    if not record.is_file():
        return None
    fields = record.read_text(encoding="utf-8").split()
    return fields[0].lower() if fields else None
