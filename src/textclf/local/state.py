"""What the local stack remembers across a restart or a crash: one folder, one sqlite database.

moto keeps everything in memory and has no file persistence of its own, so the stack records
what the control plane holds as it changes and puts it back into a fresh moto on start
(``textclf.local.recorder`` does both). sqlite (stdlib) is the store: every write is one
transaction (WAL, ``synchronous=FULL``), so a SIGKILL at any moment leaves the old or the new
state, never a torn one. S3 bodies are files named by their SHA-256 under ``blobs/`` (written to a
temporary name, fsynced, renamed) and written before the row that names them.

Folder layout (``<artifacts>/local-stack/state/``)::

    layout.json   {"layout": 1}: a folder of another layout is refused, never half-read
    state.db      s3_objects, dynamodb_items, sagemaker_calls (the registry, models, endpoint
                  configs: replayed in order), records (the local SageMaker's training jobs,
                  endpoints, transform jobs), events (EventBridge events not yet delivered)
    blobs/<sha256>
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf.errors import UserError

log = logging.getLogger(__name__)

LAYOUT_VERSION = 1
LAYOUT_FILE = "layout.json"
DATABASE = "state.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS s3_objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL, sha256 TEXT NOT NULL,
    head TEXT NOT NULL, PRIMARY KEY (bucket, key));
CREATE TABLE IF NOT EXISTS dynamodb_items (
    table_name TEXT NOT NULL, item_key TEXT NOT NULL, item TEXT NOT NULL,
    PRIMARY KEY (table_name, item_key));
CREATE TABLE IF NOT EXISTS sagemaker_calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS events (
    id TEXT NOT NULL, function TEXT NOT NULL, event TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (id, function));
"""


class StateError(UserError):
    """The state folder cannot be used (another layout, read-only, disk full): one line, exit 2."""


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    etag: str
    sha256: str
    head: dict[str, Any]  # ContentType, Metadata, ChecksumSHA256 (when S3 holds one)


def default_state_dir(artifacts: Path) -> Path:
    return artifacts / "local-stack" / "state"


