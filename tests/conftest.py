"""Root conftest: kept minimal.

Its presence inside the ``tests`` package makes pytest put the repository root on
``sys.path``, so every test can ``from tests.helpers.tiny_model import make_tiny_model_dir``.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` hands out the slowest files first (tests/helpers/scheduling.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.helpers.scheduling import SlowestFirstFileScheduling

    return SlowestFirstFileScheduling(config, log)
