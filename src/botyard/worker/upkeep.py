"""The upkeep thread: heartbeats and the sweeps, apart from the keeper that renews leases.

A late renewal makes a job's supervisor kill a healthy job (the fence), so renewals never wait
behind this thread's slower work: the host sweep reads every process's environment, and a
heartbeat or the expired-lease sweep may wait on a busy store. Expired leases are recovered for
any worker (a dead one's jobs); the host is swept for browsers and job processes whose owner
died (a worker killed with -9, say). Every round's failure is logged and the next round tries
again: none of them may end the thread.
"""

from __future__ import annotations

import logging
import threading
import time
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

HOST_SWEEP_INTERVAL = 30.0  # browsers and job processes whose owner died


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

    def start(self, stopped: threading.Event, stopping: threading.Event) -> threading.Thread:
        """Heartbeats and sweeps on a thread of their own until ``stopped``; the host was swept
        at start, so its next sweep comes an interval later."""
        thread = threading.Thread(
            target=self._rounds, args=(stopped, stopping), name="botyard-upkeep", daemon=True
        )
        thread.start()
        return thread

    def _rounds(self, stopped: threading.Event, stopping: threading.Event) -> None:
        cfg = self.config
        now = time.monotonic()
        next_beat, next_sweep, next_host_sweep = now, now, now + HOST_SWEEP_INTERVAL
        while not stopped.wait(
            max(0.0, min(next_beat, next_sweep, next_host_sweep) - time.monotonic())
        ):
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + cfg.heartbeat_interval
                self.heartbeat("stopping" if stopping.is_set() else "online")
            if now >= next_host_sweep:
                next_host_sweep = now + HOST_SWEEP_INTERVAL
                self.sweep_host()
            if now >= next_sweep:
                next_sweep = now + cfg.recover_interval
                if not stopping.is_set():
                    self.recover_expired()

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
