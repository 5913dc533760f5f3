"""Botyard: a self-hosted orchestrator for Python automation (RPA) jobs."""

from botyard.automations import JobContext, automation, script_automation
from botyard.errors import BotyardError, BusinessError
from botyard.jobs import JobStatus
from botyard.version import __version__

__all__ = [
    "BotyardError",
    "BusinessError",
    "JobContext",
    "JobStatus",
    "__version__",
    "automation",
    "script_automation",
]
