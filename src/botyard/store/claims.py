"""The claim — one atomic statement per dialect — and the batched writes of running attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    insert,
    literal_column,
    select,
    update,
)

from botyard.store.records import Activity, ClaimedJob
from botyard.store.tables import UTCDateTime, attempts, evidence, jobs, log_lines, steps, utcnow

_CLAIMED_COLUMNS = (
    jobs.c.id,
    jobs.c.automation,
    jobs.c.payload,
    jobs.c.attempt,
    jobs.c.attempt_base,
    jobs.c.timeout,
    jobs.c.idempotent,
    jobs.c.max_attempts,
    jobs.c.queue,
    jobs.c.priority,
    jobs.c.created_at,
    jobs.c.not_before,
)


def _statements() -> tuple[Any, Any]:
    """The claim, built once with bind parameters (building it per call costs more than it runs).

    ``status = 'queued'`` is a literal so that PostgreSQL's generic plan for the prepared
    statement still matches the partial index ``ix_jobs_claim``.
    """
    now = bindparam("b_now", type_=UTCDateTime())
    worker = bindparam("b_worker", type_=String())
    pick = (
        select(jobs.c.id)
        .where(
            jobs.c.status == literal_column("'queued'", String()),
            jobs.c.queue.in_(bindparam("b_queues", expanding=True)),
            jobs.c.automation.in_(bindparam("b_automations", expanding=True)),
            jobs.c.not_before <= now,
        )
        .order_by(jobs.c.priority.desc(), jobs.c.id)
        .limit(bindparam("b_limit", type_=Integer()))
    )
    values: dict[str, Any] = {
        "status": literal_column("'running'", String()),
        "attempt": jobs.c.attempt + 1,
        "worker_id": worker,
        "lease_expires_at": bindparam("b_expires", type_=UTCDateTime()),
        "side_effect": None,
        "updated_at": now,
        "started_at": now,
    }
    # PostgreSQL: pick (skipping rows other claimers hold), move and open attempts in one go.
    picked = pick.with_for_update(skip_locked=True).cte("picked")
    moved = (
        update(jobs)
        .where(jobs.c.id == picked.c.id)
        .values(values)
        .returning(*_CLAIMED_COLUMNS)
        .cte("moved")
    )
    opened = insert(attempts).from_select(
        ["job_id", "number", "worker_id", "started_at", "ready_at"],
        select(moved.c.id, moved.c.attempt, worker, now, moved.c.not_before),
    )
    postgres = select(moved).add_cte(opened.cte("opened"))
    # SQLite: BEGIN IMMEDIATE already excludes every other writer.
    sqlite = (
        update(jobs)
        .where(jobs.c.id.in_(pick.scalar_subquery()))
        .values(values)
        .returning(*_CLAIMED_COLUMNS)
    )
    return postgres, sqlite


_CLAIM_POSTGRES, _CLAIM_SQLITE = _statements()


def claim(
    conn: Connection,
    *,
    worker_id: str,
    queues: list[str],
    automations: list[str],
    limit: int,
    lease_ttl: float,
) -> list[ClaimedJob]:
    """Move up to ``limit`` queued jobs to running for ``worker_id`` and open their attempts."""
    now = utcnow()
    params = {
        "b_now": now,
        "b_worker": worker_id,
        "b_expires": now + timedelta(seconds=lease_ttl),
        "b_queues": queues,
        "b_automations": automations,
        "b_limit": limit,
    }
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_CLAIM_POSTGRES, params).mappings().all()
    else:
        rows = conn.execute(_CLAIM_SQLITE, params).mappings().all()
        if rows:
            conn.execute(
                insert(attempts),
                [
                    {
                        "job_id": r["id"],
                        "number": r["attempt"],
                        "worker_id": worker_id,
                        "started_at": now,
                        "ready_at": r["not_before"],
                    }
                    for r in rows
                ],
            )
    ordered = sorted(rows, key=lambda r: (-r["priority"], r["id"]))
    return [
        ClaimedJob(
            id=r["id"],
            automation=r["automation"],
            payload=r["payload"],
            attempt=r["attempt"],
            attempt_base=r["attempt_base"],
            timeout=r["timeout"],
            idempotent=r["idempotent"],
            max_attempts=r["max_attempts"],
            queue=r["queue"],
            created_at=r["created_at"],
            not_before=r["not_before"],
        )
        for r in ordered
    ]


def write_activity(conn: Connection, items: Sequence[Activity]) -> None:
    """Write what attempts reported, in order; the caller has checked their fence."""
    logs = [
        {
            "job_id": a.job_id,
            "attempt": a.attempt,
            "at": a.at,
            "level": a.data["level"],
            "message": a.data["message"],
        }
        for a in items
        if a.kind == "log"
    ]
    if logs:
        conn.execute(insert(log_lines), logs)
    for a in items:
        if a.kind == "step_start":
            conn.execute(
                insert(steps).values(
                    job_id=a.job_id,
                    attempt=a.attempt,
                    name=a.data["name"],
                    kind="step",
                    status="running",
                    started_at=a.at,
                )
            )
        elif a.kind == "step_end":
            conn.execute(
                update(steps)
                .where(
                    and_(
                        steps.c.job_id == a.job_id,
                        steps.c.attempt == a.attempt,
                        steps.c.name == a.data["name"],
                        steps.c.status == "running",
                    )
                )
                .values(status=a.data["status"], finished_at=a.at)
            )
        elif a.kind == "evidence":
            conn.execute(
                insert(evidence).values(
                    job_id=a.job_id,
                    attempt=a.attempt,
                    step=a.data.get("step"),
                    name=a.data["name"],
                    path=a.data["path"],
                    content_type=a.data["content_type"],
                    size=a.data["size"],
                    created_at=a.at,
                )
            )
