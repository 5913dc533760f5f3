"""How workers learn that jobs can run: entries on Redis lists, or a wake-up on the bus.

Every code path that makes a job runnable (a submit, a retry, a recovery, a release) calls
:meth:`Wakeups.jobs` with the ids. With Redis dispatch on, each job gets an entry on its
queue's Redis list and the bus stays quiet; without it, or while Redis is failing, the queue's
workers are woken on the bus and claim from the store. Either way the store's claim decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botyard.bus.base import CANCEL, JOBS, Bus, Event
from botyard.bus.redis_lists import RedisJobLists
from botyard.errors import JobNotFound
from botyard.events import EventPublisher, JobEvent
from botyard.jobs import JobStatus

if TYPE_CHECKING:
    from botyard.store.records import JobRecord

log = logging.getLogger("botyard.dispatch")


class Wakeups:
    def __init__(self, bus: Bus, lists: RedisJobLists | None = None) -> None:
        self.bus = bus
        self.lists = lists
        # In-process parties that claim for others (the agent dispatcher): told of every job.
        self._local: list[Callable[[], None]] = []

    @property
    def redis(self) -> bool:
        return self.lists is not None

    def on_jobs(self, callback: Callable[[], None]) -> None:
        self._local.append(callback)

    def jobs(self, queue: str, job_ids: Sequence[int]) -> None:
        """These jobs of ``queue`` can run now."""
        if not job_ids:
            return
        if self.lists is not None and self.lists.announce(queue, job_ids):
            for callback in self._local:  # they would have heard it on the bus
                callback()
        else:
            self.bus.publish(Event(JOBS, queue))

    def queue(self, queue: str) -> None:
        """Some job of ``queue`` may run now (a key freed, a job nobody here could take):
        its workers claim from the store."""
        self.bus.publish(Event(JOBS, queue))

    def cancel(self, job_id: int) -> None:
        self.bus.publish(Event(CANCEL, str(job_id)))

    def recovered(
        self,
        recovered: Sequence[tuple[int, JobStatus]],
        get_job: Callable[[int], JobRecord],
        events: EventPublisher,
    ) -> None:
        """After a lease recovery: each job's status event, and with Redis dispatch an entry
        for each job that can run again. (Callers wake their queues on the bus as well: a
        recovered job may have freed a concurrency key.)"""
        if not events.enabled and self.lists is None:
            return
        now = datetime.now(UTC)
        runnable: dict[str, list[int]] = {}
        for job_id, status in recovered:
            try:
                job = get_job(job_id)
            except JobNotFound:  # erased meanwhile (a privacy request)
                continue
            events.publish(JobEvent.of(job, JobStatus.RUNNING))
            if status is JobStatus.QUEUED and job.not_before <= now:
                runnable.setdefault(job.queue, []).append(job_id)
        if self.lists is not None:
            for queue, ids in runnable.items():
                self.jobs(queue, ids)
