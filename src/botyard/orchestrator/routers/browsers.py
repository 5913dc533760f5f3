"""Browser sessions: jobs' sessions as their workers report them, and sessions on demand."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from botyard.orchestrator.auth import Principal
from botyard.orchestrator.browsers import BrowserHost
from botyard.orchestrator.deps import RuntimeDep, client_of, require

router = APIRouter(prefix="/browsers", tags=["browsers"])
Operator = Annotated[Principal, Depends(require("browser:manage"))]


class SessionOut(BaseModel):
    id: str
    job_id: int | None
    attempt: int | None
    owner: str | None
    provider: str
    kind: str
    endpoint: str | None
    warm: bool
    ready_seconds: float | None
    pid: int | None
    status: str
    started_at: datetime
    ended_at: datetime | None


class ProvisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_seconds: Annotated[float | None, Field(ge=10, le=86400)] = None


def _host(request: Request) -> BrowserHost:
    host: BrowserHost = request.app.state.browsers
    return host


Host = Annotated[BrowserHost, Depends(_host)]


@router.get("")
def list_sessions(
    runtime: RuntimeDep,
    _who: Operator,
    all: Annotated[bool, Query(description="also the sessions that ended (latest 200)")] = False,
) -> list[SessionOut]:
    rows = runtime.store.browsers.recent() if all else runtime.store.browsers.open()
    return [SessionOut(**row) for row in rows]


@router.get("/{session_id}", responses={404: {"description": "no such session"}})
def get_session(session_id: str, runtime: RuntimeDep, _who: Operator) -> SessionOut:
    row = runtime.store.browsers.get(session_id)
    if row is None:
        raise HTTPException(404, f"no browser session {session_id}")
    return SessionOut(**row)


@router.post("", status_code=201, responses={409: {"description": "the provider cannot"}})
def provision(
    request: Request,
    host: Host,
    runtime: RuntimeDep,
    who: Operator,
    body: ProvisionIn | None = None,
) -> SessionOut:
    """A browser outside any job (for a person or a tool), ended by DELETE or its time to live."""
    record: dict[str, Any] = host.provision((body or ProvisionIn()).ttl_seconds)
    runtime.store.audit.record(
        "browser_provisioned",
        actor=who.username,
        target=f"browser:{record['id']}",
        client=client_of(request),
        details={"provider": record["provider"]},
    )
    row = runtime.store.browsers.get(record["id"])
    assert row is not None
    return SessionOut(**row)


@router.delete("/{session_id}", status_code=204, responses={404: {}, 409: {}})
def terminate(
    session_id: str, request: Request, host: Host, runtime: RuntimeDep, who: Operator
) -> Response:
    if not host.terminate(session_id):
        raise HTTPException(404, f"no open browser session {session_id}")
    runtime.store.audit.record(
        "browser_terminated",
        actor=who.username,
        target=f"browser:{session_id}",
        client=client_of(request),
    )
    return Response(status_code=204)
