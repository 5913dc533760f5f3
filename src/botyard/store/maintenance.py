"""What the maintenance jobs leave in the store: their runs, and the metrics history."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from botyard.jobs import JobStatus
from botyard.store.tables import jobs, maintenance_runs, metrics_samples, utcnow


@dataclass(frozen=True, slots=True)
class MaintenanceRun:
    id: int
    job: str
    replica: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    detail: Any


@dataclass(frozen=True, slots=True)
class MetricsSample:
    at: datetime
    queued_jobs: int
    running_jobs: int
    completed_jobs: int
    failed_jobs: int
    needs_review_jobs: int
    cancelled_jobs: int
    workers_online: int


class MaintenanceLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def started(self, job: str, replica: str) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    maintenance_runs.insert()
                    .values(job=job, replica=replica, started_at=utcnow(), outcome="running")
                    .returning(maintenance_runs.c.id)
                ).scalar_one()
            )

    def finished(self, run_id: int, outcome: str, detail: Any = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                maintenance_runs.update()
                .where(maintenance_runs.c.id == run_id)
                .values(finished_at=utcnow(), outcome=outcome, detail=detail)
            )

    def runs(self, job: str | None = None, *, limit: int = 100) -> list[MaintenanceRun]:
        query = select(maintenance_runs).order_by(maintenance_runs.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(maintenance_runs.c.job == job)
        with self.engine.connect().execution_options(readonly=True) as conn:
            return [MaintenanceRun(**dict(r)) for r in conn.execute(query).mappings()]

    def prune(self, older_than: timedelta) -> int:
        """Forget runs that started longer ago than ``older_than``."""
        with self.engine.begin() as conn:
            cutoff = utcnow() - older_than
            return int(
                conn.execute(
                    maintenance_runs.delete().where(maintenance_runs.c.started_at < cutoff)
                ).rowcount
            )

    def last_runs(self) -> dict[str, MaintenanceRun]:
        latest = (
            select(func.max(maintenance_runs.c.id))
            .group_by(maintenance_runs.c.job)
            .scalar_subquery()
        )
        query = select(maintenance_runs).where(maintenance_runs.c.id.in_(latest))
        with self.engine.connect().execution_options(readonly=True) as conn:
            return {r["job"]: MaintenanceRun(**dict(r)) for r in conn.execute(query).mappings()}


class MetricsHistory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def sample(self, workers_online: int) -> MetricsSample:
        """Count jobs by status now and keep the point (``collect_metrics``)."""
        with self.engine.begin() as conn:
            counts = {s: 0 for s in JobStatus}
            for status, count in conn.execute(
                select(jobs.c.status, func.count()).group_by(jobs.c.status)
            ):
                counts[JobStatus(status)] = count
            point = MetricsSample(
                at=utcnow(),
                queued_jobs=counts[JobStatus.QUEUED],
                running_jobs=counts[JobStatus.RUNNING],
                completed_jobs=counts[JobStatus.SUCCEEDED],
                failed_jobs=counts[JobStatus.FAILED],
                needs_review_jobs=counts[JobStatus.NEEDS_REVIEW],
                cancelled_jobs=counts[JobStatus.CANCELLED],
                workers_online=workers_online,
            )
            conn.execute(metrics_samples.insert().values(**asdict(point)))
        return point

    def history(self, *, limit: int = 288) -> list[MetricsSample]:
        """The newest points first (288 points = a day at the 5-minute default)."""
        query = select(metrics_samples).order_by(metrics_samples.c.at.desc()).limit(limit)
        with self.engine.connect().execution_options(readonly=True) as conn:
            rows = conn.execute(query).mappings()
            return [MetricsSample(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    def prune(self, older_than: timedelta) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    metrics_samples.delete().where(metrics_samples.c.at < utcnow() - older_than)
                ).rowcount
            )
