"""``local``: the system Chromium, driven by Playwright (or chromedriver for Selenium).

The browser is launched by the job's own child process, so it lives in the child's process
group: a timeout, a cancel or a crash that kills the child's tree kills the browser too. Between
jobs the child keeps the browser running with a fresh context and page already open (warm), so a
job starts on a ready page; each job gets its own context, closed after it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from typing import Any

from botyard.browsers.base import BrowserSession, Kind, new_session_id
from botyard.browsers.runtime import playwright
from botyard.errors import BrowserUnavailable

log = logging.getLogger("botyard.browsers")

# Chromium's own background traffic (updates, sync, field trials) fails on closed networks and
# slows every start; these switches keep it quiet.
QUIET_SWITCHES = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--disable-gpu",
)
# Marks every browser Botyard starts with the pid of the process that owns it (the sweeper's clue).
OWNER_SWITCH = "--botyard-owner="
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium(configured: str | None = None) -> str:
    """The Chromium executable: ``BROWSER_EXECUTABLE``, else the first one on ``PATH``."""
    for name in (configured,) if configured else _CANDIDATES:
        found = shutil.which(name) if name else None
        if found:
            return found
    raise BrowserUnavailable(
        f"no Chromium found ({configured or ', '.join(_CANDIDATES)}): install the system "
        "package (Debian: apt-get install chromium chromium-driver) or set BROWSER_EXECUTABLE"
    )


def switches(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Chromium's switches: quiet, owned, and ``--no-sandbox`` when running as root."""
    args = [*QUIET_SWITCHES, f"{OWNER_SWITCH}{os.getpid()}", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--no-sandbox" not in args:
        args.append("--no-sandbox")  # Chromium refuses to start its sandbox as root
    return args


class LocalProvider:
    """One browser per child process, kept warm between jobs; a fresh context per job."""

    name = "local"

    def __init__(
        self,
        *,
        executable: str | None = None,
        chromedriver: str | None = None,
        headless: bool = True,
        warm: bool = True,
        idle_ttl: float = 600.0,
        args: list[str] | None = None,
    ) -> None:
        self.executable = executable
        self.chromedriver = chromedriver
        self.headless = headless
        self.warm = warm
        self.idle_ttl = idle_ttl
        self.args = list(args or [])
        self._browser: Any = None
        self._ready: tuple[Any, Any] | None = None  # a fresh (context, page) for the next job
        self._ready_driver: Any = None  # a started Selenium driver for the next job
        self._sessions: dict[str, BrowserSession] = {}
        self._last_used = time.monotonic()

    # -- the provider interface ------------------------------------------------

    def provision(self, job_id: int | None, kind: Kind) -> BrowserSession:
        started = time.perf_counter()
        session = BrowserSession(id=new_session_id(), provider=self.name, kind=kind, job_id=job_id)
        if kind == "selenium":
            session.warm = self._ready_driver is not None
            session.driver, self._ready_driver = self._ready_driver or self._new_driver(), None
        else:
            session.warm = self._ready is not None and self._browser_alive()
            if session.warm:
                assert self._ready is not None
                session.context, session.page = self._ready
            else:
                session.context, session.page = self._new_page()
            self._ready = None
            session.details["browser_pid"] = self._browser_pid()
        session.ready_seconds = time.perf_counter() - started
        self._sessions[session.id] = session
        self._last_used = time.monotonic()
        return session

    def terminate(self, session: BrowserSession) -> None:
        self._sessions.pop(session.id, None)
        self._last_used = time.monotonic()
        if session.driver is not None:
            with contextlib.suppress(Exception):
                session.driver.quit()
        if session.context is not None:
            with contextlib.suppress(Exception):
                session.context.close()

    def prepare(self, kind: Kind) -> None:
        """Between jobs: have a browser and a fresh page (or driver) ready for the next one."""
        if not self.warm:
            return
        try:
            if kind == "selenium":
                if self._ready_driver is None:
                    self._ready_driver = self._new_driver()
            elif self._ready is None or not self._browser_alive():
                self._ready = self._new_page()
        except Exception:  # the next job will try (and report) again
            self._ready, self._ready_driver = None, None

    def cleanup_idle(self) -> int:
        """Close the warm browser and driver once no job has used them for ``idle_ttl``."""
        if self._sessions or time.monotonic() - self._last_used < self.idle_ttl:
            return 0
        ended = int(self._browser is not None) + int(self._ready_driver is not None)
        self.close()
        return ended

    def active(self) -> list[BrowserSession]:
        return list(self._sessions.values())

    def close(self) -> None:
        for session in list(self._sessions.values()):
            self.terminate(session)
        if self._ready_driver is not None:
            with contextlib.suppress(Exception):
                self._ready_driver.quit()
        if self._browser is not None:
            with contextlib.suppress(Exception):
                self._browser.close()
        self._browser, self._ready, self._ready_driver = None, None, None

    # -- launching -------------------------------------------------------------

    def _browser_alive(self) -> bool:
        return self._browser is not None and bool(self._browser.is_connected())

    def _browser_pid(self) -> int | None:
        with contextlib.suppress(Exception):
            return int(self._browser._impl_obj._browser_process_pid)  # not public; best effort
        return None

    def _launch(self) -> Any:
        args = switches(self.args)
        try:
            return self._launch_with(args)
        except BrowserUnavailable as exc:
            if "--no-sandbox" in args or "sandbox" not in str(exc).lower():
                raise
        # Playwright turns Chromium's sandbox off unless asked; Botyard asks wherever it can run.
        # Where the kernel refuses it (no unprivileged user namespaces), say so and go without.
        log.warning("Chromium's sandbox is unavailable here; running without it (--no-sandbox)")
        self.args.append("--no-sandbox")
        return self._launch_with([*args, "--no-sandbox"])

    def _launch_with(self, args: list[str]) -> Any:
        try:
            return playwright().chromium.launch(
                executable_path=find_chromium(self.executable),
                headless=self.headless,
                args=args,
                chromium_sandbox="--no-sandbox" not in args,
                timeout=60_000,
            )
        except BrowserUnavailable:
            raise
        except Exception as exc:
            raise BrowserUnavailable(f"Chromium did not start: {exc}") from None

    def _new_page(self) -> tuple[Any, Any]:
        if not self._browser_alive():
            self._browser = self._launch()
        context = self._browser.new_context()
        return context, context.new_page()

    def _new_driver(self) -> Any:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        options = Options()
        options.binary_location = find_chromium(self.executable)
        if self.headless:
            options.add_argument("--headless=new")
        for switch in switches(self.args):
            options.add_argument(switch)
        driver_path = shutil.which(self.chromedriver or "chromedriver")
        if driver_path is None:
            # Never let Selenium Manager download one: the system's must match the system Chromium.
            raise BrowserUnavailable(
                "no chromedriver found: install the system package (Debian: chromium-driver) "
                "or set BROWSER_CHROMEDRIVER"
            )
        try:
            return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        except Exception as exc:
            raise BrowserUnavailable(f"chromedriver could not start Chromium: {exc}") from None
