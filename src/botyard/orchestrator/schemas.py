"""Request and response bodies of the API, kept apart from the store's tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from botyard.jobs import JobStatus
from botyard.store.records import JobRecord, WorkerRecord

#: The stores' ids are 64-bit integers and attempt numbers 32-bit ones: a larger number in a
#: query fails inside the driver (a 500), so every number that reaches the store is bounded
#: where it comes in (path, query, body).
MAX_INT = 2**63 - 1
MAX_INT32 = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_INT)]
Offset = Annotated[int, Field(ge=0, le=MAX_INT)]
AttemptNumber = Annotated[int, Field(ge=1, le=MAX_INT32)]


def _in_utc(value: datetime) -> datetime:
    """A naive time is UTC. One with no UTC equivalent (year 1 at +01:00, year 9999 at -01:00)
    is refused here, not found out by the store."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


#: A time that comes in (``since``, ``not_before``): in UTC, as the store keeps them.
Instant = Annotated[datetime, AfterValidator(_in_utc)]


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    automation: str = Field(min_length=1, max_length=200, examples=["mfn.validation"])
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = Field(default=None, min_length=1, max_length=100)
    priority: int = Field(default=0, ge=-1000, le=1000)
    not_before: Instant | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    timeout: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)


class AttemptOut(BaseModel):
    number: int
    worker_id: str
    outcome: str | None
    error: dict[str, Any] | None
    side_effect: str | None
    started_at: datetime
    finished_at: datetime | None


class StepOut(BaseModel):
    attempt: int
    name: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None


class JobOut(BaseModel):
    id: int
    automation: str
    provider: str
    action: str
    queue: str
    priority: int
    status: JobStatus
    payload: dict[str, Any]
    result: Any
    error: dict[str, Any] | None
    idempotency_key: str | None
    attempt: int
    max_attempts: int
    timeout: float
    idempotent: bool
    concurrency_key: str | None = Field(
        description="at most the automation's limit of running jobs share this key",
        examples=["mfn:ops"],
    )
    side_effect: str | None
    not_before: datetime
    worker_id: str | None
    created_by: str | None
    resolution: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        return cls(**_job_fields(job))


class JobDetail(JobOut):
    attempts: list[AttemptOut]
    steps: list[StepOut]

    @classmethod
    def of(cls, job: JobRecord) -> JobDetail:
        return cls(
            **_job_fields(job),
            attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in job.attempts],
            steps=[StepOut.model_validate(s, from_attributes=True) for s in job.steps],
        )


def _job_fields(job: JobRecord) -> dict[str, Any]:
    fields = {name: getattr(job, name) for name in JobOut.model_fields if name != "action"}
    fields["action"] = job.automation.split(".", 1)[1] if "." in job.automation else ""
    return fields


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["succeeded", "failed"]
    note: str = Field(min_length=1, max_length=2000)


class LogLineOut(BaseModel):
    id: int
    attempt: int
    at: datetime
    level: str
    message: str


class JobLogs(BaseModel):
    job_id: int
    lines: list[LogLineOut]


class WorkerRedisOut(BaseModel):
    """The worker's heartbeat key in Redis: present while it beats, and its counters."""

    alive: bool
    ttl: int | None
    stats: dict[str, int]


class WorkerOut(BaseModel):
    id: str
    hostname: str
    mode: str
    status: str
    online: bool
    automations: list[str]
    queues: list[str]
    capacity: int
    active: int
    version: str
    stats: dict[str, int]
    started_at: datetime
    last_heartbeat: datetime
    endpoint: str | None = None  # agents: where the orchestrator pushes jobs
    redis: WorkerRedisOut | None = None  # only when Redis is configured

    @classmethod
    def of(
        cls, worker: WorkerRecord, *, online: bool, redis: dict[str, Any] | None = None
    ) -> WorkerOut:
        fields = {n: getattr(worker, n) for n in cls.model_fields if n not in ("online", "redis")}
        extra = WorkerRedisOut(**redis) if redis is not None else None
        return cls(**fields, online=online, redis=extra)

    @model_serializer(mode="wrap")
    def _without_absent_redis(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("redis", True) is None:
            del data["redis"]  # without Redis the answer stays what it always was
        return data


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class Health(BaseModel):
    status: str
    timestamp: str


class RetryFilter(BaseModel):
    """Which failed jobs ``POST /jobs/retry`` queues again; every failed job without a filter."""

    model_config = ConfigDict(extra="forbid")

    automation: str | None = None
    provider: str | None = None
    queue: str | None = None
    since: Instant | None = None
    limit: int = Field(default=1000, ge=1, le=10000)


class BulkRetryOut(BaseModel):
    status: str
    retried: int
    job_ids: list[int]


class ActivityOut(BaseModel):
    job_id: int
    automation: str
    status: JobStatus
    attempt: int
    step: str | None
    updated_at: datetime


class ProcessingStatusOut(BaseModel):
    counts: dict[str, int]
    throughput: dict[str, Any]
    recent_activity: list[ActivityOut]


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str | None
    action: str = Field(examples=["login", "login_failed", "job_submitted"])
    target: str | None = Field(examples=["job:42"])
    client: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    total: int
    limit: int
    offset: int
