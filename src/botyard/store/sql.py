"""The SQL job store (SQLite or PostgreSQL): every job state change is one fenced statement."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    func,
    literal,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from botyard.errors import InvalidTransition
from botyard.jobs import (
    JobStatus,
    Outcome,
    decide,
)
from botyard.store import browsers, claims
from botyard.store.accounts import AuditLog, Users
from botyard.store.actions import PersonActions
from botyard.store.completions import Closing, close
from botyard.store.engine import build_engine, upgrade
from botyard.store.fence import close_attempt, fenced
from botyard.store.figures import Figures
from botyard.store.leases import Leases
from botyard.store.maintenance import MaintenanceLog, MetricsHistory
from botyard.store.privacy import PrivacyRequests
from botyard.store.reads import job_record
from botyard.store.records import (
    Activity,
    ClaimedJob,
    Completion,
    JobRecord,
    NewJob,
)
from botyard.store.tables import attempts, evidence, jobs, steps, utcnow
from botyard.store.workers import Workers

_RUNNING = JobStatus.RUNNING.value
_SLOT_RACES = 20  # claims lost to a concurrent claim of the same key before giving up


class SqlStore(PersonActions):
    """Jobs, attempts, steps, logs and evidence; workers, users and the audit log hang off it.

    Reads come from ``JobReads`` and a person's actions from ``PersonActions``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.workers = Workers(engine)
        self.users = Users(engine)
        self.audit = AuditLog(engine)
        self.leases = Leases(engine)
        self.maintenance = MaintenanceLog(engine)
        self.metrics = MetricsHistory(engine)
        self.privacy = PrivacyRequests(engine)
        self.figures = Figures(engine)
        self.browsers = browsers.BrowserSessions(engine)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def migrate(self) -> None:
        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- submission ---------------------------------------------------------

    def submit(self, new: NewJob) -> tuple[JobRecord, bool]:
        """Store a job; with an ``idempotency_key`` already used, return the first job instead."""
        with self.engine.begin() as conn:
            row, created = self._insert(conn, new)
            return job_record(row), created

    def start_external(self, new: NewJob, worker_id: str, lease_ttl: float) -> ClaimedJob:
        """Store a job that runs outside Botyard's workers (a standby task), already started.

        The job is inserted and moved from queued to running in one transaction, with the same
        values a claim sets, so the attempt closes through the usual fenced ``finish``. The
        same ``idempotency_key`` again returns the attempt already open.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            row, created = self._insert(conn, new)
            if not created:
                if row["status"] != _RUNNING or row["worker_id"] != worker_id:
                    raise InvalidTransition(
                        f"job {row['id']} is {row['status']} already", status=row["status"]
                    )
                return _claimed(row)
            moved = (
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row["id"], jobs.c.status == JobStatus.QUEUED.value)
                    .values(
                        status=_RUNNING,
                        attempt=jobs.c.attempt + 1,
                        worker_id=worker_id,
                        lease_expires_at=now + timedelta(seconds=lease_ttl),
                        updated_at=now,
                        started_at=now,
                    )
                    .returning(*jobs.c)
                )
                .mappings()
                .one()
            )
            conn.execute(
                attempts.insert().values(
                    job_id=moved["id"],
                    number=moved["attempt"],
                    worker_id=worker_id,
                    started_at=now,
                    ready_at=moved["not_before"],
                )
            )
            return _claimed(moved)

    def _insert(self, conn: Connection, new: NewJob) -> tuple[Any, bool]:
        now = utcnow()
        values = {
            "automation": new.automation,
            "provider": new.provider,
            "queue": new.queue,
            "priority": new.priority,
            "status": JobStatus.QUEUED.value,
            "payload": new.payload,
            "idempotency_key": new.idempotency_key,
            "max_attempts": new.max_attempts,
            "timeout": new.timeout,
            "idempotent": new.idempotent,
            "attempt": 0,
            "attempt_base": 0,
            # A moment in the past means "now": not_before is when the job became runnable.
            "not_before": max(new.not_before, now) if new.not_before else now,
            "created_by": new.created_by,
            "created_at": now,
            "updated_at": now,
            "concurrency_key": new.concurrency_key,
            "concurrency_limit": (
                None if new.concurrency_key is None else max(1, new.concurrency_limit or 1)
            ),
        }
        insert = (postgresql.insert if self.is_postgres else sqlite.insert)(jobs).values(values)
        if new.idempotency_key is not None:
            insert = insert.on_conflict_do_nothing(index_elements=["idempotency_key"])
        row = conn.execute(insert.returning(*jobs.c)).mappings().first()
        if row is not None:
            return row, True
        existing = (
            conn.execute(select(jobs).where(jobs.c.idempotency_key == new.idempotency_key))
            .mappings()
            .one()
        )
        return existing, False

    # -- the worker's side --------------------------------------------------

    def claim(
        self,
        worker_id: str,
        *,
        queues: Sequence[str],
        automations: Sequence[str],
        limit: int,
        lease_ttl: float,
    ) -> list[ClaimedJob]:
        """Take up to ``limit`` runnable jobs for ``worker_id`` in one atomic statement.

        Never more running jobs per concurrency key than its limit (see ``store/claims.py``).
        """
        if limit <= 0 or not queues or not automations:
            return []
        lost = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    return claims.claim(
                        conn,
                        worker_id=worker_id,
                        queues=list(queues),
                        automations=list(automations),
                        limit=limit,
                        lease_ttl=lease_ttl,
                    )
            except IntegrityError as exc:
                # Another claim took the slot of a key first and has committed: a new snapshot
                # sees it. Rare (see store/claims.py), and never for jobs without a key.
                lost += 1
                if lost >= _SLOT_RACES or not claims.lost_slot_race(exc):
                    raise

    def renew_leases(
        self, worker_id: str, held: Iterable[tuple[int, int]], lease_ttl: float
    ) -> set[tuple[int, int]]:
        """Extend the leases ``worker_id`` still holds; returns the (job, attempt) pairs it kept."""
        held = list(held)
        if not held:
            return set()
        expires = utcnow() + timedelta(seconds=lease_ttl)
        stmt = (
            update(jobs)
            .where(
                tuple_(jobs.c.id, jobs.c.attempt).in_(held),
                jobs.c.worker_id == worker_id,
                jobs.c.status == _RUNNING,
            )
            .values(lease_expires_at=expires)
            .returning(jobs.c.id, jobs.c.attempt)
        )
        with self.engine.begin() as conn:
            return {(r.id, r.attempt) for r in conn.execute(stmt)}

    def mark_side_effect(self, job_id: int, attempt: int, name: str) -> bool:
        """Durably record that the attempt starts changing the outside world. False: lease lost."""
        now = utcnow()
        # Typed as the column, so that it is stored as the column keeps reports (``Reported``).
        reported = literal(name, type_=jobs.c.side_effect.type)
        with self.engine.begin() as conn:
            kept = conn.execute(
                fenced(update(jobs), job_id, attempt)
                .values(side_effect=func.coalesce(jobs.c.side_effect, reported), updated_at=now)
                .returning(jobs.c.id)
            ).first()
            if kept is None:
                return False
            conn.execute(
                update(attempts)
                .where(attempts.c.job_id == job_id, attempts.c.number == attempt)
                .values(side_effect=func.coalesce(attempts.c.side_effect, reported))
            )
            conn.execute(
                steps.insert().values(
                    job_id=job_id,
                    attempt=attempt,
                    name=name,
                    kind="side_effect",
                    status="running",
                    started_at=now,
                )
            )
        return True

    def record_activity(self, items: Sequence[Activity]) -> int:
        """Store log lines, step changes and evidence of attempts that still hold their job.

        Returns how many items were refused because their attempt lost the job.
        """
        if not items:
            return 0
        pairs = {(a.job_id, a.attempt) for a in items}
        with self.engine.begin() as conn:
            live = {
                (r.id, r.attempt)
                for r in conn.execute(
                    select(jobs.c.id, jobs.c.attempt).where(
                        tuple_(jobs.c.id, jobs.c.attempt).in_(list(pairs)),
                        jobs.c.status == _RUNNING,
                    )
                )
            }
            kept = [a for a in items if (a.job_id, a.attempt) in live]
            claims.write_activity(conn, kept)
            browsers.write_sessions(conn, kept)
        return len(items) - len(kept)

    def finish(self, completions: Sequence[Completion]) -> list[JobStatus | None]:
        """Close attempts; each result is the job's new status, or None when fenced out."""
        now = utcnow()
        closings = [Closing.of(c, now) for c in completions]
        with self.engine.begin() as conn:
            kept = close(conn, closings, now)
        return [c.status if (c.job_id, c.attempt) in kept else None for c in closings]

    # -- recovery -----------------------------------------------------------

    def recover_expired(self, limit: int = 500) -> list[tuple[int, JobStatus]]:
        """Give back jobs whose lease ran out: requeued when safe, else ``needs_review``."""
        now = utcnow()
        recovered: list[tuple[int, JobStatus]] = []
        query = (
            select(
                jobs.c.id,
                jobs.c.attempt,
                jobs.c.attempt_base,
                jobs.c.max_attempts,
                jobs.c.idempotent,
                jobs.c.side_effect,
            )
            .where(jobs.c.status == literal_column("'running'"), jobs.c.lease_expires_at < now)
            .order_by(jobs.c.lease_expires_at)
            .limit(limit)
        )
        if self.is_postgres:
            query = query.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            for row in conn.execute(query).all():
                decision = decide(
                    Outcome.LEASE_EXPIRED,
                    attempt=row.attempt - row.attempt_base,
                    max_attempts=row.max_attempts,
                    idempotent=row.idempotent,
                    side_effect_started=row.side_effect is not None,
                )
                error = {
                    "type": "LeaseExpired",
                    "message": "the worker running this attempt stopped renewing its lease",
                }
                values: dict[str, Any] = {
                    "status": decision.status.value,
                    "updated_at": now,
                    "lease_expires_at": None,
                    "error": error,
                }
                if decision.status is JobStatus.QUEUED:
                    values["not_before"] = now
                    values["worker_id"] = None
                else:
                    values["finished_at"] = now
                kept = conn.execute(
                    fenced(update(jobs), row.id, row.attempt)
                    .where(jobs.c.lease_expires_at < now)
                    .values(values)
                    .returning(jobs.c.id)
                ).first()
                if kept is not None:
                    close_attempt(conn, row.id, row.attempt, Outcome.LEASE_EXPIRED, error, now)
                    recovered.append((row.id, decision.status))
        return recovered

    def release_orphans(self, worker_id: str) -> list[tuple[int, JobStatus]]:
        """Recover jobs a previous run of ``worker_id`` left running (and any other expired
        lease on the way); returns what was recovered, as ``recover_expired`` does."""
        past = utcnow() - timedelta(seconds=1)
        with self.engine.begin() as conn:
            orphaned = conn.execute(
                update(jobs)
                .where(jobs.c.worker_id == worker_id, jobs.c.status == _RUNNING)
                .values(lease_expires_at=past)
            ).rowcount
        return self.recover_expired() if orphaned else []

    def expire_lease(self, job_id: int, attempt: int, worker_id: str) -> bool:
        """End the lease of an attempt its worker no longer knows; the sweep then recovers it."""
        past = utcnow() - timedelta(seconds=1)
        with self.engine.begin() as conn:
            changed = conn.execute(
                fenced(update(jobs), job_id, attempt)
                .where(jobs.c.worker_id == worker_id)
                .values(lease_expires_at=past)
            ).rowcount
        return bool(changed)

    # -- evidence -----------------------------------------------------------

    def delete_evidence(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return int(conn.execute(evidence.delete().where(evidence.c.id.in_(list(ids)))).rowcount)


def _claimed(row: Any) -> ClaimedJob:
    return ClaimedJob(**{f.name: row[f.name] for f in fields(ClaimedJob)})


def open_store(
    url: str, *, migrate: bool = True, pool_size: int = 10, pre_ping: bool = True
) -> SqlStore:
    """Open the store at ``url`` and bring its schema up to date."""
    store = SqlStore(build_engine(url, pool_size=pool_size, pre_ping=pre_ping))
    if migrate:
        store.migrate()
    return store


__all__ = ["SqlStore", "open_store"]
