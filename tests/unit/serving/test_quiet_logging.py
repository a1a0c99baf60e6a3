"""The root-logger guard around ONNX Runtime's offline tools (packaging/quiet.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from textclf.packaging.quiet import root_logger_at_least


@pytest.fixture
def root_level() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved = root.level
    yield root
    root.setLevel(saved)


def test_raises_the_level_for_the_block_and_restores_it(root_level: logging.Logger) -> None:
    root_level.setLevel(logging.INFO)
    with root_logger_at_least(logging.WARNING):
        assert root_level.level == logging.WARNING
    assert root_level.level == logging.INFO


def test_never_lowers_a_stricter_level(root_level: logging.Logger) -> None:
    root_level.setLevel(logging.ERROR)
    with root_logger_at_least(logging.WARNING):
        assert root_level.level == logging.ERROR
    assert root_level.level == logging.ERROR


def test_restores_the_level_when_the_tool_fails(root_level: logging.Logger) -> None:
    root_level.setLevel(logging.DEBUG)
    with pytest.raises(RuntimeError), root_logger_at_least(logging.WARNING):
        raise RuntimeError("optimiser failed")
    assert root_level.level == logging.DEBUG
