"""Automations: the decorator and registry, the job context, and the child processes they run in."""

from botyard.automations.context import JobContext
from botyard.automations.registry import (
    Automation,
    Registry,
    automation,
    default_registry,
    load_automations,
    script_automation,
)

__all__ = [
    "Automation",
    "JobContext",
    "Registry",
    "automation",
    "default_registry",
    "load_automations",
    "script_automation",
]
