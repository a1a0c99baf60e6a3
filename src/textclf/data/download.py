"""Fetch the raw data: a URL (default: the official UCI archive) or an ``s3://`` object into the
user cache, or a local file or folder.

The official archive's sha256 is not published, so a download is trusted when it is a
complete zip holding ``newsCorpora.csv`` (and matches ``--sha256`` when the user pins one).
Its digest is then stored in a sidecar and every later cache hit is re-hashed against it,
so a truncated or tampered cache file is noticed and fetched again rather than used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import platformdirs
import requests
from tqdm import tqdm

from textclf.config import UCI_MEMBER
from textclf.data.checksum import read_sidecar, sha256_file, sha256_source, sidecar_path, write_sidecar
from textclf.errors import UserError

log = logging.getLogger(__name__)

#: Seconds to wait for a TCP connection: offline, the command should fail in seconds, not minutes.
CONNECT_TIMEOUT_S = 5.0
#: Seconds of silence tolerated while reading the body.
READ_TIMEOUT_S = 60.0
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    """A raw corpus file on disk and where it came from."""

    path: Path
    sha256: str
    origin: str  # the URL or the local path as given
    cached: bool = False  # True when a URL was served from the cache without downloading


def is_url(source: str) -> bool:
    return urlparse(source).scheme in ("http", "https")


def default_cache_dir() -> Path:
    """``<user cache dir>/textclf/downloads`` (``TEXTCLF_CACHE_DIR`` overrides the base)."""
    base = os.environ.get("TEXTCLF_CACHE_DIR")
    root = Path(base) if base else Path(platformdirs.user_cache_dir("textclf"))
    return root / "downloads"


def cache_path_for(url: str, cache_dir: Path) -> Path:
    # Prefix with a hash of the URL: two URLs ending in the same file name must not collide.
    name = Path(urlparse(url).path).name or "download"
    return cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def check_archive(path: Path) -> None:
    """Raise UserError unless ``path`` is an intact zip holding the corpus member."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [n.rsplit("/", 1)[-1] for n in archive.namelist()]
            if UCI_MEMBER not in members:
                raise UserError(f"{path.name}: the archive holds no {UCI_MEMBER}")
            bad = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise UserError(f"{path.name}: not a complete zip archive ({exc})") from exc
    if bad is not None:
        raise UserError(f"{path.name}: member {bad} fails its CRC check (corrupt download)")


def _download(url: str, dest: Path, *, progress: bool) -> None:
    part = dest.with_name(dest.name + ".part")
    try:
        with requests.get(url, stream=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as resp:
            if resp.status_code != 200:
                raise UserError(f"download failed: {url} answered HTTP {resp.status_code} {resp.reason}")
            total = int(resp.headers.get("Content-Length") or 0) or None
            dest.parent.mkdir(parents=True, exist_ok=True)
            with (
                part.open("wb") as fh,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=f"download {dest.name.split('-', 1)[-1]}",
                    disable=not progress,
                ) as bar,
            ):
                for chunk in resp.iter_content(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
            if total is not None and part.stat().st_size != total:
                raise UserError(f"download truncated: got {part.stat().st_size} of {total} bytes from {url}")
    except requests.exceptions.ConnectionError as exc:
        part.unlink(missing_ok=True)
        raise UserError(
            f"cannot reach {urlparse(url).netloc} (no network?): use --source with a local "
            f".zip or newsCorpora.csv ({type(exc).__name__})"
        ) from exc
    except requests.exceptions.Timeout as exc:
        part.unlink(missing_ok=True)
        raise UserError(f"download timed out: {url}; use --source with a local copy") from exc
    except requests.exceptions.RequestException as exc:
        part.unlink(missing_ok=True)
        raise UserError(f"download failed: {url} ({exc})") from exc
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    # Rename only once complete, so an interrupted download never looks like a cache entry.
    os.replace(part, dest)


def _verified_cache_hit(path: Path, expected: str | None) -> str | None:
    """The digest of a usable cached file, or None when it must be (re)downloaded."""
    if not path.is_file():
        return None
    recorded = read_sidecar(path)
    if recorded is None:
        log.warning("%s: no checksum sidecar; downloading again", path)
        return None
    actual = sha256_file(path)
    if actual != recorded:
        log.warning("%s: sha256 %s does not match its sidecar %s; downloading again", path, actual, recorded)
        return None
    if expected is not None and actual != expected:
        log.warning("%s: cached sha256 %s is not the pinned %s; downloading again", path, actual, expected)
        return None
    return actual


def fetch_url(
    url: str, *, cache_dir: Path | None = None, sha256: str | None = None, progress: bool = True
) -> Source:
    """Download ``url`` into the cache (or reuse a verified cached copy)."""
    dest = cache_path_for(url, cache_dir or default_cache_dir())
    hit = _verified_cache_hit(dest, sha256)
    if hit is not None:
        log.info("using cached %s (sha256 verified)", dest)
        return Source(path=dest, sha256=hit, origin=url, cached=True)
    sidecar_path(dest).unlink(missing_ok=True)
    _download(url, dest, progress=progress)
    try:
        actual = sha256_file(dest)
        if sha256 is not None and actual != sha256:
            raise UserError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}")
        check_archive(dest)
    except UserError:
        # A bad file must not stay where the next run would find it.
        dest.unlink(missing_ok=True)
        raise
    write_sidecar(dest, actual)
    return Source(path=dest, sha256=actual, origin=url)


def resolve_source(
    source: str,
    *,
    cache_dir: Path | None = None,
    sha256: str | None = None,
    progress: bool = True,
    s3_client: Any = None,
) -> Source:
    """A URL is downloaded/cached; ``s3://`` is copied into the cache with ``s3_client``; a local
    path must be a file or a folder (its format is told later, by :func:`inputs.detect_format`)."""
    if is_url(source):
        return fetch_url(source, cache_dir=cache_dir, sha256=sha256, progress=progress)
    if source.startswith("s3://"):
        from textclf.data.s3 import fetch_s3

        path = fetch_s3(source, (cache_dir or default_cache_dir()) / "s3", client=s3_client)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"--source: no such file or folder: {source}")
    actual = sha256_source(path)
    if sha256 is not None and actual != sha256:
        raise UserError(f"checksum mismatch for {source}: expected sha256 {sha256}, got {actual}")
    return Source(
        path=path.resolve(), sha256=actual, origin=source if source.startswith("s3://") else str(path)
    )
