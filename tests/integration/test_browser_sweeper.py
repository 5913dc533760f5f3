"""The sweeper kills browsers whose owner is gone, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import psutil
import pytest

from botyard.browsers import sweeper
from botyard.browsers.local import OWNER_SWITCH, find_chromium, switches

pytestmark = pytest.mark.browser


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _chromium(owner: int) -> subprocess.Popen[bytes]:
    profile = tempfile.mkdtemp(prefix="botyard-sweeper-test-")
    args = [a for a in switches() if not a.startswith(OWNER_SWITCH)]
    return subprocess.Popen(
        [
            find_chromium(),
            "--headless=new",
            *args,
            f"{OWNER_SWITCH}{owner}",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _started(owner: int) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A Chromium with its helper processes up (a second try if the first one died early)."""
    for _ in range(2):
        browser = _chromium(owner)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and browser.poll() is None:
            helpers = [p.pid for p in psutil.Process(browser.pid).children(recursive=True)]
            if helpers:
                return browser, helpers
            time.sleep(0.1)
        browser.kill()
        browser.wait()
    cmdline = " ".join(str(a) for a in browser.args)  # type: ignore[union-attr]
    raise AssertionError(f"Chromium did not start its helpers: {cmdline}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(proc: subprocess.Popen[bytes], timeout: float = 10) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_a_browser_whose_owner_died_is_killed_with_its_tree() -> None:
    orphan, helpers = _started(_dead_pid())
    owned = _chromium(os.getpid())  # this test process is alive: not a leak
    try:
        leaks = sweeper.sweep()
        assert orphan.pid in [leak.pid for leak in leaks]  # (and any other leak on this host)
        assert owned.pid not in [leak.pid for leak in leaks]
        assert _gone(orphan)
        deadline = time.monotonic() + 10  # under load the helpers take a moment to go
        while [pid for pid in helpers if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in helpers if _alive(pid)]
        assert owned.poll() is None
        assert owned.pid not in [leak.pid for leak in sweeper.find_leaks()]
    finally:
        for proc in (orphan, owned):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_recycled_owner_pid_does_not_hide_a_leak() -> None:
    """The owner pid now names a process younger than the browser: the owner is gone."""
    browser = _chromium(_dead_pid())
    try:
        leak_pids = {leak.pid for leak in sweeper.find_leaks()}
        assert browser.pid in leak_pids
        # Our own process is older than the browser: its browsers are never leaks.
        assert not sweeper._owner_alive(_dead_pid(), time.time())
        assert sweeper._owner_alive(os.getpid(), time.time())
        # A live process younger than the browser only wears the dead owner's recycled pid.
        young = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            born = psutil.Process(young.pid).create_time()
            assert sweeper._owner_alive(young.pid, born + 1)
            assert not sweeper._owner_alive(young.pid, born - 10)
        finally:
            young.kill()
            young.wait()
    finally:
        browser.kill()
        browser.wait()
