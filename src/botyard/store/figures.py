"""Aggregates for Prometheus, computed by the database from the store (the same on every replica).

Histograms are counted in SQL over every finished attempt, one ``SUM(CASE …)`` per bucket, so
a scrape reads the attempts table once per histogram instead of shipping rows to Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Engine, Float, case, cast, func, select

from botyard.store.tables import attempts, jobs, maintenance_runs


@dataclass(slots=True)
class Histogram:
    """Cumulative bucket counts (upper bounds ascending, +Inf last), the count and the sum."""

    bounds: tuple[float, ...]
    buckets: list[int] = field(default_factory=list)
    count: int = 0
    total: float = 0.0


class Figures:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def jobs_by_status(self) -> dict[tuple[str, str], int]:
        """(status, automation) -> jobs."""
        query = select(jobs.c.status, jobs.c.automation, func.count()).group_by(
            jobs.c.status, jobs.c.automation
        )
        with self.engine.connect().execution_options(readonly=True) as conn:
            return {(s, a): int(n) for s, a, n in conn.execute(query)}

    def attempts_by_outcome(self) -> dict[tuple[str, str], int]:
        """(automation, outcome) -> finished attempts; ``lease_expired`` counts recoveries."""
        query = (
            select(jobs.c.automation, attempts.c.outcome, func.count())
            .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
            .where(attempts.c.outcome.is_not(None))
            .group_by(jobs.c.automation, attempts.c.outcome)
        )
        with self.engine.connect().execution_options(readonly=True) as conn:
            return {(a, o): int(n) for a, o, n in conn.execute(query)}

    def attempt_durations(self, bounds: Sequence[float]) -> dict[tuple[str, ...], Histogram]:
        """(automation, outcome) -> how long finished attempts ran, in seconds."""
        seconds = self._seconds(attempts.c.started_at, attempts.c.finished_at)
        return self._histograms(
            bounds,
            seconds,
            (jobs.c.automation, attempts.c.outcome),
            attempts.c.finished_at.is_not(None),
        )

    def dispatch_latency(self, bounds: Sequence[float]) -> dict[tuple[str, ...], Histogram]:
        """(queue,) -> seconds from a job becoming runnable to its attempt starting."""
        seconds = self._seconds(attempts.c.ready_at, attempts.c.started_at)
        return self._histograms(bounds, seconds, (jobs.c.queue,), attempts.c.ready_at.is_not(None))

    def maintenance_runs(self) -> dict[tuple[str, str], int]:
        """(job, outcome) -> runs of the maintenance jobs, on any replica."""
        query = select(maintenance_runs.c.job, maintenance_runs.c.outcome, func.count()).group_by(
            maintenance_runs.c.job, maintenance_runs.c.outcome
        )
        with self.engine.connect().execution_options(readonly=True) as conn:
            return {(j, o): int(n) for j, o, n in conn.execute(query)}

    # -- internals -----------------------------------------------------------

    def _seconds(self, start: Any, end: Any) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return cast(func.extract("epoch", end - start), Float)
        # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff"; julianday reads it to the millisecond.
        return (func.julianday(end) - func.julianday(start)) * 86400.0

    def _histograms(
        self,
        bounds: Sequence[float],
        seconds: ColumnElement[Any],
        labels: tuple[Any, ...],
        where: ColumnElement[bool],
    ) -> dict[Any, Histogram]:
        # Clamped at 0: clocks of different hosts may put a start a hair before its ready time.
        value = func.max(seconds, 0.0) if self.dialect == "sqlite" else func.greatest(seconds, 0.0)
        counts = [func.sum(case((value <= b, 1), else_=0)) for b in bounds]
        query = (
            select(*labels, func.count(), func.coalesce(func.sum(value), 0.0), *counts)
            .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
            .where(where)
            .group_by(*labels)
        )
        found: dict[Any, Histogram] = {}
        with self.engine.connect().execution_options(readonly=True) as conn:
            for row in conn.execute(query):
                key = tuple(str(v) for v in row[: len(labels)])
                count, total = int(row[len(labels)]), float(row[len(labels) + 1])
                cumulative = [int(n or 0) for n in row[len(labels) + 2 :]]
                found[key] = Histogram(tuple(bounds), [*cumulative, count], count, total)
        return found
