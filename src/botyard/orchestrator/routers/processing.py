"""The processing view: counts by status, throughput, recent activity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from botyard.orchestrator.auth import Principal
from botyard.orchestrator.deps import RuntimeDep, require
from botyard.orchestrator.schemas import ActivityOut, ProcessingStatusOut

router = APIRouter(tags=["processing"])


@router.get("/processing/status")
def processing_status(
    runtime: RuntimeDep, _who: Annotated[Principal, Depends(require("job:read"))]
) -> ProcessingStatusOut:
    status = runtime.store.processing_status()
    finished = sum(status.finished_last_hour.values())
    return ProcessingStatusOut(
        counts=status.counts,
        throughput={
            "window": "1h",
            "finished": finished,
            "per_minute": round(finished / 60, 2),
            "by_status": status.finished_last_hour,
        },
        recent_activity=[
            ActivityOut(
                job_id=job.id,
                automation=job.automation,
                status=job.status,
                attempt=job.attempt,
                step=None,
                updated_at=job.updated_at,
            )
            for job in status.recent
        ],
    )
