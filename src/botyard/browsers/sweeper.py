"""Find and kill browser processes that no live Botyard process owns.

Every Chromium Botyard starts carries ``--botyard-owner=<pid>``: the child process whose job it
serves. Killing that child's tree kills the browser; but if the whole worker was killed, or a
browser slipped out of its tree, the browser outlives its owner. Those are leaks.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

from botyard.browsers.local import OWNER_SWITCH
from botyard.processes import kill_tree

log = logging.getLogger("botyard.browsers")
_THROWAWAY_PROFILES = ("playwright_chromiumdev_profile-", "botyard-browser-", ".org.chromium.")


@dataclass(frozen=True)
class Leak:
    pid: int
    owner: int
    started_at: float

    def record(self) -> tuple[str, int, float]:
        """``(id, pid, started_at)`` for the store: the same id whoever records it."""
        return f"leak-{self.pid}-{self.started_at:.0f}", self.pid, self.started_at


def _owner(cmdline: list[str]) -> int | None:
    for arg in cmdline:
        if arg.startswith(OWNER_SWITCH):
            value = arg[len(OWNER_SWITCH) :]
            return int(value) if value.isdigit() else None
    return None


def _owner_alive(owner: int, browser_started: float) -> bool:
    try:
        proc = psutil.Process(owner)
        # A recycled pid belongs to a process younger than the browser it supposedly started.
        return bool(proc.create_time() <= browser_started and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def find_leaks() -> list[Leak]:
    """Top-level browser processes (not renderers or helpers) whose owner is gone."""
    leaks = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        cmdline = proc.info.get("cmdline") or []
        owner = _owner(cmdline)
        if owner is None or any(arg.startswith("--type=") for arg in cmdline):
            continue
        started = float(proc.info.get("create_time") or 0.0)
        if not _owner_alive(owner, started):
            leaks.append(Leak(pid=proc.info["pid"], owner=owner, started_at=started))
    return leaks


def owned_by(owner: int) -> list[int]:
    """Pids of the browser processes (all of them) that ``owner`` started."""
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if _owner(proc.info.get("cmdline") or []) == owner:
            pids.append(proc.info["pid"])
    return pids


def _driver_of(pid: int) -> int | None:
    """The chromedriver that started this browser, if it is one (Selenium's, now orphaned)."""
    try:
        parent = psutil.Process(pid).parent()
        return parent.pid if parent is not None and "chromedriver" in parent.name() else None
    except psutil.Error:
        return None


def _profile_of(pid: int) -> Path | None:
    """The browser's throw-away profile folder (Playwright's or Botyard's), to remove with it."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return None
    for arg in cmdline:
        if arg.startswith("--user-data-dir="):
            path = Path(arg.split("=", 1)[1])
            if path.name.startswith(_THROWAWAY_PROFILES):
                return path
    return None


def sweep() -> list[Leak]:
    """Kill every leaked browser with its whole tree (and the chromedriver that started it),
    remove its throw-away profile; each is logged, and returned for counting."""
    leaks = find_leaks()
    for leak in leaks:
        profile = _profile_of(leak.pid)
        killed = kill_tree(_driver_of(leak.pid) or leak.pid)
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)
        log.warning(
            "leaked browser pid %d (owner %d gone): killed %d processes",
            leak.pid,
            leak.owner,
            killed,
        )
    return leaks
