"""Evidence of a job (``/jobs/{id}/screenshots``) and authenticated downloads."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel

from botyard.orchestrator.auth import Principal
from botyard.orchestrator.deps import RuntimeDep, require
from botyard.orchestrator.schemas import Id
from botyard.store.records import EvidenceRecord
from botyard.wiring import Runtime

router = APIRouter(tags=["evidence"])
Viewer = Annotated[Principal, Depends(require("evidence:read"))]


class EvidenceOut(BaseModel):
    id: int
    name: str
    attempt: int
    step: str | None
    content_type: str
    size: int
    created_at: datetime
    url: str  # needs the same bearer token


class JobEvidence(BaseModel):
    job_id: int
    screenshots: list[EvidenceOut]


@router.get("/jobs/{job_id}/screenshots")
def job_screenshots(job_id: Id, runtime: RuntimeDep, _who: Viewer) -> JobEvidence:
    """Every evidence file of the job (screenshots, page HTML, attachments), oldest first."""
    items = runtime.store.evidence(job_id)
    return JobEvidence(
        job_id=job_id,
        screenshots=[
            EvidenceOut(
                id=e.id,
                name=e.name,
                attempt=e.attempt,
                step=e.step,
                content_type=e.content_type,
                size=e.size,
                created_at=e.created_at,
                url=f"/evidence/{e.id}",
            )
            for e in items
        ],
    )


@router.get("/evidence/{evidence_id}", response_class=FileResponse)
def download(evidence_id: Id, runtime: RuntimeDep, _who: Viewer) -> FileResponse:
    found = stored_evidence(runtime, evidence_id)
    if found is None:
        raise HTTPException(404, f"evidence {evidence_id} not found")
    item, path = found
    return FileResponse(path, media_type=item.content_type, filename=item.name)


def stored_evidence(runtime: Runtime, evidence_id: int) -> tuple[EvidenceRecord, Path] | None:
    """The evidence row and its file, if the file exists inside the evidence folder: never a
    file elsewhere, whatever a row says (the API and the dashboard serve through this)."""
    item = runtime.store.evidence_item(evidence_id)
    if item is None:
        return None
    root = (runtime.settings.store.data_dir / "evidence").resolve()
    path = Path(item.path).resolve()
    return (item, path) if path.is_relative_to(root) and path.is_file() else None
