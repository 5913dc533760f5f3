"""The browser-provider interface: a session per job, from local Chromium, a remote endpoint or
a Kubernetes pod. Providers run where the job runs (the worker's child process), so that a
timeout or cancel that kills the job's process group kills a local browser with it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Kind = Literal["playwright", "selenium"]
KINDS: tuple[str, ...] = ("playwright", "selenium")


def new_session_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class BrowserSession:
    """One job's browser: a fresh Playwright context and page, or a Selenium driver."""

    id: str
    provider: str
    kind: Kind
    job_id: int | None = None
    # Where a remote browser listens (a CDP or Playwright URL, a Selenium Grid); None if local.
    endpoint: str | None = None
    started_at: float = field(default_factory=time.time)
    # Seconds from provision() to a ready page or driver, and whether a warm browser served it.
    ready_seconds: float = 0.0
    warm: bool = False
    page: Any = None  # playwright.sync_api.Page
    context: Any = None  # playwright.sync_api.BrowserContext
    driver: Any = None  # selenium.webdriver.remote.webdriver.WebDriver
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What may be shown of the session (no handles, nothing secret)."""
        return {
            "id": self.id,
            "provider": self.provider,
            "kind": self.kind,
            "job_id": self.job_id,
            "endpoint": self.endpoint,
            "started_at": self.started_at,
            "ready_seconds": round(self.ready_seconds, 4),
            "warm": self.warm,
            **{k: v for k, v in self.details.items() if isinstance(v, str | int | float | bool)},
        }


class BrowserProvider(Protocol):
    """Provision a session for a job, terminate it after, sweep what was left idle."""

    name: str

    def provision(self, job_id: int | None, kind: Kind) -> BrowserSession: ...

    def terminate(self, session: BrowserSession) -> None: ...

    def cleanup_idle(self) -> int:
        """End browsers (or pods) idle past their TTL; returns how many were ended."""
        ...

    def active(self) -> list[BrowserSession]: ...

    def close(self) -> None: ...
