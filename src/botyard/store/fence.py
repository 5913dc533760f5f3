"""The fence every write of a running attempt passes, and closing an attempt's rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, update

from botyard.jobs import JobStatus, Outcome
from botyard.store.tables import attempts, jobs, steps

_RUNNING = JobStatus.RUNNING.value


def fenced(stmt: Any, job_id: int, attempt: int) -> Any:
    """Restrict a write to the attempt that holds the job: the fence every attempt write passes."""
    return stmt.where(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == _RUNNING)


def close_attempt(
    conn: Connection,
    job_id: int,
    attempt: int,
    outcome: Outcome,
    error: dict[str, Any] | None,
    now: datetime,
) -> None:
    conn.execute(
        update(attempts)
        .where(attempts.c.job_id == job_id, attempts.c.number == attempt)
        .values(outcome=outcome.value, error=error, finished_at=now)
    )
    step_status = "done" if outcome is Outcome.SUCCEEDED else "failed"
    conn.execute(
        update(steps)
        .where(steps.c.job_id == job_id, steps.c.attempt == attempt, steps.c.status == "running")
        .values(status=step_status, finished_at=now)
    )
