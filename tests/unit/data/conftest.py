"""Fixtures for the data tests. The helpers live in ``textclf.data.samples`` so other test areas
can build the same corpora (see ``tests/unit/eda/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.tiny_data import shared_zip as find_shared_zip
from textclf.data.samples import real_sample_lines


@pytest.fixture(scope="session")
def shared_zip() -> Path:
    return find_shared_zip()


@pytest.fixture(scope="session")
def real_rows_sample(shared_zip: Path) -> tuple[str, ...]:
    """400 unaltered raw lines from the shared zip, 100 per category, <= 8 per story."""
    return real_sample_lines(shared_zip, 400, 0, 8)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Never touch the user's real download cache from a test.
    monkeypatch.setenv("TEXTCLF_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
