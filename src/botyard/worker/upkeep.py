"""The keeper thread's rounds besides lease renewals: heartbeats, and the sweeps.

Expired leases are recovered for any worker (a dead one's jobs); the host is swept for browsers
and job processes whose owner died (a worker killed with -9, say). Every round's failure is
logged and the next round tries again: none of them may end the thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from botyard.browsers import sweeper as browser_sweeper
from botyard.bus.wakeups import Wakeups
from botyard.events import EventPublisher, Heartbeat
from botyard.jobs import JobStatus
from botyard.store.sql import SqlStore
from botyard.worker import job_sweeper
from botyard.worker.config import Stats, WorkerConfig
from botyard.worker.slot import Slot

log = logging.getLogger("botyard.worker")


class Upkeep:
    def __init__(
        self,
        store: SqlStore,
        config: WorkerConfig,
        *,
        wakeups: Wakeups,
        events: EventPublisher,
        stats: Stats,
        slots: Sequence[Slot],
    ) -> None:
        self.store = store
        self.config = config
        self.wakeups = wakeups
        self.events = events
        self.stats = stats
        self.slots = slots

    def heartbeat(self, status: str) -> None:
        active = sum(1 for slot in self.slots if slot.running() is not None)
        stats = self.stats.as_dict()
        try:
            self.store.workers.heartbeat(
                self.config.worker_id, active=active, stats=stats, status=status
            )
        except Exception:
            log.exception("heartbeat failed")
        if self.events.enabled:
            self.events.heartbeat(
                Heartbeat(
                    self.config.worker_id, self.config.heartbeat_fields(status, active), stats
                )
            )

    def sweep_host(self) -> None:
        """Kill browsers and job processes whose owner died; each is logged, and leaked
        browsers are recorded."""
        try:
            leaks = browser_sweeper.sweep()
            self.store.browsers.add_leaks(self.config.worker_id, [leak.record() for leak in leaks])
        except Exception:
            log.exception("browser sweep failed")
        try:
            job_sweeper.sweep()
        except Exception:
            log.exception("job process sweep failed")

    def recover_expired(self) -> None:
        try:
            recovered = self.store.recover_expired()
        except Exception:
            log.exception("lease sweep failed")
            return
        if recovered:
            log.warning("recovered %d jobs whose worker stopped renewing", len(recovered))
            self.announce_recovered(recovered)

    def announce_recovered(self, recovered: list[tuple[int, JobStatus]]) -> None:
        """Their events and wake-ups (Redis entries), and the jobs waiting for keys they held."""
        self.wakeups.recovered(recovered, partial(self.store.get_job, detail=False), self.events)
        for queue_name in self.config.queues:
            self.wakeups.queue(queue_name)
