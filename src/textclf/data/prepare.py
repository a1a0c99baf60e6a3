"""``textclf data``: raw corpus -> validated, STORY-split parquet files plus a manifest.

Layout (DESIGN.md "Processed data")::

    <out>/manifest.json  <out>/labels.json  <out>/<split>/data.parquet  <out>/<split>/labels.json

The manifest is written last and removed first, so a directory holding one is complete.
It records a *recipe* (source sha256, seed, fractions, format version); a re-run with the
same recipe whose files still hash as recorded reuses the output instead of rebuilding it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from textclf import __version__
from textclf.data.checksum import sha256_file
from textclf.data.download import Source, is_url, resolve_source
from textclf.data.parse import COLUMNS, SCHEMA, parse_file
from textclf.data.split import SPLITS, check_fractions, split_by_story
from textclf.errors import UserError
from textclf.labels import LABELS

log = logging.getLogger(__name__)

#: Bump when the output files change meaning or layout, so old outputs are rebuilt, not reused.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LABELS_FILE = "labels.json"
DATA_FILE = "data.parquet"


@dataclass(frozen=True)
class Prepared:
    out: Path
    manifest: dict[str, Any]
    reused: bool
    source: Source
    seconds: float


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_json(path: Path, payload: object) -> None:
    _atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode())


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame.loc[:, list(COLUMNS)], schema=SCHEMA, preserve_index=False)
    # Drop pandas' schema metadata: it embeds the pandas version, which would change the file
    # bytes (and the content address) between otherwise identical runs.
    table = table.replace_schema_metadata(None)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def recipe(source_sha256: str, seed: int, fractions: dict[str, float]) -> dict[str, Any]:
    """Everything that determines the output; equal recipes give byte-identical data files."""
    return {
        "format_version": FORMAT_VERSION,
        "source_sha256": source_sha256,
        "seed": seed,
        "fractions": fractions,
        "split": "story",
        "dedup": "text+label within split",
    }


def dataset_sha256(source_sha256: str, files: dict[str, str]) -> str:
    """Content address of a prepared dataset: the raw file plus every written file's hash."""
    blob = json.dumps({"source": source_sha256, "files": files}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def load_manifest(out: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _reusable(out: Path, want: dict[str, Any]) -> dict[str, Any] | None:
    manifest = load_manifest(out)
    if manifest is None or manifest.get("recipe") != want:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for rel, digest in files.items():
        path = out / rel
        # Hashing ~25 MB of parquet costs well under a second and catches edited files.
        if not path.is_file() or sha256_file(path) != digest:
            log.info("%s changed since it was written; rebuilding", path)
            return None
    return manifest


def _raw_name(source: Source) -> str:
    if is_url(source.origin):
        return Path(urlparse(source.origin).path).name or source.path.name
    return source.path.name


def _split_counts(frame: pd.DataFrame) -> dict[str, Any]:
    per_label = frame["label"].value_counts()
    return {
        "rows": len(frame),
        "stories": int(frame["story"].nunique()),
        "labels": {label: int(per_label.get(label, 0)) for label in LABELS},
    }


def _count_in(texts: pd.Series, value_set: pa.Array) -> int:
    mask = pc.is_in(pa.array(texts, type=pa.string()), value_set=value_set)
    return int(pc.sum(mask).as_py() or 0)


def prepare(
    source: str,
    out: Path,
    *,
    seed: int = 13,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    sha256: str | None = None,
    force: bool = False,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Prepared:
    """Build (or reuse) the processed dataset in ``out`` from ``source`` (URL or local file)."""
    started = time.perf_counter()
    fractions = check_fractions(val_frac, test_frac)
    src = resolve_source(source, cache_dir=cache_dir, sha256=sha256, progress=progress)
    want = recipe(src.sha256, seed, fractions)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if not force:
        existing = _reusable(out, want)
        if existing is not None:
            return Prepared(out, existing, True, src, time.perf_counter() - started)

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    parsed = parse_file(src.path)
    if parsed.frame.empty:
        raise UserError(
            f"{src.origin}: no valid rows out of {parsed.rows_read} "
            f"(skipped: {parsed.skipped or 'none'}); is it a newsCorpora.csv-format file?"
        )
    parts, dropped = split_by_story(parsed.frame, seed, fractions)

    files: dict[str, str] = {}
    labels_bytes = (json.dumps(list(LABELS)) + "\n").encode()
    _atomic_write_bytes(out / LABELS_FILE, labels_bytes)
    files[LABELS_FILE] = hashlib.sha256(labels_bytes).hexdigest()
    for name in SPLITS:
        split_dir = out / name
        split_dir.mkdir(exist_ok=True)
        _write_parquet(split_dir / DATA_FILE, parts[name])
        # Each split dir is a SageMaker channel on its own, so it carries the label list too.
        _atomic_write_bytes(split_dir / LABELS_FILE, labels_bytes)
        files[f"{name}/{DATA_FILE}"] = sha256_file(split_dir / DATA_FILE)
        files[f"{name}/{LABELS_FILE}"] = files[LABELS_FILE]

    # pyarrow's hash join: pandas' isin on string columns takes seconds per split here.
    train_texts = pa.array(parts["train"]["text"], type=pa.string())
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "textclf_version": __version__,
        "recipe": want,
        "source": {
            "origin": src.origin,
            "name": _raw_name(src),
            "sha256": src.sha256,
            "bytes": src.path.stat().st_size,
        },
        "seed": seed,
        "fractions": fractions,
        "split_method": "by STORY (no story in two splits), stratified by label, seeded shuffle",
        "labels": list(LABELS),
        "rows": {
            "read": parsed.rows_read,
            "valid": parsed.rows_valid,
            "skipped": parsed.rows_skipped,
            "duplicates_dropped": sum(dropped.values()),
            "written": sum(len(p) for p in parts.values()),
        },
        "skipped": parsed.skipped,
        "skipped_example_lines": parsed.examples,
        "duplicates_dropped": dropped,
        "counts": {name: _split_counts(parts[name]) for name in SPLITS},
        # Same headline under a different story: not a story leak, but worth knowing its size.
        "texts_also_in_train": {
            name: _count_in(parts[name]["text"], train_texts) for name in ("validation", "test")
        },
        "files": files,
        "dataset_sha256": dataset_sha256(src.sha256, files),
    }
    _write_json(out / MANIFEST, manifest)
    return Prepared(out, manifest, False, src, time.perf_counter() - started)