class StateStore:
    """The state folder, opened (and checked) by :meth:`open`; thread-safe."""

    def __init__(self, folder: Path, db: sqlite3.Connection) -> None:
        self.folder = folder
        self._db = db
        self._lock = threading.Lock()

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: Path, *, fresh: bool = False) -> StateStore:
        """Open ``folder`` (created if absent); ``fresh`` discards what it holds first.

        Refuses, with one line and nothing written, a folder of another layout, a folder it cannot
        write (read-only, disk full)."""
        try:
            if fresh and folder.exists():
                shutil.rmtree(folder)
            _check_layout(folder)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "blobs").mkdir(exist_ok=True)
            _probe(folder)
            if not (folder / LAYOUT_FILE).exists():
                write_atomic(folder / LAYOUT_FILE, json.dumps({"layout": LAYOUT_VERSION}).encode() + b"\n")
            db = sqlite3.connect(folder / DATABASE, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot use the local stack's state folder {folder}: {_reason(exc)}") from exc
        return cls(folder, db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args))

    # -- S3 --------------------------------------------------------------------------------

    def s3_etags(self, bucket: str) -> dict[str, str]:
        return dict(self._rows("SELECT key, etag FROM s3_objects WHERE bucket = ?", bucket))

    def put_object(self, bucket: str, key: str, etag: str, body: bytes, head: dict[str, Any]) -> None:
        sha256 = hashlib.sha256(body).hexdigest()
        blob = self.folder / "blobs" / sha256
        if not blob.exists():
            write_atomic(blob, body)  # before the row that names it
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO s3_objects VALUES (?, ?, ?, ?, ?)",
                (bucket, key, etag, sha256, json.dumps(head)),
            )

    def delete_objects(self, bucket: str, keys: list[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM s3_objects WHERE bucket = ? AND key = ?", [(bucket, k) for k in keys])

    def objects(self) -> list[StoredObject]:
        rows = self._rows("SELECT bucket, key, etag, sha256, head FROM s3_objects ORDER BY bucket, key")
        return [StoredObject(b, k, e, s, json.loads(h)) for b, k, e, s, h in rows]

    def blob(self, sha256: str) -> bytes:
        return (self.folder / "blobs" / sha256).read_bytes()

    def collect_blobs(self) -> int:
        """Remove blobs no object names (left by an overwrite or a crash between blob and row)."""
        used = {row[0] for row in self._rows("SELECT sha256 FROM s3_objects")}
        removed = 0
        for path in (self.folder / "blobs").iterdir():
            if path.name not in used:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- DynamoDB --------------------------------------------------------------------------

    def replace_table(self, table: str, items: dict[str, dict[str, Any]]) -> None:
        """The table's items (``{key: item}``, DynamoDB JSON), replacing what was stored."""
        with self._transaction() as db:
            db.execute("DELETE FROM dynamodb_items WHERE table_name = ?", (table,))
            db.executemany(
                "INSERT INTO dynamodb_items VALUES (?, ?, ?)",
                [(table, key, json.dumps(item)) for key, item in items.items()],
            )

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        rows = self._rows("SELECT table_name, item FROM dynamodb_items ORDER BY table_name, item_key")
        return [(table, json.loads(item)) for table, item in rows]

    # -- SageMaker calls moto answered (replayed in order) ---------------------------------

    def add_call(self, target: str, body: bytes) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO sagemaker_calls (target, body) VALUES (?, ?)", (target, body))

    def calls(self) -> list[tuple[str, bytes]]:
        return [(t, bytes(b)) for t, b in self._rows("SELECT target, body FROM sagemaker_calls ORDER BY seq")]

    # -- the local SageMaker's own records -------------------------------------------------

    def save(self, kind: str, name: str, record: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", (kind, name, json.dumps(record)))

    def forget(self, kind: str, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM records WHERE kind = ? AND name = ?", (kind, name))

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [
            json.loads(b)
            for (b,) in self._rows("SELECT body FROM records WHERE kind = ? ORDER BY name", kind)
        ]

    # -- events not yet delivered ----------------------------------------------------------

    def add_event(self, event_id: str, function: str, event: dict[str, Any]) -> None:
        with self._transaction() as db:
            (seq,) = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events").fetchone()
            db.execute(
                "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
                (event_id, function, json.dumps(event), seq),
            )

    def event_done(self, event_id: str, function: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM events WHERE id = ? AND function = ?", (event_id, function))

    def pending_events(self) -> list[tuple[str, dict[str, Any]]]:
        rows = self._rows("SELECT function, event FROM events ORDER BY seq")
        return [(function, json.loads(event)) for function, event in rows]


def write_atomic(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` or what it held before, whatever happens (temp file, fsync, rename)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def _check_layout(folder: Path) -> None:
    if not folder.exists() or not any(folder.iterdir()):
        return
    fresh = "start with `textclf serve --fresh` (make serve FRESH=1) to discard it"
    try:
        layout = json.loads((folder / LAYOUT_FILE).read_text(encoding="utf-8")).get("layout")
    except FileNotFoundError:
        layout = None
    except (ValueError, AttributeError):
        raise StateError(
            f"the local stack's state folder {folder} has an unreadable {LAYOUT_FILE}; {fresh}"
        ) from None
    if layout != LAYOUT_VERSION:
        written = "no layout number" if layout is None else f"layout {layout}"
        raise StateError(
            f"the local stack's state folder {folder} was written by another version of textclf "
            f"({written}; this one reads layout {LAYOUT_VERSION}); {fresh}"
        )


def _probe(folder: Path) -> None:
    """Fail now, with nothing overwritten, when the folder cannot take a write (read-only, full)."""
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".probe.")
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(temp)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
