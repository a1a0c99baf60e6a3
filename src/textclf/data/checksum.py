"""SHA-256 helpers: file hashing and the ``<file>.sha256`` sidecar kept beside cached files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from textclf.errors import UserError
from textclf.hashing import sha256_file

__all__ = [
    "folder_files",
    "normalize_sha256",
    "read_sidecar",
    "sha256_file",
    "sha256_source",
    "sidecar_path",
    "write_sidecar",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def normalize_sha256(value: str) -> str:
    """Validate a user-given sha256 (``--sha256``); accepts upper case and a ``sha256:`` prefix."""
    hexdigest = value.strip().lower().removeprefix("sha256:")
    if not _HEX64.match(hexdigest):
        raise UserError(f"--sha256 must be 64 hex digits, got {value!r}")
    return hexdigest


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def write_sidecar(path: Path, hexdigest: str) -> None:
    # Same line format as `sha256sum`, so `sha256sum -c` can check the cache by hand.
    sidecar_path(path).write_text(f"{hexdigest}  {path.name}\n", encoding="utf-8")


def read_sidecar(path: Path) -> str | None:
    """The digest recorded for ``path``, or None if the sidecar is missing or unreadable."""
    try:
        first = sidecar_path(path).read_text(encoding="utf-8").split()
    except OSError:
        return None
    if not first or not _HEX64.match(first[0]):
        return None
    return first[0]


def folder_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (hidden ones left out: ``.DS_Store``, editor files), sorted."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def sha256_source(path: Path) -> str:
    """A file's sha256; for a folder (a datasets save_to_disk), the hash of its files' paths and hashes."""
    if not path.is_dir():
        return sha256_file(path)
    listing = [[f.relative_to(path).as_posix(), sha256_file(f)] for f in folder_files(path)]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()
