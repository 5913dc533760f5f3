"""The claim — one atomic statement per dialect — and the batched writes of running attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, String, and_, insert, literal, select, update

from botyard.jobs import JobStatus
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


def claim(
    conn: Connection,
    *,
    worker_id: str,
    queues: list[str],
    automations: list[str],
    limit: int,
    lease_ttl: float,
) -> list[ClaimedJob]:
    """Move up to ``limit`` queued jobs to running for ``worker_id`` and open their attempts.

    PostgreSQL: the pick (``FOR UPDATE SKIP LOCKED``), the move and the attempt rows are one
    statement. SQLite: one ``UPDATE … RETURNING`` inside a ``BEGIN IMMEDIATE`` transaction,
    which already excludes every other writer.
    """
    now = utcnow()
    pick = (
        select(jobs.c.id)
        .where(
            jobs.c.status == JobStatus.QUEUED.value,
            jobs.c.queue.in_(queues),
            jobs.c.automation.in_(automations),
            jobs.c.not_before <= now,
        )
        .order_by(jobs.c.priority.desc(), jobs.c.id)
        .limit(limit)
    )
    values: dict[str, Any] = {
        "status": JobStatus.RUNNING.value,
        "attempt": jobs.c.attempt + 1,
        "worker_id": worker_id,
        "lease_expires_at": now + timedelta(seconds=lease_ttl),
        "side_effect": None,
        "updated_at": now,
        "started_at": now,
    }
    if conn.dialect.name == "postgresql":
        picked = pick.with_for_update(skip_locked=True).cte("picked")
        moved = (
            update(jobs)
            .where(jobs.c.id == picked.c.id)
            .values(values)
            .returning(*_CLAIMED_COLUMNS)
            .cte("moved")
        )
        opened = insert(attempts).from_select(
            ["job_id", "number", "worker_id", "started_at"],
            select(
                moved.c.id,
                moved.c.attempt,
                literal(worker_id, String()),
                literal(now, UTCDateTime()),
            ),
        )
        stmt = select(moved).add_cte(opened.cte("opened"))
        rows = conn.execute(stmt).mappings().all()
    else:
        rows = (
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(pick.scalar_subquery()))
                .values(values)
                .returning(*_CLAIMED_COLUMNS)
            )
            .mappings()
            .all()
        )
        if rows:
            conn.execute(
                insert(attempts),
                [
                    {
                        "job_id": r["id"],
                        "number": r["attempt"],
                        "worker_id": worker_id,
                        "started_at": now,
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
