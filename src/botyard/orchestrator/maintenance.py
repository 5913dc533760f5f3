"""Maintenance jobs the orchestrator runs on a schedule (APScheduler)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from botyard.orchestrator.service import JobService

log = logging.getLogger("botyard.maintenance")

POLL_JOB_QUEUE_SECONDS = 30.0  # seed 002's default; dispatch is event-driven, this is the net


def _guarded(name: str, func: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            result = func()
            if result:
                log.info("%s: %s", name, result)
        except Exception:
            log.exception("maintenance job %s failed", name)

    run.__name__ = name
    return run


def build_scheduler(service: JobService, *, recover_interval: float) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        _guarded("poll_job_queue", service.dispatch),
        "interval",
        seconds=POLL_JOB_QUEUE_SECONDS,
        id="poll_job_queue",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        _guarded("recover_stale_jobs", service.recover),
        "interval",
        seconds=recover_interval,
        id="recover_stale_jobs",
        max_instances=1,
        coalesce=True,
    )
    return scheduler
