"""Closing attempts in batches: a constant number of statements however many jobs finish.

The writer thread hands over every completion it has; each becomes one row of the batch. Every
row is fenced by ``(job id, attempt, status = running)`` exactly like a single write would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Integer,
    String,
    bindparam,
    case,
    func,
    literal_column,
    null,
    select,
    text,
    update,
)

from botyard.jobs import JobStatus, Outcome, decide
from botyard.store.engine import jsonb_text
from botyard.store.records import Completion
from botyard.store.tables import Json, UTCDateTime, attempts, jobs, steps


@dataclass(frozen=True, slots=True)
class Closing:
    """One completion with its decision: the values its job and attempt rows get."""

    job_id: int
    attempt: int
    status: JobStatus
    outcome: Outcome
    result: Any
    error: dict[str, Any] | None
    not_before: datetime | None  # set when the job goes back to the queue
    spends_attempt: bool  # a release hands the job back without using up an attempt

    @classmethod
    def of(cls, c: Completion, now: datetime) -> Closing:
        decision = decide(
            c.outcome,
            attempt=c.attempt - c.attempt_base,
            max_attempts=c.max_attempts,
            idempotent=c.idempotent,
            side_effect_started=c.side_effect is not None,
        )
        requeued = decision.status is JobStatus.QUEUED
        return cls(
            job_id=c.job_id,
            attempt=c.attempt,
            status=decision.status,
            outcome=c.outcome,
            result=c.result if decision.status is JobStatus.SUCCEEDED else None,
            error=c.error,
            not_before=now + timedelta(seconds=decision.retry_delay) if requeued else None,
            spends_attempt=not (requeued and c.outcome is Outcome.RELEASED),
        )

    @property
    def step_status(self) -> str:
        return "done" if self.outcome is Outcome.SUCCEEDED else "failed"


_POSTGRES = text(
    """
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS b(
        id bigint, attempt int, status text, outcome text, step_status text,
        result jsonb, error jsonb, not_before timestamptz, spends boolean)
), kept AS (
    UPDATE jobs SET
        status = b.status,
        result = b.result,
        error = b.error,
        updated_at = :now,
        lease_expires_at = NULL,
        not_before = COALESCE(b.not_before, jobs.not_before),
        worker_id = CASE WHEN b.not_before IS NULL THEN jobs.worker_id END,
        finished_at = CASE WHEN b.not_before IS NULL THEN CAST(:now AS timestamptz) END,
        attempt_base = jobs.attempt_base + CASE WHEN b.spends THEN 0 ELSE 1 END
    FROM batch b
    WHERE jobs.id = b.id AND jobs.attempt = b.attempt AND jobs.status = 'running'
    RETURNING jobs.id, jobs.attempt
), closed AS (
    UPDATE attempts SET outcome = b.outcome, error = b.error, finished_at = :now
    FROM batch b JOIN kept k ON k.id = b.id AND k.attempt = b.attempt
    WHERE attempts.job_id = b.id AND attempts.number = b.attempt
), stepped AS (
    UPDATE steps SET status = b.step_status, finished_at = :now
    FROM batch b JOIN kept k ON k.id = b.id AND k.attempt = b.attempt
    WHERE steps.job_id = b.id AND steps.attempt = b.attempt AND steps.status = 'running'
)
SELECT id, attempt FROM kept
"""
).bindparams(bindparam("now", type_=UTCDateTime()))

_RUNNING = literal_column("'running'", String())
_NOW = bindparam("b_now", type_=UTCDateTime())
_SQLITE_LIVE = select(jobs.c.id, jobs.c.attempt).where(
    jobs.c.id.in_(bindparam("ids", expanding=True)), jobs.c.status == _RUNNING
)
_SQLITE_JOB = (
    update(jobs)
    .where(
        jobs.c.id == bindparam("b_id"),
        jobs.c.attempt == bindparam("b_attempt"),
        jobs.c.status == _RUNNING,
    )
    .values(
        status=bindparam("b_status", type_=String()),
        result=bindparam("b_result", type_=Json),
        error=bindparam("b_error", type_=Json),
        updated_at=_NOW,
        lease_expires_at=None,
        finished_at=bindparam("b_finished_at", type_=UTCDateTime()),
        not_before=func.coalesce(bindparam("b_not_before", type_=UTCDateTime()), jobs.c.not_before),
        worker_id=case((bindparam("b_requeue", type_=Boolean()), null()), else_=jobs.c.worker_id),
        attempt_base=jobs.c.attempt_base + bindparam("b_released", type_=Integer()),
    )
)
_SQLITE_ATTEMPT = (
    update(attempts)
    .where(attempts.c.job_id == bindparam("b_id"), attempts.c.number == bindparam("b_attempt"))
    .values(
        outcome=bindparam("b_outcome", type_=String()),
        error=bindparam("b_error", type_=Json),
        finished_at=_NOW,
    )
)
_SQLITE_STEPS = (
    update(steps)
    .where(
        steps.c.job_id == bindparam("b_id"),
        steps.c.attempt == bindparam("b_attempt"),
        steps.c.status == _RUNNING,
    )
    .values(status=bindparam("b_step_status"), finished_at=_NOW)
)


def close(conn: Connection, closings: Sequence[Closing], now: datetime) -> set[tuple[int, int]]:
    """Write the batch; returns the (job, attempt) pairs that still held their job."""
    if not closings:
        return set()
    if conn.dialect.name == "postgresql":
        rows = [
            {
                "id": c.job_id,
                "attempt": c.attempt,
                "status": c.status.value,
                "outcome": c.outcome.value,
                "step_status": c.step_status,
                "result": c.result,
                "error": c.error,
                "not_before": c.not_before.isoformat() if c.not_before else None,
                "spends": c.spends_attempt,
            }
            for c in closings
        ]
        result = conn.execute(_POSTGRES, {"rows": jsonb_text(rows), "now": now})
        return {(r.id, r.attempt) for r in result}
    # SQLite: BEGIN IMMEDIATE holds the write lock, so the fence read stays true until commit.
    live = {
        (r.id, r.attempt) for r in conn.execute(_SQLITE_LIVE, {"ids": [c.job_id for c in closings]})
    }
    kept = [c for c in closings if (c.job_id, c.attempt) in live]
    if not kept:
        return live
    params = [
        {
            "b_id": c.job_id,
            "b_attempt": c.attempt,
            "b_status": c.status.value,
            "b_result": c.result,
            "b_error": c.error,
            "b_now": now,
            "b_finished_at": None if c.not_before else now,
            "b_not_before": c.not_before,
            "b_requeue": c.not_before is not None,
            "b_released": 0 if c.spends_attempt else 1,
            "b_outcome": c.outcome.value,
            "b_step_status": c.step_status,
        }
        for c in kept
    ]
    conn.execute(_SQLITE_JOB, params)
    conn.execute(_SQLITE_ATTEMPT, params)
    conn.execute(_SQLITE_STEPS, params)
    return live
