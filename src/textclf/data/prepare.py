"""``textclf data``: raw data -> validated, checked, split parquet files plus a manifest.

Layout (DESIGN.md "Processed data")::

    <out>/manifest.json  <out>/labels.json  <out>/<split>/data.parquet  <out>/<split>/labels.json

The manifest is written last and removed first, so a directory holding one is complete.
It records a *recipe* (source sha256, seed, fractions, format version, how the input was read
and checked); a re-run with the same recipe whose files still hash as recorded reuses the
output instead of rebuilding it.
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
from textclf.data.checks import (
    Conflicts,
    check_bad_rows,
    check_labels,
    label_counts,
    resolve_conflicts,
)
from textclf.data.checksum import folder_files, sha256_file
from textclf.data.download import Source, is_url, resolve_source
from textclf.data.generic import check_columns, frame_from_table
from textclf.data.inputs import read_table, resolve_format
from textclf.data.options import NEWS_INPUT, Checks, InputOptions, TimeRange, iso_ms, news_input
from textclf.data.parse import COLUMNS, NEWS_LABELS, SCHEMA, ParseResult, parse_file
from textclf.data.split import SPLITS, check_fractions, drop_duplicates, split_by_story, split_by_time
from textclf.errors import UserError

log = logging.getLogger(__name__)

#: Bump when the output files change meaning or layout, so old outputs are rebuilt, not reused.
#: 2: any dataset (input/checks in the recipe, source_id column, label_counts, split_method names).
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
_DEDUP = {
    "story": "text+label within split",
    "group": "text+label within split",
    "time": "text+label within split",
    "stratified": "text+label before split",
}
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
    _atomic_write_bytes(path, (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode())


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame.loc[:, list(COLUMNS)], schema=SCHEMA, preserve_index=False)
    # Drop pandas' schema metadata: it embeds the pandas version, which would change the file
    # bytes (and the content address) between otherwise identical runs.
    table = table.replace_schema_metadata(None)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def split_method(options: InputOptions, *, preset: bool) -> str:
    """time (--time-column, groups kept whole), story (news preset), group, else stratified."""
    if options.time_column:
        return "time"
    if preset:
        return "story"
    return "group" if options.group_column else "stratified"


def recipe(
    source_sha256: str,
    seed: int,
    fractions: dict[str, float],
    *,
    method: str,
    input_block: dict[str, Any],
    checks: dict[str, Any],
    rows_between: TimeRange | None = None,
) -> dict[str, Any]:
    """Everything that determines the output; equal recipes give byte-identical data files."""
    return {
        "rows_between": (rows_between or TimeRange()).describe(),
        "format_version": FORMAT_VERSION,
        "source_sha256": source_sha256,
        "seed": seed,
        "fractions": fractions,
        "split": method,
        "dedup": _DEDUP[method],
        "input": input_block,
        "checks": checks,
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
    """The name the user knows the raw data by (not the cache's hashed file name)."""
    if is_url(source.origin) or source.origin.startswith("s3://"):
        return Path(urlparse(source.origin.rstrip("/")).path).name or source.path.name
    return source.path.name


def _split_counts(frame: pd.DataFrame, labels: list[str], method: str) -> dict[str, Any]:
    per_label = frame["label"].value_counts()
    counts: dict[str, Any] = {
        "rows": len(frame),
        "stories": int(frame["story"].nunique()),
        "labels": {label: int(per_label.get(label, 0)) for label in labels},
    }
    if method == "time":
        # Epoch ms of the split's oldest and newest row: train's last should precede test's first.
        stamps = frame["timestamp"]
        counts["first_timestamp"] = int(stamps.min()) if len(stamps) else None
        counts["last_timestamp"] = int(stamps.max()) if len(stamps) else None
    return counts


def _count_in(texts: pd.Series, value_set: pa.Array) -> int:
    mask = pc.is_in(pa.array(texts, type=pa.string()), value_set=value_set)
    return int(pc.sum(mask).as_py() or 0)


@dataclass(frozen=True)
class _Built:
    """A dataset ready to write: every check passed, nothing on disk yet."""

    parsed: ParseResult
    parts: dict[str, pd.DataFrame]
    dropped: dict[str, int]
    dropped_before_split: int
    labels: list[str]
    label_counts: dict[str, int]
    conflicts: Conflicts


def _read(src: Source, fmt: str, options: InputOptions) -> tuple[ParseResult, str]:
    """Valid rows and the name of the label column (for messages)."""
    if fmt == "uci":
        return parse_file(src.path), NEWS_INPUT["label_column"]
    table = read_table(src.path, fmt)
    check_columns(table, options, src.origin, fmt=fmt)
    assert options.label_column is not None  # check_columns refuses a missing one
    return frame_from_table(table, options), options.label_column


def _build(
    src: Source,
    fmt: str,
    *,
    options: InputOptions,
    checks: dict[str, Any],
    method: str,
    seed: int,
    fractions: dict[str, float],
    rows_between: TimeRange,
) -> _Built:
    parsed, label_column = _read(src, fmt, options)
    if parsed.frame.empty:
        hint = "; is it a newsCorpora.csv-format file?" if fmt == "uci" else ""
        skipped = parsed.skipped or "none"
        raise UserError(f"{src.origin}: no valid rows out of {parsed.rows_read} (skipped: {skipped}){hint}")
    check_bad_rows(src.origin, parsed.rows_read, parsed.skipped, parsed.examples, checks["max_bad_rows"])
    frame, conflicts = resolve_conflicts(
        in_range(parsed.frame, rows_between, src.origin), checks["conflicts"]
    )
    dropped_before = 0
    if method == "stratified":
        # One group per row: a repeated text could land in train and in test, so repeats go first.
        frame, dropped_before = drop_duplicates(frame)
    labels = list(NEWS_LABELS) if fmt == "uci" else sorted(frame["label"].unique(), key=str)
    counts = label_counts(frame, labels)
    check_labels(counts, checks["min_rows_per_label"], label_column)
    if method == "time":
        # The news corpus keeps its stories whole, as its story split does.
        grouped = bool(options.group_column) or fmt == "uci"
        parts, dropped = split_by_time(frame, fractions, grouped=grouped)
        empty = [name for name in SPLITS if fractions[name] > 0 and parts[name].empty]
        if empty:
            raise UserError(
                f"--time-column {options.time_column!r}: too few distinct times to give "
                f"{' and '.join(empty)} any rows; use more data or drop --time-column"
            )
    else:
        parts, dropped = split_by_story(frame, seed, fractions, labels=labels)
    return _Built(parsed, parts, dropped, dropped_before, labels, counts, conflicts)


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
    options: InputOptions | None = None,
    checks: Checks | None = None,
    s3_client: Any = None,
    rows_between: TimeRange | None = None,
) -> Prepared:
    """Build (or reuse) the processed dataset in ``out`` from ``source`` (URL, s3:// or local).

    Everything is read, checked and split in memory first: a refused dataset (a
    :class:`UserError`) leaves ``out`` exactly as it was.
    """
    started = time.perf_counter()
    options = options or InputOptions()
    checks = checks or Checks()
    rows_between = rows_between or TimeRange()
    fractions = check_fractions(val_frac, test_frac)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    src = resolve_source(source, cache_dir=cache_dir, sha256=sha256, progress=progress, s3_client=s3_client)
    fmt = resolve_format(src.path, options, src.origin)
    preset = fmt == "uci"
    method = split_method(options, preset=preset)
    if rows_between.given and not preset and not options.time_column:
        raise UserError("--since/--until need --time-column: the column holding each row's time")
    input_block = news_input(options) if preset else options.describe(fmt)
    applied = checks.resolved(preset=preset)
    want = recipe(
        src.sha256,
        seed,
        fractions,
        method=method,
        input_block=input_block,
        checks=applied,
        rows_between=rows_between,
    )
    if not force:
        existing = _reusable(out, want)
        if existing is not None:
            return Prepared(out, existing, True, src, time.perf_counter() - started)

    built = _build(
        src,
        fmt,
        options=options,
        checks=applied,
        method=method,
        seed=seed,
        fractions=fractions,
        rows_between=rows_between,
    )
    parts, dropped, parsed = built.parts, built.dropped, built.parsed
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    files: dict[str, str] = {}
    labels_bytes = (json.dumps(built.labels, ensure_ascii=False) + "\n").encode()
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
    duplicates = built.dropped_before_split + sum(dropped.values())
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "textclf_version": __version__,
        "recipe": want,
        "source": {
            "origin": src.origin,
            "name": _raw_name(src),
            "sha256": src.sha256,
            "bytes": _source_bytes(src.path),
        },
        "input": input_block,
        "checks": applied,
        "rows_between": rows_between.describe(),
        "seed": seed,
        "fractions": fractions,
        "split_method": method,
        "labels": built.labels,
        "label_counts": built.label_counts,
        "rows": {
            "read": parsed.rows_read,
            "valid": parsed.rows_valid,
            "skipped": parsed.rows_skipped,
            "conflicts_dropped": built.conflicts.dropped,
            "duplicates_dropped": duplicates,
            "written": sum(len(p) for p in parts.values()),
        },
        "skipped": parsed.skipped,
        "skipped_example_lines": parsed.examples,
        "conflicts": built.conflicts.as_dict(),
        # Per split; with a stratified split, repeats go before the split (duplicates_before_split).
        "duplicates_dropped": dropped,
        "duplicates_before_split": built.dropped_before_split,
        "counts": {name: _split_counts(parts[name], built.labels, method) for name in SPLITS},
        # Same text under another story/group: not a group leak, but worth knowing its size.
        "texts_also_in_train": {
            name: _count_in(parts[name]["text"], train_texts) for name in ("validation", "test")
        },
        "files": files,
        "dataset_sha256": dataset_sha256(src.sha256, files),
    }
    _write_json(out / MANIFEST, manifest)
    return Prepared(out, manifest, False, src, time.perf_counter() - started)


def in_range(frame: pd.DataFrame, rows_between: TimeRange, origin: str) -> pd.DataFrame:
    """The rows with ``since <= timestamp < until``; an empty range is refused, naming the data's span."""
    if not rows_between.given:
        return frame
    stamps = frame["timestamp"]
    keep = pd.Series(True, index=frame.index)
    if rows_between.since is not None:
        keep &= stamps >= rows_between.since
    if rows_between.until is not None:
        keep &= stamps < rows_between.until
    if not keep.any():
        wanted = rows_between.describe()
        raise UserError(
            f"{origin}: no rows from {wanted['since'] or 'the start'} until {wanted['until'] or 'the end'}; "
            f"the data spans {iso_ms(int(stamps.min()))} .. {iso_ms(int(stamps.max()))}"
        )
    return frame[keep]


def _source_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in folder_files(path)) if path.is_dir() else path.stat().st_size
