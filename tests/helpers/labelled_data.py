"""Small labelled datasets in every layout ``textclf data`` reads, written by the tests themselves.

:func:`labelled_rows` makes rows (unique texts, any label set, optional long multi-paragraph
bodies, groups and times); :func:`write_rows` writes them as CSV, TSV, JSON Lines, a JSON array,
Parquet, a zip holding a CSV, or a Hugging Face ``datasets`` ``save_to_disk`` folder (the Arrow
stream layout, written with pyarrow so the tests need no ``datasets`` package).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_START = datetime(2024, 1, 1, tzinfo=UTC)
_WORDS = (
    "market",
    "river",
    "orbit",
    "violin",
    "protein",
    "harbor",
    "ledger",
    "comet",
    "glacier",
    "sonnet",
    "turbine",
    "meadow",
    "cipher",
    "lantern",
    "quartz",
    "saddle",
    "tundra",
    "beacon",
    "mosaic",
    "pepper",
)


def labelled_rows(
    labels: Sequence[str],
    per_label: int | Sequence[int],
    *,
    paragraphs: int = 1,
    words: int = 8,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows ``{id, title, body, label, group, time}``, labels interleaved, every text unique.

    Each label's texts share a few label-specific words, so a classifier can learn them.
    ``group`` bundles five rows of one label; ``time`` (ISO 8601, UTC) rises an hour a row.
    """
    rng = np.random.default_rng(seed)
    counts = [per_label] * len(labels) if isinstance(per_label, int) else list(per_label)
    queue = [(label, i) for i in range(max(counts)) for label, n in zip(labels, counts, strict=True) if i < n]
    rows = []
    for k, (label, i) in enumerate(queue):
        hint = f"{label}-topic {label}-word"
        paras = [" ".join(rng.choice(_WORDS, size=words)) + f" {hint} number {k}." for _ in range(paragraphs)]
        rows.append(
            {
                "id": f"doc-{k:05d}",
                "title": f"{label} title {k}",
                "body": "\n\n".join(paras),
                "label": label,
                "group": f"{label}-g{i // 5}",
                "time": (_START + timedelta(hours=k)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
    return rows


def _delimited(rows: Sequence[dict[str, Any]], delimiter: str) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def write_hf_folder(folder: Path, rows: Sequence[dict[str, Any]], class_label: str | None = None) -> Path:
    """A ``Dataset.save_to_disk`` folder; ``class_label`` stores that column as ClassLabel ids."""
    folder.mkdir(parents=True, exist_ok=True)
    features: dict[str, Any] = {name: {"dtype": "string", "_type": "Value"} for name in rows[0]}
    data = [dict(row) for row in rows]
    if class_label is not None:
        names = sorted({str(row[class_label]) for row in rows}, reverse=True)  # ids unlike sorted names
        for row in data:
            row[class_label] = names.index(str(row[class_label]))
        features[class_label] = {"names": names, "_type": "ClassLabel"}
    table = pa.Table.from_pylist(data)
    name = "data-00000-of-00001.arrow"
    with pa.OSFile(str(folder / name), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": name}], "_split": None}))
    (folder / "dataset_info.json").write_text(json.dumps({"features": features}))
    return folder


def write_rows(path: Path, rows: Sequence[dict[str, Any]], fmt: str | None = None) -> Path:
    """Write ``rows`` at ``path`` as ``fmt`` (default: told by the suffix; ``hf`` for a folder)."""
    fmt = fmt or {
        ".tsv": "tsv",
        ".jsonl": "jsonl",
        ".json": "json",
        ".parquet": "parquet",
        ".zip": "zip",
    }.get(path.suffix, "csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "hf":
        return write_hf_folder(path, rows)
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(list(rows)), path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(list(rows), ensure_ascii=False), encoding="utf-8")
    elif fmt == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("export/data.csv", _delimited(rows, ","))
    else:
        path.write_bytes(_delimited(rows, "\t" if fmt == "tsv" else ","))
    return path
