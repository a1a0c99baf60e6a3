"""Debian's chromium driven by selenium: the playground's browser tests and its README screenshot.

Only the system's browser (``make browser`` installs ``chromium`` and ``chromium-driver`` from
Debian); selenium is never allowed to download one (``SE_OFFLINE``, an explicit driver path).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def find(candidates: tuple[str, ...], name: str) -> str | None:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def missing() -> str | None:
    """Why no browser can run here, or None."""
    if find(CHROMIUM_CANDIDATES, "chromium") is None or find(DRIVER_CANDIDATES, "chromedriver") is None:
        return "Debian's chromium and chromium-driver are not installed"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def chromium(width: int = 1100, height: int = 900) -> Any:
    """A headless chromium (selenium WebDriver) at ``width`` x ``height`` CSS pixels."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must not fetch a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(find(CHROMIUM_CANDIDATES, "chromium"))
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
    ):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(find(DRIVER_CANDIDATES, "chromedriver"))))
