"""POPIA: the privacy notice, data-subject requests from anyone, and their handling by admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from botyard.orchestrator.auth import Principal
from botyard.orchestrator.deps import RuntimeDep, client_of, require
from botyard.orchestrator.privacy import Actor, PrivacyService, notice
from botyard.orchestrator.ratelimit import rate_limited
from botyard.orchestrator.schemas import Offset
from botyard.store.privacy import PrivacyRequest

router = APIRouter(prefix="/privacy", tags=["privacy"])
Admin = Annotated[Principal, Depends(require("privacy:manage"))]
Text = Annotated[str, StringConstraints(strip_whitespace=True)]


class DataRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_type: Literal["access", "correction", "deletion"]
    subject_identifier: Annotated[Text, Field(min_length=3, max_length=200)]
    contact: Annotated[Text, Field(min_length=3, max_length=320)]
    details: Annotated[Text | None, Field(max_length=2000)] = None


class DataRequestReceipt(BaseModel):
    """What the requester gets back: a reference, never personal information."""

    reference: str
    status: str
    request_type: str
    received_at: datetime
    message: str


class PrivacyRequestOut(BaseModel):
    reference: str
    request_type: str
    subject_identifier: str
    contact: str
    details: str | None
    status: str
    received_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    note: str | None
    outcome: dict[str, Any] | None

    @classmethod
    def of(cls, r: PrivacyRequest) -> PrivacyRequestOut:
        return cls(
            reference=r.reference,
            request_type=r.kind,
            subject_identifier=r.subject,
            contact=r.contact,
            details=r.details,
            status=r.status,
            received_at=r.received_at,
            closed_at=r.closed_at,
            closed_by=r.closed_by,
            note=r.note,
            outcome=r.outcome,
        )


class PrivacyRequestView(PrivacyRequestOut):
    matches: dict[str, int]  # what the store holds about the subject now


class PrivacyRequestPage(BaseModel):
    items: list[PrivacyRequestOut]
    total: int
    limit: int
    offset: int


class FulfilIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[Text | None, Field(max_length=2000)] = None


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Annotated[Text, Field(min_length=1, max_length=2000)]


class Fulfilled(BaseModel):
    request: PrivacyRequestOut
    export: dict[str, Any] | None  # access requests: everything that refers to the subject


def _service(runtime: RuntimeDep) -> PrivacyService:
    return PrivacyService(runtime.store, runtime.settings.store.data_dir)


ServiceDep = Annotated[PrivacyService, Depends(_service)]


def _actor(principal: Principal | None, request: Request) -> Actor:
    return Actor(principal.username if principal else None, client_of(request))


@router.get("/notice")
def privacy_notice(runtime: RuntimeDep) -> dict[str, Any]:
    """The privacy notice; the contact comes from ``DATA_PROTECTION_CONTACT``."""
    return notice(runtime.settings)


@router.post(
    "/data-request",
    status_code=202,
    dependencies=[Depends(rate_limited("data_request"))],
    responses={429: {"description": "too many requests from this address"}},
)
def data_request(
    body: DataRequestIn, service: ServiceDep, runtime: RuntimeDep, request: Request
) -> DataRequestReceipt:
    """Record an access, correction or deletion request; answers with its reference only."""
    recorded = service.receive(
        kind=body.request_type,
        subject=body.subject_identifier,
        contact=body.contact,
        details=body.details,
        actor=_actor(None, request),
    )
    contact = runtime.settings.privacy.data_protection_contact
    return DataRequestReceipt(
        reference=recorded.reference,
        status=recorded.status,
        request_type=recorded.kind,
        received_at=recorded.received_at,
        message=(
            f"Your request is recorded as {recorded.reference}. A person will handle it and"
            " answer you at the contact you gave"
            + (f"; questions to {contact}." if contact else ".")
        ),
    )


@router.get("/requests")
def list_requests(
    service: ServiceDep,
    who: Admin,
    request: Request,
    status: Annotated[Literal["received", "fulfilled", "rejected"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> PrivacyRequestPage:
    """Requests newest first (admins)."""
    found, total = service.page(
        status=status, limit=limit, offset=offset, actor=_actor(who, request)
    )
    return PrivacyRequestPage(
        items=[PrivacyRequestOut.of(r) for r in found], total=total, limit=limit, offset=offset
    )


@router.get("/requests/{reference}")
def view_request(
    reference: str, service: ServiceDep, who: Admin, request: Request
) -> PrivacyRequestView:
    """One request, with how many jobs, log lines and evidence files refer to its subject."""
    found, matches = service.view(reference, _actor(who, request))
    return PrivacyRequestView(**PrivacyRequestOut.of(found).model_dump(), matches=matches)


@router.get("/requests/{reference}/export")
def export_request(
    reference: str, service: ServiceDep, who: Admin, request: Request
) -> dict[str, Any]:
    """Every job, log line and evidence record that refers to the request's subject."""
    return service.export(reference, _actor(who, request))


@router.post("/requests/{reference}/fulfil")
def fulfil_request(
    reference: str, body: FulfilIn, service: ServiceDep, who: Admin, request: Request
) -> Fulfilled:
    """Access: the export. Deletion: redact the jobs, delete the evidence. Correction: close."""
    closed, export = service.fulfil(reference, note=body.note, actor=_actor(who, request))
    return Fulfilled(request=PrivacyRequestOut.of(closed), export=export)


@router.post("/requests/{reference}/reject")
def reject_request(
    reference: str, body: RejectIn, service: ServiceDep, who: Admin, request: Request
) -> PrivacyRequestOut:
    """Close a request without acting on it; the note says why."""
    closed = service.reject(reference, note=body.note, actor=_actor(who, request))
    return PrivacyRequestOut.of(closed)
