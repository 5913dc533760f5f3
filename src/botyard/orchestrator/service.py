"""What the API and the CLI do with jobs: validate, store, wake workers, stop attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botyard.automations.registry import Registry
from botyard.bus.base import CANCEL, JOBS, Bus, Event
from botyard.jobs import JobStatus
from botyard.store.records import JobFilter, JobRecord, NewJob
from botyard.store.sql import SqlStore


@dataclass(frozen=True, slots=True)
class Submission:
    automation: str
    payload: dict[str, Any]
    queue: str | None = None
    priority: int = 0
    not_before: datetime | None = None
    idempotency_key: str | None = None
    max_attempts: int | None = None
    timeout: float | None = None


class JobService:
    def __init__(self, store: SqlStore, bus: Bus, registry: Registry) -> None:
        self.store = store
        self.bus = bus
        self.registry = registry

    def submit(
        self, request: Submission, *, actor: str | None, client: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Validate the payload against the automation, store the job and wake a worker.

        Raises ``UnknownAutomation`` or ``PayloadInvalid``; nothing is stored then.
        """
        item = self.registry.get(request.automation)
        payload = item.validate(request.payload)
        not_before = request.not_before
        if not_before is not None and not_before.tzinfo is None:
            not_before = not_before.replace(tzinfo=UTC)
        job, created = self.store.submit(
            NewJob(
                automation=item.name,
                payload=payload,
                queue=request.queue or item.queue,
                priority=request.priority,
                not_before=not_before,
                idempotency_key=request.idempotency_key,
                max_attempts=request.max_attempts or item.max_attempts,
                timeout=request.timeout or item.timeout,
                idempotent=item.idempotent,
                created_by=actor,
            )
        )
        if created:
            self.bus.publish(Event(JOBS, job.queue))
            details = {"automation": job.automation, "queue": job.queue}
            self._audit("job_submitted", job.id, actor, client, details)
        return job, created

    def cancel(self, job_id: int, *, actor: str | None, client: str | None = None) -> JobRecord:
        job = self.store.cancel(job_id)
        if job.worker_id is not None:  # it was running: its worker must stop it now
            self.bus.publish(Event(CANCEL, str(job_id)))
        self._audit("job_cancelled", job_id, actor, client)
        return job

    def retry(self, job_id: int, *, actor: str | None, client: str | None = None) -> JobRecord:
        job = self.store.retry(job_id)
        self.bus.publish(Event(JOBS, job.queue))
        self._audit("job_retried", job_id, actor, client)
        return job

    def retry_failed(
        self, filters: JobFilter, *, limit: int, actor: str | None, client: str | None = None
    ) -> list[JobRecord]:
        jobs = self.store.retry_failed(filters, limit=limit)
        for queue in {job.queue for job in jobs}:
            self.bus.publish(Event(JOBS, queue))
        for job in jobs:
            self._audit("job_retried", job.id, actor, client, {"bulk": True})
        return jobs

    def resolve(
        self,
        job_id: int,
        *,
        succeeded: bool,
        note: str,
        actor: str | None,
        client: str | None = None,
    ) -> JobRecord:
        job = self.store.resolve(job_id, succeeded=succeeded, note=note, actor=actor)
        details = {"status": job.status.value, "note": note}
        self._audit("job_resolved", job_id, actor, client, details)
        return job

    def _audit(
        self,
        action: str,
        job_id: int,
        actor: str | None,
        client: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.store.audit.record(
            action, actor=actor, target=f"job:{job_id}", client=client, details=details
        )

    def recover(self) -> int:
        """Recover expired leases now and wake workers for what went back to the queue."""
        recovered = self.store.recover_expired()
        if any(status is JobStatus.QUEUED for _, status in recovered):
            self.dispatch()
        return len(recovered)

    def dispatch(self) -> int:
        """Wake workers for every queue that holds runnable jobs (the polling safety net)."""
        queues = self.store.queued_queues()
        for queue in queues:
            self.bus.publish(Event(JOBS, queue))
        return len(queues)
