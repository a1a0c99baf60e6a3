"""Raw file access shared by the news parser and the generic readers: a file or a zip's data member."""

from __future__ import annotations

import zipfile
from pathlib import Path

from textclf.config import UCI_MEMBER
from textclf.errors import UserError

#: Members a zip may hold when it holds no newsCorpora.csv.
ZIP_MEMBER_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")


def zip_member(archive: zipfile.ZipFile, path: Path) -> str:
    """newsCorpora.csv wherever it lies in the archive, else its one table file."""
    names = [n for n in archive.namelist() if not n.endswith("/")]
    for name in names:
        if name.rsplit("/", 1)[-1] == UCI_MEMBER:
            return name
    tables = [n for n in names if n.lower().endswith(ZIP_MEMBER_SUFFIXES)]
    if len(tables) == 1:
        return tables[0]
    raise UserError(
        f"{path}: no {UCI_MEMBER} in the archive and not exactly one .csv/.tsv/.jsonl member "
        f"(members: {', '.join(names[:10]) or 'none'})"
    )


def read_bytes(path: Path) -> tuple[bytes, str]:
    """The bytes of a file, or of a ``.zip``'s data member; and the name of what was read."""
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    if path.suffix.lower() != ".zip":
        return path.read_bytes(), path.name
    try:
        with zipfile.ZipFile(path) as archive:
            member = zip_member(archive, path)
            return archive.read(member), member.rsplit("/", 1)[-1]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable zip archive ({exc})") from exc


def first_line(path: Path) -> tuple[str, str]:
    """The first line (decoded leniently) and the name of the file or zip member holding it."""
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    if path.suffix.lower() != ".zip":
        with path.open("rb") as handle:
            return handle.readline().decode("utf-8", "replace"), path.name
    try:
        with zipfile.ZipFile(path) as archive:
            member = zip_member(archive, path)
            with archive.open(member) as handle:
                return handle.readline().decode("utf-8", "replace"), member.rsplit("/", 1)[-1]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable zip archive ({exc})") from exc
