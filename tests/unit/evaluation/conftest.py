"""Fixtures for the evaluation tests: a trained tiny model and a small real dataset (session-wide)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.tiny_data import make_tiny_dataset
from tests.helpers.tiny_data import shared_zip as find_shared_zip
from tests.helpers.tiny_model import make_tiny_model_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model", trained=True)


@pytest.fixture(scope="session")
def shared_zip() -> Path:
    return find_shared_zip()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, shared_zip: Path) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("data") / "data", shared_zip, n_rows=400)
