"""Job status events and worker heartbeats for the outside world (pub/sub, heartbeat keys).

The store is the truth; these are announcements. Publishing never fails or slows a job: the
Redis backend (``botyard.bus.redis_events``) sends from a thread of its own and drops what it
cannot send. Without Redis the :class:`NullPublisher` does nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from botyard.jobs import JobStatus
    from botyard.store.records import JobRecord

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "botyard"


def jobs_channel(prefix: str = DEFAULT_PREFIX, queue: str | None = None) -> str:
    """``botyard:events:jobs`` (every job), ``botyard:events:jobs:<queue>`` (one queue)."""
    base = f"{prefix}:events:jobs"
    return base if queue is None else f"{base}:{queue}"


def worker_key(worker_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``botyard:worker:<id>``: the heartbeat hash; ``…:stats`` beside it holds the counters."""
    return f"{prefix}:worker:{worker_id}"


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One job status change (``type: job.status``, schema version 1)."""

    job_id: int
    attempt: int
    status: str
    previous: str | None
    automation: str
    queue: str
    worker_id: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "type": "job.status",
            "job_id": self.job_id,
            "attempt": self.attempt,
            "status": self.status,
            "previous": self.previous,
            "automation": self.automation,
            "queue": self.queue,
            "worker_id": self.worker_id,
            "at": self.at.isoformat(),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def of(cls, job: JobRecord, previous: JobStatus | None) -> JobEvent:
        """The status ``job`` is in now, coming from ``previous``."""
        return cls(
            job.id,
            job.attempt,
            job.status.value,
            None if previous is None else previous.value,
            job.automation,
            job.queue,
            job.worker_id,
        )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a worker announces at each heartbeat."""

    worker_id: str
    fields: dict[str, str]
    stats: dict[str, int]


class EventPublisher(Protocol):
    """Where job status events and heartbeats go; every method returns at once."""

    enabled: bool

    def publish(self, event: JobEvent) -> None: ...

    def heartbeat(self, beat: Heartbeat) -> None: ...

    def flush(self, timeout: float = 5.0) -> bool: ...

    def close(self) -> None: ...


class NullPublisher:
    """No Redis: events and heartbeats go nowhere, at no cost."""

    enabled = False

    def publish(self, event: JobEvent) -> None:
        pass

    def heartbeat(self, beat: Heartbeat) -> None:
        pass

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def close(self) -> None:
        pass
