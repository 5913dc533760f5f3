"""Registered workers, their heartbeat, load and capabilities."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from botyard.orchestrator.auth import Principal
from botyard.orchestrator.deps import RuntimeDep, client_of, require
from botyard.orchestrator.dispatch import AgentDispatcher, AgentUnreachable
from botyard.orchestrator.health import stale_after
from botyard.orchestrator.schemas import WorkerOut
from botyard.store.workers import Workers

log = logging.getLogger("botyard.api")
router = APIRouter(prefix="/workers", tags=["workers"])
Viewer = Annotated[Principal, Depends(require("worker:read"))]
Admin = Annotated[Principal, Depends(require("worker:manage"))]


class AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: Annotated[str, Field(min_length=8, max_length=500, pattern=r"^https?://")]

    @field_validator("endpoint")
    @classmethod
    def _is_a_url(cls, value: str) -> str:
        """A URL the dispatcher can send to: a host, a port in range, no spaces."""
        try:
            parts = urlsplit(value)  # "http://[::1" raises here, a port of 99999 on .port
            if not parts.hostname or parts.port == 0 or any(c.isspace() for c in value):
                raise ValueError("not a URL with a host")
            httpx.URL(value)
        except (ValueError, httpx.InvalidURL) as exc:
            message = f"must be an agent's http(s) URL, e.g. http://agent-1:8001 ({exc})"
            raise ValueError(message) from None
        return value


@router.get("")
def list_workers(runtime: RuntimeDep, _who: Viewer) -> list[WorkerOut]:
    """Every worker; with Redis configured, each with its heartbeat key (``redis``)."""
    now, stale = datetime.now(UTC), stale_after(runtime.settings)
    workers = runtime.store.workers.all()
    keys = _redis_view(runtime, [w.id for w in workers])
    return [
        WorkerOut.of(w, online=Workers.is_online(w, now, stale), redis=keys.get(w.id))
        for w in workers
    ]


def _redis_view(runtime: RuntimeDep, worker_ids: list[str]) -> dict[str, dict[str, Any]]:
    if runtime.redis is None or not worker_ids:
        return {}
    from botyard.bus.redis_events import read_workers

    try:
        return read_workers(runtime.redis, worker_ids, runtime.settings.redis.prefix)
    except Exception as exc:  # Redis away: the store's view stands alone
        log.warning("reading worker keys from Redis failed: %s", exc)
        return {}


@router.post("/agents", responses={502: {"description": "the agent did not answer as one"}})
def register_agent(body: AgentIn, request: Request, runtime: RuntimeDep, who: Admin) -> WorkerOut:
    """Register an agent by its URL: the orchestrator asks it for its id and pushes jobs to it."""
    dispatcher: AgentDispatcher = request.app.state.dispatcher
    try:
        agent = dispatcher.register(body.endpoint)
    except AgentUnreachable as exc:
        raise HTTPException(502, str(exc)) from exc
    runtime.store.audit.record(
        "agent_registered",
        actor=who.username,
        target=f"worker:{agent.id}",
        client=client_of(request),
        details={"endpoint": agent.endpoint},
    )
    online = Workers.is_online(agent, datetime.now(UTC), stale_after(runtime.settings))
    return WorkerOut.of(agent, online=online)


@router.get("/{worker_id}")
def get_worker(worker_id: str, runtime: RuntimeDep, _who: Viewer) -> WorkerOut:
    worker = runtime.store.workers.get(worker_id)
    if worker is None:
        raise HTTPException(404, f"worker {worker_id} not found")
    online = Workers.is_online(worker, datetime.now(UTC), stale_after(runtime.settings))
    return WorkerOut.of(worker, online=online)
