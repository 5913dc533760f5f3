"""The remote provider against real endpoints: a DevTools Chromium and a chromedriver server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from botyard.browsers.cdp import CdpBrowser, launch_cdp
from botyard.browsers.remote import RemoteProvider
from botyard.errors import BrowserUnavailable

pytestmark = pytest.mark.browser
_PAGE = "data:text/html,<title>remote</title><p id=p>far away</p>"


@pytest.fixture
def devtools() -> Iterator[CdpBrowser]:
    browser = launch_cdp()
    yield browser
    browser.stop()


@pytest.fixture
def chromedriver() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = shutil.which("chromedriver")
    assert path, "chromedriver is installed with the system Chromium"
    proc = subprocess.Popen(
        [path, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/status", timeout=1).json()["value"]["ready"]:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url
    proc.kill()
    proc.wait()


def test_playwright_jobs_share_a_connection_with_a_context_each(devtools: CdpBrowser) -> None:
    provider = RemoteProvider(devtools.endpoint, None)
    try:
        first = provider.provision(1, "playwright")
        first.page.goto(_PAGE)
        assert first.page.inner_text("#p") == "far away"
        second = provider.provision(2, "playwright")
        assert second.context is not first.context and second.warm
        assert [s.id for s in provider.active()] == [first.id, second.id]
        provider.terminate(first)
        provider.terminate(second)
        assert provider.active() == []
    finally:
        provider.close()
    assert devtools.process.poll() is None  # the remote browser is not ours to stop


def test_selenium_jobs_open_a_session_on_the_grid(chromedriver: str) -> None:
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    provider = RemoteProvider(None, chromedriver, args)
    session = provider.provision(1, "selenium")
    try:
        session.driver.get(_PAGE)
        assert session.driver.title == "remote"
    finally:
        provider.terminate(session)
        provider.close()


def test_an_unreachable_or_unset_endpoint_is_a_clear_error() -> None:
    with pytest.raises(BrowserUnavailable, match="BROWSER_REMOTE_URL"):
        RemoteProvider(None, None).provision(1, "playwright")
    with pytest.raises(BrowserUnavailable, match="cannot connect"):
        RemoteProvider("http://127.0.0.1:9", None).provision(1, "playwright")
