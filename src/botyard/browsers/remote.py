"""``remote``: connect to a browser someone else runs — a Playwright server (``ws://``), a Chrome
DevTools endpoint (``http://host:9222``) or a Selenium Grid — with a fresh context per job.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from botyard.browsers.base import BrowserSession, Kind, new_session_id
from botyard.browsers.runtime import playwright
from botyard.errors import BrowserUnavailable


def connect_playwright(endpoint: str) -> Any:
    """A Playwright ``Browser`` on ``endpoint``: ``ws(s)://`` a Playwright server, else CDP."""
    chromium = playwright().chromium
    try:
        if endpoint.startswith(("ws://", "wss://")) and "/devtools/" not in endpoint:
            return chromium.connect(endpoint, timeout=30_000)
        return chromium.connect_over_cdp(endpoint, timeout=30_000)
    except Exception as exc:
        raise BrowserUnavailable(f"cannot connect to the browser at {endpoint}: {exc}") from None


def selenium_options(args: list[str] | tuple[str, ...] = ()) -> Any:
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.add_argument("--headless=new")
    for arg in args:
        options.add_argument(arg)
    return options


def connect_selenium(grid_url: str, args: list[str] | tuple[str, ...] = ()) -> Any:
    """A Selenium ``Remote`` driver on a Grid (or a standalone chromedriver) URL."""
    from selenium import webdriver

    try:
        return webdriver.Remote(command_executor=grid_url, options=selenium_options(args))
    except Exception as exc:
        raise BrowserUnavailable(f"cannot open a Selenium session at {grid_url}: {exc}") from None


def attach(
    endpoint: str,
    kind: Kind,
    *,
    provider: str,
    job_id: int | None,
    session_id: str | None = None,
    browser: Any = None,
    args: list[str] | tuple[str, ...] = (),
) -> BrowserSession:
    """A session on ``endpoint``: a new context and page (Playwright) or a new driver (Selenium).

    ``browser`` reuses a Playwright connection made earlier to the same endpoint.
    """
    started = time.perf_counter()
    session = BrowserSession(
        id=session_id or new_session_id(), provider=provider, kind=kind, job_id=job_id
    )
    session.endpoint = endpoint
    if kind == "selenium":
        session.driver = connect_selenium(endpoint, args)
    else:
        connected = browser or connect_playwright(endpoint)
        session.details["connection"] = connected
        session.context = connected.new_context()
        session.page = session.context.new_page()
    session.ready_seconds = time.perf_counter() - started
    return session


def detach(session: BrowserSession, *, disconnect: bool = True) -> None:
    """Close what :func:`attach` opened; the remote browser itself stays up."""
    with contextlib.suppress(Exception):
        if session.driver is not None:
            session.driver.quit()
    with contextlib.suppress(Exception):
        if session.context is not None:
            session.context.close()
    connection = session.details.pop("connection", None)
    if disconnect and connection is not None:
        with contextlib.suppress(Exception):
            connection.close()


class RemoteProvider:
    """Sessions on ``BROWSER_REMOTE_URL`` (Playwright/CDP) or ``SELENIUM_REMOTE_URL`` (Grid)."""

    name = "remote"

    def __init__(
        self, remote_url: str | None, selenium_url: str | None, args: list[str] | None = None
    ) -> None:
        self.remote_url = remote_url
        self.selenium_url = selenium_url
        self.args = list(args or [])  # Chromium switches for Selenium sessions (BROWSER_ARGS)
        self._browser: Any = None  # the Playwright connection, kept between jobs
        self._sessions: dict[str, BrowserSession] = {}

    def _endpoint(self, kind: Kind) -> str:
        endpoint = self.selenium_url if kind == "selenium" else self.remote_url
        if not endpoint:
            variable = "SELENIUM_REMOTE_URL" if kind == "selenium" else "BROWSER_REMOTE_URL"
            raise BrowserUnavailable(f"BROWSER_PROVIDER=remote needs {variable} for {kind} jobs")
        return endpoint

    def provision(self, job_id: int | None, kind: Kind) -> BrowserSession:
        endpoint = self._endpoint(kind)
        if kind == "playwright" and (self._browser is None or not self._browser.is_connected()):
            self._browser = connect_playwright(endpoint)
        session = attach(
            endpoint, kind, provider=self.name, job_id=job_id, browser=self._browser, args=self.args
        )
        session.warm = kind == "playwright"
        self._sessions[session.id] = session
        return session

    def terminate(self, session: BrowserSession) -> None:
        self._sessions.pop(session.id, None)
        detach(session, disconnect=False)

    def cleanup_idle(self) -> int:
        return 0  # the remote side owns its browsers' lifetimes

    def active(self) -> list[BrowserSession]:
        return list(self._sessions.values())

    def close(self) -> None:
        for session in list(self._sessions.values()):
            self.terminate(session)
        if self._browser is not None:
            with contextlib.suppress(Exception):
                self._browser.close()
            self._browser = None
