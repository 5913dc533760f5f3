"""Plain records the store takes and returns; the tables stay inside the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botyard.jobs import JobStatus, Outcome


@dataclass(frozen=True, slots=True)
class NewJob:
    automation: str
    payload: dict[str, Any]
    queue: str = "default"
    priority: int = 0
    not_before: datetime | None = None
    idempotency_key: str | None = None
    max_attempts: int = 3
    timeout: float = 3600.0
    idempotent: bool = False
    created_by: str | None = None
    # At most concurrency_limit jobs with the same concurrency_key run at once (1 when unset).
    concurrency_key: str | None = None
    concurrency_limit: int | None = None

    @property
    def provider(self) -> str:
        return self.automation.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    number: int
    worker_id: str
    outcome: str | None
    error: dict[str, Any] | None
    side_effect: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class StepRecord:
    id: int
    attempt: int
    name: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class LogLine:
    id: int
    attempt: int
    at: datetime
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    id: int
    job_id: int
    attempt: int
    step: str | None
    name: str
    path: str
    content_type: str
    size: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: int
    automation: str
    provider: str
    queue: str
    priority: int
    status: JobStatus
    payload: dict[str, Any]
    result: Any
    error: dict[str, Any] | None
    idempotency_key: str | None
    max_attempts: int
    timeout: float
    idempotent: bool
    attempt: int
    attempt_base: int
    side_effect: str | None
    not_before: datetime
    worker_id: str | None
    lease_expires_at: datetime | None
    created_by: str | None
    resolution: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker needs to run one attempt."""

    id: int
    automation: str
    payload: dict[str, Any]
    attempt: int
    attempt_base: int
    timeout: float
    idempotent: bool
    max_attempts: int
    queue: str
    created_at: datetime
    not_before: datetime
    concurrency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """How an attempt ended, as the worker saw it."""

    job_id: int
    attempt: int
    outcome: Outcome
    max_attempts: int
    idempotent: bool
    attempt_base: int = 0
    side_effect: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None

    @classmethod
    def release(cls, job: ClaimedJob) -> Completion:
        """Hand a claimed job back to the queue without spending an attempt."""
        return cls(
            job_id=job.id,
            attempt=job.attempt,
            outcome=Outcome.RELEASED,
            max_attempts=job.max_attempts,
            idempotent=job.idempotent,
            attempt_base=job.attempt_base,
        )


@dataclass(frozen=True, slots=True)
class Activity:
    """Something an attempt reports while it runs: a log line, a step change, an evidence file."""

    job_id: int
    attempt: int
    at: datetime
    kind: str  # log | step_start | step_end | evidence
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JobFilter:
    status: JobStatus | None = None
    automation: str | None = None
    provider: str | None = None
    queue: str | None = None
    since: datetime | None = None
    # Words found in the automation, queue, provider or idempotency key; a number is a job id.
    text: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    hostname: str
    mode: str
    pid: int | None
    automations: list[str]
    queues: list[str]
    capacity: int
    version: str
    status: str
    active: int
    stats: dict[str, int]
    started_at: datetime
    last_heartbeat: datetime
    endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    role: str
    disabled: bool
    token_version: int = 0


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str | None
    action: str
    target: str | None
    client: str | None
    details: dict[str, Any]
