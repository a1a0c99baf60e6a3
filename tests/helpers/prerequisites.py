"""What a test does when something it needs is not on the machine.

Locally it skips with the reason; under CI (``CI=true``, which ``.ci/run`` runs with) it fails
with the same reason and the fix, so a missing prerequisite can never make the suite green by
quietly running less of it.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_prerequisite(reason: str, fix: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason}; under CI this is a failure, not a skip: {fix}", pytrace=False)
    pytest.skip(f"{reason} ({fix})")
