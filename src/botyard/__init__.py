"""Botyard: a self-hosted orchestrator for Python automation (RPA) jobs."""

from typing import TYPE_CHECKING

from botyard.automations import JobContext, automation, script_automation
from botyard.errors import BotyardError, BusinessError
from botyard.jobs import JobStatus
from botyard.version import __version__

if TYPE_CHECKING:
    from botyard.client import Client, StandbyClient

__all__ = [
    "BotyardError",
    "BusinessError",
    "Client",
    "JobContext",
    "JobStatus",
    "StandbyClient",
    "__version__",
    "automation",
    "script_automation",
]


def __getattr__(name: str) -> object:
    # The clients pull in httpx: imported on first use, not by every job's process.
    if name in ("Client", "StandbyClient"):
        from botyard import client

        return getattr(client, name)
    raise AttributeError(f"module 'botyard' has no attribute {name!r}")
