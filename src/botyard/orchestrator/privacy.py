"""Data-subject requests under POPIA: record them, then export, correct or erase, all audited.

Anyone may file a request; it is answered with a reference and nothing else. Only an admin sees
who it is about, and every step (filed, viewed, exported, fulfilled, rejected) is in the audit
log without the subject's identifier: the audit names the request by its reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botyard.errors import PrivacyRequestClosed, PrivacyRequestNotFound
from botyard.settings import Settings
from botyard.store.privacy import PrivacyRequest, SubjectData
from botyard.store.sql import SqlStore

log = logging.getLogger("botyard.privacy")

KINDS = ("access", "correction", "deletion")


@dataclass(frozen=True, slots=True)
class Actor:
    name: str | None
    client: str | None


def notice(settings: Settings) -> dict[str, Any]:
    """The privacy notice: what is processed, why, for how long, and how to ask about it."""
    privacy = settings.privacy
    retention = settings.maintenance
    return {
        "title": "Privacy notice",
        "law": "Protection of Personal Information Act 4 of 2013 (POPIA), South Africa",
        "responsible_party": privacy.organisation or "the operator of this Botyard installation",
        "data_protection_contact": privacy.data_protection_contact
        or "not configured: set DATA_PROTECTION_CONTACT",
        "personal_information_processed": [
            "job payloads and results, which may hold customer identifiers "
            "(names, account, circuit or order numbers)",
            "screenshots and page captures of partner portals taken as evidence",
            "job log lines",
            "user names of the people who use the API, and the network addresses they call from "
            "(audit log)",
        ],
        "purposes": [
            "running the automation jobs the operator submits",
            "keeping evidence of what each job did",
            "security and accountability (audit log)",
        ],
        "retention": {
            "evidence_days": retention.screenshot_retention_days,
            "metrics_history_days": retention.history_retention_days,
            "jobs_and_logs": "kept until erased on request or by the operator",
        },
        "your_rights": [
            "access: a copy of the personal information held about you",
            "correction: have inaccurate information corrected",
            "deletion: have information about you deleted or redacted",
            "object to processing, and complain to the Information Regulator of South Africa",
        ],
        "how_to_make_a_request": {
            "method": "POST",
            "path": "/privacy/data-request",
            "body": {
                "request_type": "access | correction | deletion",
                "subject_identifier": "what identifies you in the jobs, e.g. an account number",
                "contact": "how to reach you with the answer",
                "details": "optional: for a correction, what is wrong",
            },
            "answer": "a reference for your request; no personal information is returned",
        },
    }


class PrivacyService:
    def __init__(self, store: SqlStore, data_dir: Path) -> None:
        self.store = store
        self.requests = store.privacy
        self.evidence_root = (data_dir / "evidence").resolve()

    def receive(
        self, *, kind: str, subject: str, contact: str, details: str | None, actor: Actor
    ) -> PrivacyRequest:
        request = self.requests.create(kind=kind, subject=subject, contact=contact, details=details)
        self._audit("privacy_request_received", request, actor, {"kind": kind})
        return request

    def page(
        self, *, status: str | None, limit: int, offset: int, actor: Actor
    ) -> tuple[list[PrivacyRequest], int]:
        found, total = self.requests.page(status=status, limit=limit, offset=offset)
        self.store.audit.record(
            "privacy_requests_listed",
            actor=actor.name,
            target="privacy",
            client=actor.client,
            details={"status": status, "returned": len(found)},
        )
        return found, total

    def view(self, reference: str, actor: Actor) -> tuple[PrivacyRequest, dict[str, int]]:
        """The request and how much the store holds about its subject."""
        request = self._get(reference)
        found = self.requests.find(request.subject)
        counts = _counts(found)
        self._audit("privacy_request_viewed", request, actor, counts)
        return request, counts

    def export(self, reference: str, actor: Actor) -> dict[str, Any]:
        """Everything that refers to the subject of an access request."""
        request = self._get(reference)
        found = self.requests.find(request.subject)
        self._audit("privacy_export", request, actor, _counts(found))
        return _export(request, found)

    def fulfil(
        self, reference: str, *, note: str | None, actor: Actor
    ) -> tuple[PrivacyRequest, dict[str, Any] | None]:
        """Carry an open request out; for an access request, also the export."""
        request = self._open(reference)
        export: dict[str, Any] | None = None
        if request.kind == "access":
            found = self.requests.find(request.subject)
            export = _export(request, found)
            outcome: dict[str, Any] = _counts(found)
        elif request.kind == "deletion":
            outcome = self._erase(request)
        else:  # correction: a person corrects the source; the note says what was done
            outcome = {}
        closed = self._close(request, "fulfilled", note, outcome, actor)
        return closed, export

    def reject(self, reference: str, *, note: str, actor: Actor) -> PrivacyRequest:
        return self._close(self._open(reference), "rejected", note, {}, actor)

    # -- internals -----------------------------------------------------------

    def _erase(self, request: PrivacyRequest) -> dict[str, Any]:
        erased = self.requests.erase(request.subject)  # SubjectHasActiveJobs: nothing changed
        files_deleted = 0
        for item in erased.evidence:
            path = Path(item.path).resolve()
            # Only files inside the evidence folder are ours to delete, whatever a row says.
            if path.is_relative_to(self.evidence_root) and path.is_file():
                path.unlink()
                files_deleted += 1
        return {
            "jobs_redacted": len(erased.jobs_redacted),
            "log_lines_redacted": erased.log_lines_redacted,
            "evidence_deleted": len(erased.evidence),
            "evidence_files_deleted": files_deleted,
        }

    def _get(self, reference: str) -> PrivacyRequest:
        request = self.requests.get(reference)
        if request is None:
            raise PrivacyRequestNotFound(f"no data-subject request {reference!r}")
        return request

    def _open(self, reference: str) -> PrivacyRequest:
        request = self._get(reference)
        if request.status != "received":
            raise PrivacyRequestClosed(
                f"request {reference} is {request.status} already", status=request.status
            )
        return request

    def _close(
        self,
        request: PrivacyRequest,
        status: str,
        note: str | None,
        outcome: dict[str, Any],
        actor: Actor,
    ) -> PrivacyRequest:
        closed = self.requests.close(
            request.reference, status=status, by=actor.name or "", note=note, outcome=outcome
        )
        if closed is None:  # another admin closed it in the meantime
            raise PrivacyRequestClosed(f"request {request.reference} was closed meanwhile")
        self._audit(f"privacy_request_{status}", closed, actor, {"kind": closed.kind, **outcome})
        log.info("data-subject request %s %s by %s", closed.reference, status, actor.name)
        return closed

    def _audit(
        self, action: str, request: PrivacyRequest, actor: Actor, details: dict[str, Any]
    ) -> None:
        self.store.audit.record(
            action,
            actor=actor.name,
            target=f"privacy:{request.reference}",
            client=actor.client,
            details=details,
        )


def _counts(found: SubjectData) -> dict[str, int]:
    return {
        "jobs": len(found.jobs),
        "log_lines": len(found.log_lines),
        "evidence": len(found.evidence),
    }


def _export(request: PrivacyRequest, found: SubjectData) -> dict[str, Any]:
    return {
        "reference": request.reference,
        "subject_identifier": request.subject,
        "jobs": [
            {
                "id": job.id,
                "automation": job.automation,
                "status": job.status.value,
                "payload": job.payload,
                "result": job.result,
                "error": job.error,
                "created_at": job.created_at,
                "finished_at": job.finished_at,
            }
            for job in found.jobs
        ],
        "log_lines": found.log_lines,
        "evidence": [
            {
                "id": e.id,
                "job_id": e.job_id,
                "attempt": e.attempt,
                "name": e.name,
                "content_type": e.content_type,
                "size": e.size,
                "created_at": e.created_at,
                "url": f"/evidence/{e.id}",
            }
            for e in found.evidence
        ],
    }
