"""What people do to jobs: cancel, retry (one or in bulk), resolve a ``needs_review``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from botyard.errors import InvalidTransition
from botyard.jobs import CANCELLABLE, RESOLVABLE, RETRYABLE_BY_PERSON, JobStatus, Outcome
from botyard.store.fence import close_attempt
from botyard.store.reads import JobReads, job_record, where_matching
from botyard.store.records import JobFilter, JobRecord
from botyard.store.tables import jobs, utcnow


class PersonActions(JobReads):
    engine: Engine

    def cancel(self, job_id: int) -> JobRecord:
        """Cancel a queued or running job; a running attempt loses its lease at once."""
        now = utcnow()
        with self.engine.begin() as conn:
            current = self._get_row(conn, job_id)
            status = JobStatus(current["status"])
            if status not in CANCELLABLE:
                raise InvalidTransition(
                    f"job {job_id} is {status.value} and cannot be cancelled", status=status.value
                )
            row = (
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status.in_([s.value for s in CANCELLABLE]))
                    .values(
                        status=JobStatus.CANCELLED.value,
                        updated_at=now,
                        finished_at=now,
                        lease_expires_at=None,
                    )
                    .returning(*jobs.c)
                )
                .mappings()
                .first()
            )
            if row is None:  # it moved on between the read and the write
                raise InvalidTransition(f"job {job_id} changed status; try again")
            if status is JobStatus.RUNNING:
                error = {"type": "Cancelled", "message": "cancelled while running"}
                close_attempt(conn, job_id, current["attempt"], Outcome.CANCELLED, error, now)
            return job_record(row)

    def retry(self, job_id: int) -> JobRecord:
        """Queue a failed or ``needs_review`` job again with a fresh budget of attempts."""
        allowed = [s.value for s in RETRYABLE_BY_PERSON]
        return self._person_move(job_id, allowed, "retried", _requeue_values(utcnow()))

    def retry_failed(
        self, filters: JobFilter, *, limit: int = 1000, skip_queues: Sequence[str] = ()
    ) -> list[JobRecord]:
        """Queue again every failed job that matches ``filters`` (the bulk retry)."""
        failed = JobFilter(
            status=JobStatus.FAILED,
            automation=filters.automation,
            provider=filters.provider,
            queue=filters.queue,
            since=filters.since,
        )
        chosen = select(jobs.c.id).where(where_matching(failed)).order_by(jobs.c.id).limit(limit)
        if skip_queues:
            chosen = chosen.where(jobs.c.queue.not_in(list(skip_queues)))
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(chosen.scalar_subquery()), jobs.c.status == JobStatus.FAILED.value
                )
                .values(_requeue_values(utcnow()))
                .returning(*jobs.c)
            ).mappings()
            return sorted((job_record(r) for r in rows), key=lambda j: j.id)

    def resolve(self, job_id: int, *, succeeded: bool, note: str, actor: str | None) -> JobRecord:
        """Close a ``needs_review`` job as succeeded or failed, with a person's note."""
        now = utcnow()
        status = JobStatus.SUCCEEDED if succeeded else JobStatus.FAILED
        resolution = {"status": status.value, "note": note, "by": actor, "at": now.isoformat()}
        return self._person_move(
            job_id,
            [s.value for s in RESOLVABLE],
            "resolved",
            {
                "status": status.value,
                "resolution": resolution,
                "finished_at": now,
                "updated_at": now,
            },
        )

    def _person_move(
        self, job_id: int, allowed: list[str], verb: str, values: dict[str, Any]
    ) -> JobRecord:
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status.in_(allowed))
                    .values(values)
                    .returning(*jobs.c)
                )
                .mappings()
                .first()
            )
            if row is None:
                current = self._get_row(conn, job_id)
                raise InvalidTransition(
                    f"job {job_id} is {current['status']} and cannot be {verb}",
                    status=current["status"],
                )
            return job_record(row)


def _requeue_values(now: datetime) -> dict[str, Any]:
    """A person sends a job back to the queue: a fresh attempt budget, no side effect yet."""
    return {
        "status": JobStatus.QUEUED.value,
        "attempt_base": jobs.c.attempt,
        "not_before": now,
        "worker_id": None,
        "side_effect": None,
        "result": None,
        "finished_at": None,
        "updated_at": now,
    }
