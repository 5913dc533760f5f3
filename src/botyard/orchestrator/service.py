"""What the API and the CLI do with jobs: validate, store, wake workers, stop attempts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from botyard.automations.registry import Registry
from botyard.bus.base import Bus
from botyard.bus.redis_lists import RedisJobLists
from botyard.bus.wakeups import Wakeups
from botyard.concurrency import ConcurrencyLimits
from botyard.errors import InvalidInput, InvalidTransition, LeaseLost, PermissionDenied
from botyard.events import EventPublisher, JobEvent, NullPublisher
from botyard.jobs import JobStatus, Outcome
from botyard.store.records import ClaimedJob, Completion, JobFilter, JobRecord, NewJob
from botyard.store.sql import SqlStore

EXTERNAL_QUEUE = "external"  # jobs run outside Botyard's workers (standby tasks)
EXTERNAL_LEASE_MARGIN = 60.0


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
    def __init__(
        self,
        store: SqlStore,
        bus: Bus,
        registry: Registry,
        limits: ConcurrencyLimits | None = None,
        events: EventPublisher | None = None,
        lists: RedisJobLists | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        # Entries on Redis lists when Redis dispatch is on, else wake-ups on the bus.
        self.wakeups = Wakeups(bus, lists)
        self.registry = registry
        self.limits = limits or ConcurrencyLimits()
        self.events: EventPublisher = events or NullPublisher()

    def submit(
        self, request: Submission, *, actor: str | None, client: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Validate the payload against the automation, store the job and wake a worker.

        Raises ``UnknownAutomation``, ``PayloadInvalid`` (a bad payload, or one the
        automation's concurrency key cannot be made from) or ``InvalidInput`` (the external
        queue); nothing is stored then.
        """
        item = self.registry.get(request.automation)
        queue = request.queue or item.queue
        if queue == EXTERNAL_QUEUE:
            # The queue is what tells a job run outside Botyard (which the worker token may
            # close) from one a Botyard worker runs: no other job may be put on it.
            raise InvalidInput(
                [
                    {
                        "loc": ["body", "queue"],
                        "msg": f"the queue {EXTERNAL_QUEUE!r} is kept for jobs run outside"
                        " Botyard (POST /jobs/external)",
                        "type": "reserved_queue",
                    }
                ]
            )
        payload = item.validate(request.payload)
        key = item.concurrency_key_for(payload)
        not_before = request.not_before
        if not_before is not None and not_before.tzinfo is None:
            not_before = not_before.replace(tzinfo=UTC)
        job, created = self.store.submit(
            NewJob(
                automation=item.name,
                payload=payload,
                queue=queue,
                priority=request.priority,
                not_before=not_before,
                idempotency_key=request.idempotency_key,
                max_attempts=request.max_attempts or item.max_attempts,
                timeout=request.timeout or item.timeout,
                idempotent=item.idempotent,
                created_by=actor,
                concurrency_key=key,
                concurrency_limit=(
                    None if key is None else self.limits.limit_for(key, item.concurrency_limit)
                ),
            )
        )
        if created:
            if self.events.enabled:  # stamped with the job's creation: no claim comes before it
                self.events.publish(replace(JobEvent.of(job, None), at=job.created_at))
            if job.not_before <= datetime.now(UTC):
                self.wakeups.jobs(job.queue, [job.id])
            else:  # its workers plan a claim for when it is due
                self.wakeups.queue(job.queue)
            details = {"automation": job.automation, "queue": job.queue}
            self._audit("job_submitted", job.id, actor, client, details)
        return job, created

    def cancel(self, job_id: int, *, actor: str | None, client: str | None = None) -> JobRecord:
        job = self.store.cancel(job_id)
        self.announce(job, JobStatus.RUNNING if job.worker_id is not None else JobStatus.QUEUED)
        if job.worker_id is not None:  # it was running: its worker must stop it now
            self.wakeups.cancel(job_id)
            if job.concurrency_key is not None:  # and its key is free for the next job
                self.wakeups.queue(job.queue)
        self._audit("job_cancelled", job_id, actor, client)
        return job

    def retry(self, job_id: int, *, actor: str | None, client: str | None = None) -> JobRecord:
        before = self.store.get_job(job_id, detail=False)
        if before.queue == EXTERNAL_QUEUE:
            raise InvalidTransition(
                f"job {job_id} ran outside Botyard's workers (a standby task): send the task again"
            )
        job = self.store.retry(job_id)
        self.wakeups.jobs(job.queue, [job.id])
        self.announce(job, before.status)
        self._audit("job_retried", job_id, actor, client)
        return job

    def retry_failed(
        self, filters: JobFilter, *, limit: int, actor: str | None, client: str | None = None
    ) -> list[JobRecord]:
        jobs = self.store.retry_failed(filters, limit=limit, skip_queues=[EXTERNAL_QUEUE])
        for queue in {job.queue for job in jobs}:
            self.wakeups.jobs(queue, [job.id for job in jobs if job.queue == queue])
        for job in jobs:
            self.announce(job, JobStatus.FAILED)
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
        self.announce(job, JobStatus.NEEDS_REVIEW)
        details = {"status": job.status.value, "note": note}
        self._audit("job_resolved", job_id, actor, client, details)
        return job

    def start_external(
        self,
        automation: str,
        payload: dict[str, Any],
        *,
        worker_id: str,
        task_id: str,
        timeout: float,
        client: str | None = None,
    ) -> ClaimedJob:
        """Record a task a standby worker runs as a running job (one attempt, no retry)."""
        job = self.store.start_external(
            NewJob(
                automation=automation,
                payload=payload,
                queue=EXTERNAL_QUEUE,
                idempotency_key=f"external:{worker_id}:{task_id}",
                max_attempts=1,
                timeout=timeout,
                created_by=f"worker:{worker_id}",
            ),
            worker_id,
            # Nobody renews it: a standby that dies leaves the job to fail when this runs out.
            lease_ttl=timeout + EXTERNAL_LEASE_MARGIN,
        )
        if self.events.enabled:
            running = JobStatus.RUNNING.value
            self.events.publish(
                JobEvent(job.id, job.attempt, running, None, job.automation, job.queue, worker_id)
            )
        self._audit("job_started_externally", job.id, f"worker:{worker_id}", client)
        return job

    def finish_external(
        self,
        job_id: int,
        attempt: int,
        *,
        worker_id: str,
        outcome: Outcome,
        result: Any,
        error: dict[str, Any] | None,
        client: str | None = None,
    ) -> JobStatus:
        """Close the attempt a standby worker ran; ``LeaseLost`` when it is not its any more.

        Only jobs started with ``start_external`` (``PermissionDenied`` for any other): the
        worker token must not close a job a pull or agent worker runs, which would requeue or
        settle it while its side effect is under way. And only by the worker that holds the
        attempt, within its lease; the write itself is fenced on the attempt as every one is.
        """
        job = self.store.get_job(job_id, detail=False)
        if job.queue != EXTERNAL_QUEUE:
            raise PermissionDenied(
                f"job {job_id} is run by a Botyard worker, not outside it: only that worker"
                " closes its attempts"
            )
        held = (
            job.status is JobStatus.RUNNING
            and job.attempt == attempt
            and job.worker_id == worker_id
            and job.lease_expires_at is not None
            and job.lease_expires_at > datetime.now(UTC)
        )
        if not held:
            raise LeaseLost(f"worker {worker_id} does not hold job {job_id} attempt {attempt}")
        (status,) = self.store.finish(
            [
                Completion(
                    job_id,
                    attempt,
                    outcome,
                    job.max_attempts,
                    job.idempotent,
                    attempt_base=job.attempt_base,
                    result=result,
                    error=error,
                )
            ]
        )
        if status is None:
            raise LeaseLost(f"job {job_id} attempt {attempt} was closed meanwhile")
        if self.events.enabled:
            self.events.publish(
                JobEvent(
                    job_id, attempt, status.value, "running", job.automation, job.queue, worker_id
                )
            )
        details = {"outcome": outcome.value, "status": status.value}
        self._audit("job_finished_externally", job_id, f"worker:{worker_id}", client, details)
        return status

    def announce(self, job: JobRecord, previous: JobStatus | None) -> None:
        """Publish the status ``job`` is in now (fire-and-forget)."""
        if self.events.enabled:
            self.events.publish(JobEvent.of(job, previous))

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
        self.wakeups.recovered(recovered, partial(self.store.get_job, detail=False), self.events)
        # Requeued jobs want a worker; so may jobs waiting for a concurrency key a recovered
        # job held, whatever became of it.
        if recovered:
            self.dispatch()
        return len(recovered)

    def dispatch(self) -> int:
        """Wake workers for every queue that holds runnable jobs (the polling safety net)."""
        queues = self.store.queued_queues()
        for queue in queues:
            self.wakeups.queue(queue)
        return len(queues)
