"""Reading jobs, attempts, steps, logs and evidence back (no writes here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, bindparam, func, or_, select

from botyard.errors import JobNotFound
from botyard.jobs import JobStatus
from botyard.store.records import (
    AttemptRecord,
    ClaimedJob,
    EvidenceRecord,
    JobFilter,
    JobRecord,
    LogLine,
    StepRecord,
)
from botyard.store.tables import attempts, evidence, jobs, log_lines, steps, utcnow


def job_record(row: RowMapping, **extra: Any) -> JobRecord:
    return JobRecord(
        id=row["id"],
        automation=row["automation"],
        provider=row["provider"],
        queue=row["queue"],
        priority=row["priority"],
        status=JobStatus(row["status"]),
        payload=row["payload"],
        result=row["result"],
        error=row["error"],
        idempotency_key=row["idempotency_key"],
        max_attempts=row["max_attempts"],
        timeout=row["timeout"],
        idempotent=row["idempotent"],
        attempt=row["attempt"],
        attempt_base=row["attempt_base"],
        side_effect=row["side_effect"],
        not_before=row["not_before"],
        worker_id=row["worker_id"],
        lease_expires_at=row["lease_expires_at"],
        created_by=row["created_by"],
        resolution=row["resolution"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        concurrency_key=row["concurrency_key"],
        concurrency_limit=row["concurrency_limit"],
        **extra,
    )


@dataclass(frozen=True, slots=True)
class ProcessingStatus:
    """The processing view: counts, the last hour's throughput, recent activity."""

    counts: dict[str, int]
    finished_last_hour: dict[str, int]
    recent: list[JobRecord]


def _fields(record: type) -> list[str]:
    """The columns a record is made of (its dataclass fields, named after the columns)."""
    return [f.name for f in fields(record)]


# Built once: building a statement per call costs more than running it on a small table.
_JOB_BY_ID = select(jobs).where(jobs.c.id == bindparam("job_id"))
_ATTEMPTS_OF_JOB = (
    select(*(attempts.c[f] for f in _fields(AttemptRecord)))
    .where(attempts.c.job_id == bindparam("job_id"))
    .order_by(attempts.c.number)
)
_STEPS_OF_JOB = (
    select(*(steps.c[f] for f in _fields(StepRecord)))
    .where(steps.c.job_id == bindparam("job_id"))
    .order_by(steps.c.id)
)


