"""Standby mode: a one-shot task server that runs a downloaded script."""

from botyard.standby.server import create_standby_app, serve
from botyard.standby.task import Task, TaskOutcome, TaskRunner, parse_task

__all__ = ["Task", "TaskOutcome", "TaskRunner", "create_standby_app", "parse_task", "serve"]
