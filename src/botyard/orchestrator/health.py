"""System health: the facts ``/status`` and ``/metrics`` report, and seed 002's rollup."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import text

from botyard.jobs import JobStatus
from botyard.settings import Settings
from botyard.store.sql import SqlStore
from botyard.store.workers import Workers

# Seed 002's thresholds.
FAILURE_RATE_YELLOW, FAILURE_RATE_RED = 0.05, 0.10
QUEUE_YELLOW, QUEUE_RED = 20, 50
UTILISATION_YELLOW = 0.80


class Level(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the rollup looks at, read from the store (the same on every replica)."""

    store_ok: bool
    counts: dict[str, int]
    finished_last_hour: dict[str, int]
    workers: dict[str, str]  # id -> online | offline
    capacity: int
    active: int
    scheduler_running: bool
    queues: dict[str, int] = field(default_factory=dict)

    @property
    def queue_depth(self) -> int:
        return self.counts.get(JobStatus.QUEUED.value, 0)

    @property
    def failure_rate(self) -> float:
        failed = self.finished_last_hour.get(JobStatus.FAILED.value, 0)
        done = failed + self.finished_last_hour.get(JobStatus.SUCCEEDED.value, 0)
        return failed / done if done else 0.0

    @property
    def utilisation(self) -> float:
        return self.active / self.capacity if self.capacity else 0.0

    @property
    def workers_online(self) -> int:
        return sum(1 for state in self.workers.values() if state == "online")


def rollup(snapshot: Snapshot) -> tuple[Level, list[str]]:
    """Green, yellow or red, with the reasons (seed 002's "System Health Indicators")."""
    red, yellow = [], []
    if not snapshot.store_ok:
        red.append("the store is unreachable")
    if not snapshot.scheduler_running:
        red.append("the scheduler is not running")
    if snapshot.workers_online == 0:
        red.append("no worker online")
    rate = snapshot.failure_rate
    if rate > FAILURE_RATE_RED:
        red.append(f"failure rate {rate:.0%} over the last hour")
    elif rate >= FAILURE_RATE_YELLOW:
        yellow.append(f"failure rate {rate:.0%} over the last hour")
    depth = snapshot.queue_depth
    if depth > QUEUE_RED:
        red.append(f"{depth} jobs queued")
    elif depth >= QUEUE_YELLOW:
        yellow.append(f"{depth} jobs queued")
    if snapshot.utilisation > UTILISATION_YELLOW:
        yellow.append(f"worker utilisation {snapshot.utilisation:.0%}")
    if red:
        return Level.RED, red + yellow
    return (Level.YELLOW, yellow) if yellow else (Level.GREEN, [])


def take_snapshot(store: SqlStore, *, stale_after: float, scheduler_running: bool) -> Snapshot:
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        status = store.processing_status(recent=0)
        queues = store.queue_depths()
    except Exception:
        return Snapshot(False, {}, {}, {}, 0, 0, scheduler_running)
    now = datetime.now(UTC)
    workers: dict[str, str] = {}
    capacity = active = 0
    for worker in store.workers.all():
        online = Workers.is_online(worker, now, stale_after)
        workers[worker.id] = "online" if online else "offline"
        if online:
            capacity += worker.capacity
            active += worker.active
    return Snapshot(
        store_ok=True,
        counts=status.counts,
        finished_last_hour=status.finished_last_hour,
        workers=workers,
        capacity=capacity,
        active=active,
        scheduler_running=scheduler_running,
        queues=queues,
    )


def stale_after(settings: Settings) -> float:
    """Seconds without a heartbeat after which a worker counts as offline."""
    return max(3 * settings.worker.heartbeat_interval, settings.lease.lease_ttl)


class Clock:
    """When this process started, for ``uptime``."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def uptime(self) -> str:
        """Seed 002's human form: ``2 days, 14:32:15``."""
        return str(timedelta(seconds=int(time.monotonic() - self.started)))


def averages(points: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float]:
    if not points:
        return {key: 0.0 for key in keys}
    return {key: round(sum(p[key] for p in points) / len(points), 1) for key in keys}
