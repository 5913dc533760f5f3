"""SQLAlchemy tables of the job store. Migrations in ``migrations/`` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from botyard.unstorable import UNSTORABLE


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Reported(TypeDecorator[str]):
    """Text a job reports about itself (log lines, step, side-effect and evidence names), kept as
    well as the column can: NUL and lone surrogates become U+FFFD, and what is longer than the
    column is cut. Refusing it instead would not reach the job: the worker retries a refused
    write for good, and every later write of that worker, its next jobs' too, waits behind it."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        value = UNSTORABLE.sub("\ufffd", value)
        length: int | None = getattr(self.impl, "length", None)
        return value[:length] if length else value


class ReportedText(Reported):
    impl = Text
    cache_ok = True  # SQLAlchemy asks each class for itself


Json = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("automation", String(200), nullable=False),
    Column("provider", String(100), nullable=False),
    Column("queue", String(100), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("payload", Json, nullable=False),
    Column("result", Json),
    Column("error", Json),
    Column("idempotency_key", String(255), unique=True),
    Column("max_attempts", Integer, nullable=False),
    Column("timeout", Float, nullable=False),
    Column("idempotent", Boolean, nullable=False),
    Column("attempt", Integer, nullable=False),
    # The attempt a run began after: a person's retry starts a fresh budget of max_attempts.
    Column("attempt_base", Integer, nullable=False),
    Column("side_effect", Reported(200)),
    Column("not_before", UTCDateTime, nullable=False),
    Column("worker_id", String(200)),
    Column("lease_expires_at", UTCDateTime),
    Column("created_by", String(150)),
    Column("resolution", Json),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    # Jobs with the same key share something (a portal account): at most concurrency_limit of
    # them run at once, each in its own slot below the limit (see store/claims.py).
    Column("concurrency_key", String(255)),
    Column("concurrency_limit", Integer),
    Column("concurrency_slot", Integer),
)
# The claim reads queued jobs of a queue by priority then age; the sweep reads running leases.
Index(
    "ix_jobs_claim",
    jobs.c.queue,
    jobs.c.priority.desc(),
    jobs.c.id,
    postgresql_where=text("status = 'queued'"),
    sqlite_where=text("status = 'queued'"),
)
Index(
    "ix_jobs_lease",
    jobs.c.lease_expires_at,
    postgresql_where=text("status = 'running'"),
    sqlite_where=text("status = 'running'"),
)
Index("ix_jobs_status_created", jobs.c.status, jobs.c.created_at)
# Two running jobs never hold the same slot of a key: the claim's guarantee, and its index for
# counting a key's running jobs.
Index(
    "uq_jobs_concurrency_slot",
    jobs.c.concurrency_key,
    jobs.c.concurrency_slot,
    unique=True,
    postgresql_where=text("status = 'running' AND concurrency_key IS NOT NULL"),
    sqlite_where=text("status = 'running' AND concurrency_key IS NOT NULL"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("worker_id", String(200), nullable=False),
    Column("outcome", String(20)),
    Column("error", Json),
    Column("side_effect", Reported(200)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    # When the job became runnable for this attempt (its not_before): dispatch latency.
    Column("ready_at", UTCDateTime),
    UniqueConstraint("job_id", "number", name="uq_attempts_job_number"),
)

steps = Table(
    "steps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("name", Reported(200), nullable=False),
    Column("kind", String(20), nullable=False),  # step | side_effect
    Column("status", String(20), nullable=False),  # running | done | failed
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)
Index("ix_steps_job", steps.c.job_id, steps.c.id)

log_lines = Table(
    "log_lines",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("level", Reported(10), nullable=False),
    Column("message", ReportedText, nullable=False),
)
Index("ix_log_lines_job", log_lines.c.job_id, log_lines.c.id)

evidence = Table(
    "evidence",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("step", Reported(200)),
    Column("name", Reported(255), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("content_type", Reported(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_evidence_job", evidence.c.job_id)

workers = Table(
    "workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("pid", Integer),
    Column("automations", Json, nullable=False),
    Column("queues", Json, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("version", String(50), nullable=False),
    Column("status", String(20), nullable=False),  # online | stopping | offline
    Column("active", Integer, nullable=False),
    Column("stats", Json, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_heartbeat", UTCDateTime, nullable=False),
    Column("endpoint", String(500)),  # agents: the URL the orchestrator pushes jobs to
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(150), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(20), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False),
    # In every token of the user; raised by logout, a new password or role, disable and delete.
    Column("token_version", Integer, nullable=False, server_default=text("0")),
    sqlite_autoincrement=True,  # a deleted user's id is never reused: tokens name users by id
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(150)),
    Column("action", String(100), nullable=False),
    Column("target", String(255)),
    Column("client", String(100)),
    Column("details", Json, nullable=False),
)
Index("ix_audit_events_at", audit_events.c.at)


leases = Table(
    "leases",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

maintenance_runs = Table(
    "maintenance_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job", String(100), nullable=False),
    Column("replica", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("outcome", String(20), nullable=False),  # running | ok | error
    Column("detail", Json),
)
Index("ix_maintenance_runs_job", maintenance_runs.c.job, maintenance_runs.c.id)

metrics_samples = Table(
    "metrics_samples",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("queued_jobs", Integer, nullable=False),
    Column("running_jobs", Integer, nullable=False),
    Column("completed_jobs", Integer, nullable=False),
    Column("failed_jobs", Integer, nullable=False),
    Column("needs_review_jobs", Integer, nullable=False),
    Column("cancelled_jobs", Integer, nullable=False),
    Column("workers_online", Integer, nullable=False),
)
Index("ix_metrics_samples_at", metrics_samples.c.at)

privacy_requests = Table(
    "privacy_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("reference", String(40), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),  # access | correction | deletion
    Column("subject", String(200), nullable=False),  # the identifier the request is about
    Column("contact", String(320), nullable=False),
    Column("details", Text),
    Column("status", String(20), nullable=False),  # received | fulfilled | rejected
    Column("received_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("closed_by", String(150)),
    Column("note", Text),
    Column("outcome", Json),  # counts of what was exported, redacted or deleted
)
Index("ix_privacy_requests_status", privacy_requests.c.status, privacy_requests.c.id)

# Per TOTP account (provider or provider:account): the last time step handed out, so that two
# jobs never get the same code, and what the codes did at the portal.
totp_ledger = Table(
    "totp_ledger",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("provider", String(100), nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("issued", BigInteger, nullable=False),
    Column("succeeded", BigInteger, nullable=False),
    Column("failed", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


# A job's browser session (opened and closed by its attempt), one provisioned through the API
# (job_id null, owner = the orchestrator replica), or a leaked browser the sweeper killed.
browser_sessions = Table(
    "browser_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("job_id", Id, ForeignKey("jobs.id", ondelete="CASCADE")),
    Column("attempt", Integer),
    Column("owner", String(200)),
    Column("provider", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("endpoint", String(1024)),
    Column("warm", Boolean, nullable=False),
    Column("ready_seconds", Float),
    Column("pid", Integer),
    Column("status", String(20), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
)
Index("ix_browser_sessions_status", browser_sessions.c.status)
Index("ix_browser_sessions_job", browser_sessions.c.job_id)


def utcnow() -> datetime:
    return datetime.now(UTC)


JsonDict = dict[str, Any]