class JobReads:
    engine: Engine

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(readonly=True)

    def _get_row(self, conn: Connection, job_id: int) -> RowMapping:
        row = conn.execute(_JOB_BY_ID, {"job_id": job_id}).mappings().first()
        if row is None:
            raise JobNotFound(f"job {job_id} not found", job_id=job_id)
        return row

    def get_job(self, job_id: int, *, detail: bool = True) -> JobRecord:
        with self._read() as conn:
            row = self._get_row(conn, job_id)
            if not detail:
                return job_record(row)
            attempt_rows = conn.execute(_ATTEMPTS_OF_JOB, {"job_id": job_id}).mappings()
            step_rows = conn.execute(_STEPS_OF_JOB, {"job_id": job_id}).mappings()
            return job_record(
                row,
                attempts=[AttemptRecord(**a) for a in attempt_rows],
                steps=[StepRecord(**s) for s in step_rows],
            )

    def claimed_job(self, job_id: int, attempt: int, worker_id: str) -> ClaimedJob | None:
        """The running attempt ``worker_id`` holds, as a worker runs it; None when it does not."""
        with self._read() as conn:
            row = (
                conn.execute(
                    select(jobs).where(
                        jobs.c.id == job_id,
                        jobs.c.attempt == attempt,
                        jobs.c.worker_id == worker_id,
                        jobs.c.status == JobStatus.RUNNING.value,
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        return ClaimedJob(**{f: row[f] for f in _fields(ClaimedJob)})

    def list_jobs(
        self, filters: JobFilter, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[JobRecord], int]:
        where = where_matching(filters)
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(jobs).where(where)).scalar_one()
            rows = conn.execute(
                select(jobs).where(where).order_by(jobs.c.id.desc()).limit(limit).offset(offset)
            ).mappings()
            return [job_record(r) for r in rows], total

    def logs(self, job_id: int, *, after: int = 0, limit: int = 1000) -> list[LogLine]:
        with self._read() as conn:
            self._get_row(conn, job_id)
            rows = conn.execute(
                select(log_lines)
                .where(log_lines.c.job_id == job_id, log_lines.c.id > after)
                .order_by(log_lines.c.id)
                .limit(limit)
            ).mappings()
            return [
                LogLine(
                    id=r["id"],
                    attempt=r["attempt"],
                    at=r["at"],
                    level=r["level"],
                    message=r["message"],
                )
                for r in rows
            ]

    def evidence(self, job_id: int) -> list[EvidenceRecord]:
        with self._read() as conn:
            self._get_row(conn, job_id)
            rows = conn.execute(
                select(evidence).where(evidence.c.job_id == job_id).order_by(evidence.c.id)
            ).mappings()
            return [EvidenceRecord(**dict(r)) for r in rows]

    def counts_by_status(self) -> dict[JobStatus, int]:
        with self._read() as conn:
            rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
            counts = {s: 0 for s in JobStatus}
            for status, count in rows:
                counts[JobStatus(status)] = count
            return counts

    def processing_status(self, *, recent: int = 20) -> ProcessingStatus:
        hour_ago = utcnow() - timedelta(hours=1)
        with self._read() as conn:
            finished = conn.execute(
                select(jobs.c.status, func.count())
                .where(jobs.c.finished_at >= hour_ago)
                .group_by(jobs.c.status)
            )
            rows = conn.execute(
                select(jobs).order_by(jobs.c.updated_at.desc(), jobs.c.id.desc()).limit(recent)
            ).mappings()
            recent_jobs = [job_record(r) for r in rows]
            last_hour = {str(status): int(count) for status, count in finished}
        counts = {s.value: n for s, n in self.counts_by_status().items()}
        return ProcessingStatus(counts=counts, finished_last_hour=last_hour, recent=recent_jobs)

    def queue_depths(self) -> dict[str, int]:
        """Queued jobs per queue."""
        with self._read() as conn:
            rows = conn.execute(
                select(jobs.c.queue, func.count())
                .where(jobs.c.status == JobStatus.QUEUED.value)
                .group_by(jobs.c.queue)
            )
            return {str(queue): int(count) for queue, count in rows}

    def evidence_item(self, evidence_id: int) -> EvidenceRecord | None:
        with self._read() as conn:
            row = (
                conn.execute(select(evidence).where(evidence.c.id == evidence_id))
                .mappings()
                .first()
            )
            return EvidenceRecord(**dict(row)) if row else None

    def evidence_before(self, cutoff: datetime, *, limit: int = 1000) -> list[EvidenceRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(evidence)
                .where(evidence.c.created_at < cutoff)
                .order_by(evidence.c.id)
                .limit(limit)
            ).mappings()
            return [EvidenceRecord(**dict(r)) for r in rows]

    def queued_queues(self) -> list[str]:
        """Queues that hold runnable jobs now (for the polling safety net)."""
        with self._read() as conn:
            rows = conn.execute(
                select(jobs.c.queue)
                .where(jobs.c.status == JobStatus.QUEUED.value, jobs.c.not_before <= utcnow())
                .distinct()
            )
            return [r[0] for r in rows]

    def runnable_jobs(
        self, settled_before: datetime, limit: int = 10_000
    ) -> list[tuple[int, str, str]]:
        """``(id, queue, automation)`` of jobs a worker could claim now, runnable since before
        ``settled_before``, in claim order; jobs whose concurrency key is full are left out."""
        holder = jobs.alias("holder")
        held = (
            select(func.count())
            .select_from(holder)
            .where(
                holder.c.status == JobStatus.RUNNING.value,
                holder.c.concurrency_key == jobs.c.concurrency_key,
            )
            .scalar_subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.queue, jobs.c.automation)
                .where(
                    jobs.c.status == JobStatus.QUEUED.value,
                    jobs.c.not_before <= settled_before,
                    jobs.c.updated_at <= settled_before,
                    or_(jobs.c.concurrency_key.is_(None), held < jobs.c.concurrency_limit),
                )
                .order_by(jobs.c.priority.desc(), jobs.c.id)
                .limit(limit)
            )
            return [(r[0], r[1], r[2]) for r in rows]

    def queued_among(self, job_ids: Sequence[int]) -> set[int]:
        """Which of these jobs are queued."""
        found: set[int] = set()
        ids = list(job_ids)
        with self._read() as conn:
            for start in range(0, len(ids), 1000):
                rows = conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.id.in_(ids[start : start + 1000]),
                        jobs.c.status == JobStatus.QUEUED.value,
                    )
                )
                found.update(r[0] for r in rows)
        return found

    def next_not_before(self, queues: Sequence[str]) -> datetime | None:
        """When the earliest delayed job of these queues becomes runnable."""
        with self._read() as conn:
            return conn.execute(
                select(func.min(jobs.c.not_before)).where(
                    jobs.c.status == JobStatus.QUEUED.value, jobs.c.queue.in_(list(queues))
                )
            ).scalar_one_or_none()


def where_matching(filters: JobFilter) -> Any:
    conditions = []
    if filters.status is not None:
        conditions.append(jobs.c.status == filters.status.value)
    if filters.automation is not None:
        conditions.append(jobs.c.automation == filters.automation)
    if filters.provider is not None:
        conditions.append(jobs.c.provider == filters.provider)
    if filters.queue is not None:
        conditions.append(jobs.c.queue == filters.queue)
    if filters.since is not None:
        conditions.append(jobs.c.created_at >= filters.since)
    if filters.text:
        conditions.append(_matching_text(filters.text))
    return and_(True, *conditions)


def _matching_text(text: str) -> Any:
    """Every word in one of the job's names; a number also finds the job with that id."""
    words = text.split()[:8]
    if len(words) == 1 and words[0].isascii() and words[0].isdigit() and len(words[0]) <= 18:
        return or_(jobs.c.id == int(words[0]), jobs.c.idempotency_key == words[0])
    fields = (jobs.c.automation, jobs.c.queue, jobs.c.provider, jobs.c.idempotency_key)
    escaped = [w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for w in words]
    return and_(
        True,
        *(or_(*(f.ilike(f"%{w}%", escape="\\") for f in fields)) for w in escaped),
    )
