"""Registered workers: who they are, what they run, their heartbeat and statistics."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, RowMapping, func, select, update

from botyard.store.records import WorkerRecord
from botyard.store.tables import jobs, utcnow, workers


def _record(row: RowMapping) -> WorkerRecord:
    return WorkerRecord(**dict(row))


class Workers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(
        self,
        worker_id: str,
        *,
        hostname: str,
        mode: str,
        pid: int | None,
        automations: list[str],
        queues: list[str],
        capacity: int,
        version: str,
        endpoint: str | None = None,
    ) -> None:
        """Insert or refresh the worker's row; a restarted worker keeps its id and statistics."""
        now = utcnow()
        values: dict[str, Any] = {
            "hostname": hostname,
            "mode": mode,
            "pid": pid,
            "automations": automations,
            "queues": queues,
            "capacity": capacity,
            "version": version,
            "status": "online",
            "endpoint": endpoint,
            "active": 0,
            "started_at": now,
            "last_heartbeat": now,
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                update(workers).where(workers.c.id == worker_id).values(values)
            ).rowcount
            if not updated:
                conn.execute(
                    workers.insert().values(
                        id=worker_id,
                        stats={"processed": 0, "succeeded": 0, "failed": 0},
                        **values,
                    )
                )

    def heartbeat(
        self, worker_id: str, *, active: int, stats: dict[str, int], status: str = "online"
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(active=active, stats=stats, status=status, last_heartbeat=utcnow())
            )

    def all(self) -> list[WorkerRecord]:
        with self.engine.connect().execution_options(readonly=True) as conn:
            rows = conn.execute(select(workers).order_by(workers.c.id)).mappings()
            return [_record(r) for r in rows]

    def get(self, worker_id: str) -> WorkerRecord | None:
        with self.engine.connect().execution_options(readonly=True) as conn:
            row = conn.execute(select(workers).where(workers.c.id == worker_id)).mappings().first()
            return _record(row) if row else None

    def set_endpoint(self, worker_id: str, endpoint: str) -> bool:
        """Record where an agent is reached (``WORKER_ENDPOINTS``, ``POST /agents``)."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(workers).where(workers.c.id == worker_id).values(endpoint=endpoint)
                ).rowcount
            )

    def agents(self) -> list[WorkerRecord]:
        """Agents with an endpoint, whatever their state."""
        query = select(workers).where(workers.c.mode == "agent", workers.c.endpoint.is_not(None))
        with self.engine.connect().execution_options(readonly=True) as conn:
            return [_record(r) for r in conn.execute(query.order_by(workers.c.id)).mappings()]

    def running_counts(self) -> dict[str, int]:
        """Running jobs per worker, as the store sees them."""
        query = (
            select(jobs.c.worker_id, func.count())
            .where(jobs.c.status == "running", jobs.c.worker_id.is_not(None))
            .group_by(jobs.c.worker_id)
        )
        with self.engine.connect().execution_options(readonly=True) as conn:
            return {str(w): int(n) for w, n in conn.execute(query)}

    def running_attempts(self, worker_id: str) -> list[tuple[int, int, datetime | None]]:
        """(job, attempt, started_at) of the jobs ``worker_id`` holds."""
        query = select(jobs.c.id, jobs.c.attempt, jobs.c.started_at).where(
            jobs.c.worker_id == worker_id, jobs.c.status == "running"
        )
        with self.engine.connect().execution_options(readonly=True) as conn:
            return [(r.id, r.attempt, r.started_at) for r in conn.execute(query)]

    def mark_silent_offline(self, stale_after: float) -> list[str]:
        """Workers whose heartbeat stopped more than ``stale_after`` seconds ago go offline."""
        cutoff = utcnow() - timedelta(seconds=stale_after)
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(workers)
                .where(workers.c.status != "offline", workers.c.last_heartbeat < cutoff)
                .values(status="offline", active=0)
                .returning(workers.c.id)
            )
            return [r[0] for r in rows]

    @staticmethod
    def is_online(record: WorkerRecord, now: datetime, stale_after: float) -> bool:
        return record.status != "offline" and now - record.last_heartbeat < timedelta(
            seconds=stale_after
        )
