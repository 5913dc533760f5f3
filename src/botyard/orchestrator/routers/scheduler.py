"""The troubleshooting endpoints: the scheduler, a dispatch cycle, stale-job recovery."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from botyard.orchestrator.auth import Principal
from botyard.orchestrator.deps import ServiceDep, client_of, require
from botyard.orchestrator.scheduler import Maintenance

router = APIRouter(tags=["scheduler"])


def get_maintenance(request: Request) -> Maintenance:
    maintenance: Maintenance = request.app.state.maintenance
    return maintenance


MaintenanceDep = Annotated[Maintenance, Depends(get_maintenance)]


@router.get("/scheduler")
def scheduler_status(maintenance: MaintenanceDep) -> dict[str, Any]:
    """``{running, job_count, jobs: [{id, function, trigger, next_run}]}`` and the leader."""
    return maintenance.status()


@router.post("/scheduler/reset")
def scheduler_reset(
    maintenance: MaintenanceDep,
    service: ServiceDep,
    request: Request,
    who: Annotated[Principal, Depends(require("scheduler:manage"))],
) -> dict[str, Any]:
    count = maintenance.reset()
    service.store.audit.record("scheduler_reset", actor=who.username, client=client_of(request))
    return {
        "status": "success",
        "message": "Scheduler reset and reconfigured successfully",
        "job_count": count,
    }


@router.post("/process")
def process(
    service: ServiceDep,
    request: Request,
    who: Annotated[Principal, Depends(require("queue:process"))],
) -> dict[str, str]:
    """Run a dispatch cycle now: wake the workers of every queue with runnable jobs."""
    woken = service.dispatch()
    service.store.audit.record(
        "process", actor=who.username, client=client_of(request), details={"queues": woken}
    )
    return {"status": "Job processing initiated"}


@router.post("/recover")
def recover(
    service: ServiceDep,
    request: Request,
    who: Annotated[Principal, Depends(require("queue:process"))],
) -> dict[str, Any]:
    """Recover jobs whose worker stopped renewing its lease, now."""
    recovered = service.recover()
    service.store.audit.record(
        "recover", actor=who.username, client=client_of(request), details={"recovered": recovered}
    )
    return {"status": "success", "recovered_jobs": recovered}
