"""A small processed dataset (``textclf data`` layout) made of real rows of the shared corpus.

Rows are cut from the shared UCI zip at test time (``textclf.data.samples``) and run through
the real ``textclf data`` pipeline (validation, STORY split, parquet, manifest), so training
and evaluation tests read exactly what the production path writes.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.prerequisites import missing_prerequisite
from textclf import config


def shared_zip() -> Path:
    """The shared corpus; a test without it skips locally and fails under CI (prerequisites.py)."""
    path = config.shared_data_zip()
    if not path.is_file():
        missing_prerequisite(
            f"shared UCI corpus not found at {path}",
            "put the UCI zip at ../shared/data/uci-news/NewsAggregatorDataset.zip or set TEXTCLF_SHARED_DATA",
        )
    return path


def make_tiny_dataset(out: str | Path, zip_path: Path, *, n_rows: int = 600, seed: int = 0) -> Path:
    """Write ``out/{manifest.json,labels.json,train,validation,test}`` from ~``n_rows`` real rows.

    At most 6 headlines per story, so even a small sample has enough stories for the split.
    """
    from textclf.data.prepare import prepare
    from textclf.data.samples import real_sample_lines, write_raw_corpus

    out = Path(out)
    raw = write_raw_corpus(out.parent / f"{out.name}-raw.csv", real_sample_lines(zip_path, n_rows, seed, 6))
    prepare(str(raw), out, seed=seed, progress=False)
    return out
