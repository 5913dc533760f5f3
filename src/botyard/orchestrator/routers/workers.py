"""Registered workers, their heartbeat, load and capabilities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from botyard.orchestrator.auth import Principal
from botyard.orchestrator.deps import RuntimeDep, require
from botyard.orchestrator.health import stale_after
from botyard.orchestrator.schemas import WorkerOut
from botyard.store.workers import Workers

router = APIRouter(prefix="/workers", tags=["workers"])
Viewer = Annotated[Principal, Depends(require("worker:read"))]


@router.get("")
def list_workers(runtime: RuntimeDep, _who: Viewer) -> list[WorkerOut]:
    now, stale = datetime.now(UTC), stale_after(runtime.settings)
    return [
        WorkerOut.of(w, online=Workers.is_online(w, now, stale))
        for w in runtime.store.workers.all()
    ]


@router.get("/{worker_id}")
def get_worker(worker_id: str, runtime: RuntimeDep, _who: Viewer) -> WorkerOut:
    worker = runtime.store.workers.get(worker_id)
    if worker is None:
        raise HTTPException(404, f"worker {worker_id} not found")
    online = Workers.is_online(worker, datetime.now(UTC), stale_after(runtime.settings))
    return WorkerOut.of(worker, online=online)
