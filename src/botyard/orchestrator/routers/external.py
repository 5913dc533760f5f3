"""Jobs that run outside Botyard's workers: standby tasks recorded with the worker token."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from botyard.jobs import Outcome
from botyard.orchestrator.deps import ServiceDep, client_of, worker_token
from botyard.orchestrator.schemas import AttemptNumber, Id

router = APIRouter(prefix="/jobs", tags=["external jobs"], dependencies=[Depends(worker_token)])

_NAME = r"^[a-z0-9_]+\.[a-z0-9_]+$"
_WORKER = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$"  # fits created_by and the idempotency key


class ExternalStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    automation: Annotated[str, Field(pattern=_NAME, max_length=200)]
    payload: dict[str, Any] = Field(default_factory=dict)
    worker_id: Annotated[str, Field(pattern=_WORKER)]
    task_id: Annotated[str, Field(min_length=1, max_length=100)]  # 9 + 100 + 1 + 100 < 255
    timeout: Annotated[float, Field(gt=0, le=7 * 86400)] = 3600.0


class ExternalStarted(BaseModel):
    job_id: int
    attempt: int


class ExternalFinish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempt: AttemptNumber
    worker_id: Annotated[str, Field(pattern=_WORKER)]
    outcome: Literal["succeeded", "error", "timeout", "business_error"]
    result: Any = None
    error: dict[str, Any] | None = None


class ExternalFinished(BaseModel):
    job_id: int
    status: str


@router.post("/external", status_code=201)
def start(body: ExternalStart, service: ServiceDep, request: Request) -> ExternalStarted:
    """Record a task starting now on ``worker_id``; the same ``task_id`` again: the same job."""
    job = service.start_external(
        body.automation,
        body.payload,
        worker_id=body.worker_id,
        task_id=body.task_id,
        timeout=body.timeout,
        client=client_of(request),
    )
    return ExternalStarted(job_id=job.id, attempt=job.attempt)


@router.post(
    "/{job_id}/external/finish",
    responses={
        403: {"description": "not an external job: its own worker closes it"},
        409: {"description": "that worker does not hold the attempt (any more)"},
    },
)
def finish(
    job_id: Id, body: ExternalFinish, service: ServiceDep, request: Request
) -> ExternalFinished:
    """Close the attempt with its outcome: 409 when the worker no longer holds it, 403 for a
    job that is not an external one (a pull or agent worker's job closes through its worker)."""
    status = service.finish_external(
        job_id,
        body.attempt,
        worker_id=body.worker_id,
        outcome=Outcome(body.outcome),
        result=body.result,
        error=body.error,
        client=client_of(request),
    )
    return ExternalFinished(job_id=job_id, status=status.value)
