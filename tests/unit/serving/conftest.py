"""Fixtures for the serving tests: one trained tiny model, a small validation split, archives.

Built once per session: the tiny model trains for well under a second of CPU, but every
packaging step (ONNX export, quantisation, fidelity check) is worth sharing across tests.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.tiny_model import KEYWORD_HEADLINES, make_tiny_model_dir
from textclf.data import COLUMNS
from textclf.labels import CATEGORY_TO_LABEL

RUNTIMES = ("torch", "onnx-fp32", "onnx-int8")


def headline_rows() -> list[dict[str, object]]:
    """Keyword headlines in three spellings each: 72 rows with their labels, in split columns."""
    category = {label: cat for cat, label in CATEGORY_TO_LABEL.items()}
    rows: list[dict[str, object]] = []
    for label, lines in KEYWORD_HEADLINES.items():
        for line in lines:
            for text in (line, line.title(), f"{line} today"):
                i = len(rows)
                rows.append(
                    {
                        "id": i,
                        "text": text,
                        "label": label,
                        "category": category[label],
                        "story": f"story{i}",
                        "publisher": "fixture",
                        "hostname": "example.com",
                        "timestamp": 1_400_000_000_000 + i,
                    }
                )
    return rows


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model", trained=True)


@pytest.fixture(scope="session")
def validation_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    split = tmp_path_factory.mktemp("data") / "validation"
    split.mkdir()
    pd.DataFrame(headline_rows(), columns=list(COLUMNS)).to_parquet(split / "data.parquet")
    return split


@pytest.fixture(scope="session")
def packages(
    tiny_model: Path, validation_split: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """``{runtime: model.tar.gz}``, built without vendored wheels (no download in tests)."""
    from textclf.packaging import build_package

    out_dir = tmp_path_factory.mktemp("packages")
    return {
        runtime: build_package(
            tiny_model,
            out_dir / f"{runtime}.tar.gz",
            runtime=runtime,
            validation_data=validation_split,
            vendor="no",
            echo=lambda _line: None,
        ).out
        for runtime in RUNTIMES
    }


@pytest.fixture(scope="session")
def unpacked(packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{runtime: directory}``: each archive extracted as SageMaker does into /opt/ml/model."""
    dirs = {}
    for runtime, archive in packages.items():
        target = tmp_path_factory.mktemp(f"opt-ml-model-{runtime}")
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(target, filter="data")
        dirs[runtime] = target
    return dirs
