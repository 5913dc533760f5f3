"""The jobs API: submit, list, inspect, cancel, retry, resolve, logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from botyard.jobs import JobStatus
from botyard.orchestrator.auth import Principal
from botyard.orchestrator.deps import RuntimeDep, ServiceDep, client_of, require
from botyard.orchestrator.schemas import (
    BulkRetryOut,
    Id,
    Instant,
    JobDetail,
    JobIn,
    JobLogs,
    JobOut,
    JobPage,
    LogLineOut,
    Offset,
    ResolveIn,
    RetryFilter,
)
from botyard.orchestrator.service import Submission
from botyard.store.records import JobFilter

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post(
    "",
    status_code=201,
    responses={200: {"description": "the job this idempotency_key created earlier"}},
)
def submit(
    body: JobIn,
    response: Response,
    request: Request,
    service: ServiceDep,
    who: Annotated[Principal, Depends(require("job:create"))],
) -> JobOut:
    submission = Submission(**body.model_dump())
    job, created = service.submit(submission, actor=who.username, client=client_of(request))
    if not created:
        response.status_code = 200
    return JobOut.of(job)


@router.post("/retry")
def retry_failed(
    request: Request,
    service: ServiceDep,
    who: Annotated[Principal, Depends(require("job:retry"))],
    body: RetryFilter | None = None,
) -> BulkRetryOut:
    """Queue every failed job again, or those matching the filter."""
    chosen = body or RetryFilter()
    filters = JobFilter(
        automation=chosen.automation,
        provider=chosen.provider,
        queue=chosen.queue,
        since=chosen.since,
    )
    jobs = service.retry_failed(
        filters, limit=chosen.limit, actor=who.username, client=client_of(request)
    )
    return BulkRetryOut(status="success", retried=len(jobs), job_ids=[j.id for j in jobs])


@router.get("")
def list_jobs(
    runtime: RuntimeDep,
    _who: Annotated[Principal, Depends(require("job:read"))],
    status: JobStatus | None = None,
    automation: str | None = None,
    provider: str | None = None,
    queue: str | None = None,
    since: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> JobPage:
    items, total = runtime.store.list_jobs(
        JobFilter(
            status=status, automation=automation, provider=provider, queue=queue, since=since
        ),
        limit=limit,
        offset=offset,
    )
    return JobPage(items=[JobOut.of(j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/{job_id}")
def get_job(
    job_id: Id, runtime: RuntimeDep, _who: Annotated[Principal, Depends(require("job:read"))]
) -> JobDetail:
    return JobDetail.of(runtime.store.get_job(job_id))


@router.get("/{job_id}/logs")
def job_logs(
    job_id: Id,
    runtime: RuntimeDep,
    _who: Annotated[Principal, Depends(require("job:read"))],
    after: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> JobLogs:
    lines = runtime.store.logs(job_id, after=after, limit=limit)
    return JobLogs(
        job_id=job_id, lines=[LogLineOut.model_validate(x, from_attributes=True) for x in lines]
    )


@router.post("/{job_id}/cancel")
def cancel(
    job_id: Id,
    request: Request,
    service: ServiceDep,
    who: Annotated[Principal, Depends(require("job:cancel"))],
) -> JobOut:
    return JobOut.of(service.cancel(job_id, actor=who.username, client=client_of(request)))


@router.post("/{job_id}/retry")
def retry(
    job_id: Id,
    request: Request,
    service: ServiceDep,
    who: Annotated[Principal, Depends(require("job:retry"))],
) -> JobOut:
    return JobOut.of(service.retry(job_id, actor=who.username, client=client_of(request)))


@router.post("/{job_id}/resolve")
def resolve(
    job_id: Id,
    body: ResolveIn,
    request: Request,
    service: ServiceDep,
    who: Annotated[Principal, Depends(require("job:resolve"))],
) -> JobOut:
    succeeded = body.status == "succeeded"
    job = service.resolve(
        job_id, succeeded=succeeded, note=body.note, actor=who.username, client=client_of(request)
    )
    return JobOut.of(job)
