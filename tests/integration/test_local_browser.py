"""The local provider on the system Chromium: warm sessions, a fresh context per job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from botyard.browsers import runtime
from botyard.browsers.local import LocalProvider
from botyard.errors import BrowserUnavailable

pytestmark = pytest.mark.browser

_PAGE = "data:text/html,<title>t</title>"


@pytest.fixture(scope="module", autouse=True)
def _own_playwright() -> Iterator[None]:
    """The provider starts the process's one Playwright driver (a job process keeps it for
    good); stop it after these tests, or a later ``sync_playwright()`` in this test process
    finds its event loop running."""
    yield
    runtime.stop()


@pytest.fixture
def provider() -> Iterator[LocalProvider]:
    local = LocalProvider(warm=True)
    yield local
    local.close()


def test_the_next_job_gets_a_warm_fresh_context(provider: LocalProvider) -> None:
    first = provider.provision(1, "playwright")
    assert not first.warm  # nothing was prepared yet
    first.context.add_cookies([{"name": "session", "value": "job-1", "url": "https://a.example"}])
    first.page.goto(_PAGE)
    provider.terminate(first)
    assert provider.active() == []
    provider.prepare("playwright")
    second = provider.provision(2, "playwright")
    assert second.warm and second.ready_seconds < first.ready_seconds
    assert second.context is not first.context
    assert second.context.cookies() == []  # nothing of the first job's session
    assert second.details["browser_pid"] == first.details["browser_pid"]  # the same browser
    provider.terminate(second)


def test_without_warmth_each_job_launches(provider: LocalProvider) -> None:
    cold = LocalProvider(warm=False)
    try:
        cold.prepare("playwright")
        session = cold.provision(1, "playwright")
        assert not session.warm
        session.page.goto(_PAGE)
        assert session.page.title() == "t"
        cold.terminate(session)
    finally:
        cold.close()


def test_idle_browsers_are_closed_after_their_ttl() -> None:
    local = LocalProvider(warm=True, idle_ttl=0.01)
    try:
        local.prepare("playwright")
        assert local.cleanup_idle() == 1
        assert local.cleanup_idle() == 0
    finally:
        local.close()


def test_a_missing_chromium_is_a_clear_error() -> None:
    local = LocalProvider(executable="no-such-chromium-here")
    with pytest.raises(BrowserUnavailable, match="BROWSER_EXECUTABLE"):
        local.provision(1, "playwright")
