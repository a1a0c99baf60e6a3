"""Fixtures for the training tests: a tiny model and a small real dataset, built once per session."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers.tiny_data import make_tiny_dataset, shared_zip
from tests.helpers.tiny_model import make_tiny_model_dir
from textclf import config


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("data") / "data", shared_zip(), n_rows=400)


@pytest.fixture(scope="session")
def train_module() -> ModuleType:
    """``model/train.py`` loaded by path, as the SageMaker toolkit runs it (not a package)."""
    path = config.model_code_dir() / "train.py"
    spec = importlib.util.spec_from_file_location("textclf_train_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
