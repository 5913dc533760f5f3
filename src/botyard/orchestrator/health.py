"""System health: the facts ``/status`` and ``/metrics`` report, the rollup, readiness."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from botyard.jobs import JobStatus
from botyard.log_throttle import LogThrottle
from botyard.settings import Settings
from botyard.store.sql import SqlStore
from botyard.store.tables import leases, utcnow
from botyard.store.workers import Workers

log = logging.getLogger("botyard.api")
_warn = LogThrottle(log)

# The rollup's thresholds (the documented health indicators).
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
    """Green, yellow or red, with the reasons (the documented "System Health Indicators")."""
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
        with store.engine.connect().execution_options(readonly=True) as conn:
            conn.execute(text("SELECT 1"))  # read-only: no queueing for SQLite's write lock
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
        """The human form: ``2 days, 14:32:15``."""
        return str(timedelta(seconds=int(time.monotonic() - self.started)))


def averages(points: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float]:
    if not points:
        return {key: 0.0 for key in keys}
    return {key: round(sum(p[key] for p in points) / len(points), 1) for key in keys}


# Readiness answers within a probe's usual timeout even when a writer holds SQLite's lock.
PROBE_TIMEOUT_MS = 2000
# How long a store check's answer stands. /health/ready needs no login, and each check writes:
# without this, a flood of probes would queue the API's threads for SQLite's write lock.
READY_CACHE_SECONDS = 1.5


class CachedCheck:
    """``check()``'s answer, taken at most once per ``ttl`` seconds and one at a time.

    While a check runs, callers get the answer before it (or wait for it, when there is none
    yet): N readiness calls at once make one store write, not N.
    """

    def __init__(self, check: Callable[[], str], ttl: float = READY_CACHE_SECONDS) -> None:
        self._check = check
        self._ttl = ttl
        self._running = threading.Lock()
        self._last: tuple[float, str] | None = None  # (monotonic time taken, answer)

    def _fresh(self) -> str | None:
        last = self._last
        if last is not None and time.monotonic() - last[0] < self._ttl:
            return last[1]
        return None

    def __call__(self) -> str:
        if (answer := self._fresh()) is not None:
            return answer
        last = self._last
        if last is not None and not self._running.acquire(blocking=False):
            return last[1]  # another thread is checking: its answer comes in a moment
        if last is None:
            self._running.acquire()
        try:
            if (answer := self._fresh()) is not None:  # taken while this thread waited
                return answer
            answer = self._check()
            self._last = (time.monotonic(), answer)
            return answer
        finally:
            self._running.release()


_store_checks: weakref.WeakKeyDictionary[Engine, CachedCheck] = weakref.WeakKeyDictionary()
_store_checks_lock = threading.Lock()


def store_state(engine: Engine) -> str:
    """``ok``, or what is wrong with the store, as readiness reports it (cached, see above)."""
    with _store_checks_lock:
        check = _store_checks.get(engine)
        if check is None:
            check = _store_checks[engine] = CachedCheck(partial(_store_state, engine))
    return check()


def _store_state(engine: Engine) -> str:
    try:
        # Read-only: on SQLite a write transaction would queue for the lock (up to 30 s).
        with engine.connect().execution_options(readonly=True) as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
    # Reachable is not enough: a full disk answers SELECT 1 and refuses every submit.
    problem = store_write_problem(engine)
    return "ok" if problem is None else f"cannot write: {problem}"


def store_write_problem(engine: Engine) -> str | None:
    """Why the store cannot take a write now (None when it can), in a few words.

    ``SELECT 1`` still answers on a full disk while every submit fails; so readiness commits a
    write: a probe row inserted and deleted in one transaction. The commit writes the changed
    pages (to the WAL on SQLite, which has to grow for it), so no room left fails it.
    """
    sqlite = engine.dialect.name == "sqlite"
    name = f"readiness-probe:{uuid.uuid4().hex}"
    try:
        with engine.connect() as conn:
            raw: Any = conn.connection.driver_connection
            if sqlite:  # set outside a transaction; the pool's connections wait 30 s otherwise
                waits = raw.execute("PRAGMA busy_timeout").fetchone()[0]
                raw.execute(f"PRAGMA busy_timeout={PROBE_TIMEOUT_MS}")
            try:
                with conn.begin():
                    if not sqlite:
                        conn.execute(text(f"SET LOCAL statement_timeout = {PROBE_TIMEOUT_MS}"))
                    now = utcnow()
                    conn.execute(
                        leases.insert().values(
                            name=name, holder="readiness", acquired_at=now, expires_at=now
                        )
                    )
                    conn.execute(leases.delete().where(leases.c.name == name))
            finally:
                if sqlite:
                    raw.execute(f"PRAGMA busy_timeout={int(waits)}")
    except Exception as exc:
        reason = _write_failure(exc)
        _warn(f"readiness: the store cannot write ({reason}): {exc.__cause__ or exc}", key=reason)
        return reason
    return None


def _write_failure(exc: BaseException) -> str:
    chain: list[BaseException] = [exc]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) and len(chain) < 5:
        chain.append(cause)  # StoreUnavailable says little; what it was raised from says why
    text_ = " ".join(str(e) for e in chain).lower()
    if any(s in text_ for s in ("disk is full", "no space left", "could not extend file")):
        return "the disk is full"
    if "readonly" in text_ or "read-only" in text_:
        return "the database is read-only"
    if "locked" in text_ or "timeout" in text_ or "canceling statement" in text_:
        return f"no write lock within {PROBE_TIMEOUT_MS / 1000:g} s"
    return type(chain[-1]).__name__


def disk_problems(folders: Iterable[tuple[str, Path]], min_free: int) -> list[str]:
    """A line for each named folder whose file system has under ``min_free`` bytes left."""
    found: list[str] = []
    seen: set[int] = set()
    for what, folder in folders:
        try:
            device = os.stat(folder).st_dev
            if device in seen:
                continue
            seen.add(device)
            free = shutil.disk_usage(folder).free
        except FileNotFoundError:
            continue  # not made yet (evidence comes with the first job that keeps some)
        except OSError as exc:
            found.append(f"the {what} cannot be read ({exc.strerror})")
            continue
        if free < min_free:
            found.append(
                f"the {what} has {_mib(free)} free, under the {_mib(min_free)}"
                " readiness asks for (BOTYARD_MIN_FREE_BYTES)"
            )
    return found


def _mib(count: int) -> str:
    return f"{count / 2**20:.1f} MiB"
