"""The audit log: logins, failed logins and every state-changing action, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from botyard.orchestrator.auth import Principal
from botyard.orchestrator.deps import RuntimeDep, require
from botyard.orchestrator.schemas import AuditEventOut, AuditPage, Offset

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
def list_events(
    runtime: RuntimeDep,
    _who: Annotated[Principal, Depends(require("audit:read"))],
    action: Annotated[str | None, Query(max_length=100, examples=["login_failed"])] = None,
    actor: Annotated[str | None, Query(max_length=150)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> AuditPage:
    """Audit events, newest first."""
    audit = runtime.store.audit
    events = audit.recent(limit=limit, offset=offset, action=action, actor=actor)
    return AuditPage(
        items=[AuditEventOut.model_validate(e, from_attributes=True) for e in events],
        total=audit.count(action=action, actor=actor),
        limit=limit,
        offset=offset,
    )
