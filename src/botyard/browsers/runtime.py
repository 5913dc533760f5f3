"""The child process's one Playwright driver, started on first use and kept between jobs."""

from __future__ import annotations

import atexit
import contextlib
from typing import Any

_driver: Any = None


def playwright() -> Any:
    """The running ``sync_playwright()`` instance (its Node driver takes ~0.3 s to start)."""
    global _driver
    if _driver is None:
        from playwright.sync_api import sync_playwright

        _driver = sync_playwright().start()
        atexit.register(stop)
    return _driver


def stop() -> None:
    global _driver
    if _driver is not None:
        with contextlib.suppress(Exception):
            _driver.stop()
        _driver = None
