"""Data-subject requests (POPIA), and finding, exporting and erasing what refers to a subject."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Text, cast, func, select, update

from botyard.errors import SubjectHasActiveJobs
from botyard.jobs import JobStatus
from botyard.store.reads import job_record
from botyard.store.records import EvidenceRecord, JobRecord
from botyard.store.tables import evidence, jobs, log_lines, privacy_requests, utcnow

REDACTED = "[redacted]"
_ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_SCAN_BATCH = 500


@dataclass(frozen=True, slots=True)
class PrivacyRequest:
    id: int
    reference: str
    kind: str  # access | correction | deletion
    subject: str
    contact: str
    details: str | None
    status: str  # received | fulfilled | rejected
    received_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    note: str | None
    outcome: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class SubjectData:
    """Everything in the store that refers to one identifier."""

    jobs: list[JobRecord]
    log_lines: list[dict[str, Any]]  # {id, job_id, attempt, at, level, message}
    evidence: list[EvidenceRecord]


@dataclass(frozen=True, slots=True)
class Erasure:
    jobs_redacted: list[int]
    log_lines_redacted: int
    evidence: list[EvidenceRecord]  # rows deleted; their files are the caller's to remove


def mentions(value: Any, needle: str) -> bool:
    """Whether any string (or key) inside a JSON value contains ``needle``, ignoring case."""
    if isinstance(value, str):
        return needle in value.casefold()
    if isinstance(value, dict):
        return any(mentions(k, needle) or mentions(v, needle) for k, v in value.items())
    if isinstance(value, list):
        return any(mentions(v, needle) for v in value)
    return False


def redact_values(value: Any) -> Any:
    """The same shape with every leaf replaced: keys stay, so the job still reads as a job."""
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_values(v) for v in value]
    return None if value is None else REDACTED


def redact_mentions(value: Any, subject: str) -> Any:
    """The same JSON value with ``subject`` replaced inside every string."""
    if isinstance(value, str):
        return redact_text(value, subject)
    if isinstance(value, dict):
        return {k: redact_mentions(v, subject) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_mentions(v, subject) for v in value]
    return value


def redact_text(text: str, subject: str) -> str:
    """``text`` with every occurrence of ``subject`` (any case) replaced.

    When case folding still finds the subject afterwards (``STRASSE`` for ``Straße``), the whole
    text goes: erasing too much beats leaving the subject behind.
    """
    redacted = re.sub(re.escape(subject), REDACTED, text, flags=re.IGNORECASE)
    return REDACTED if subject.casefold() in redacted.casefold() else redacted


class PrivacyRequests:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- the requests -------------------------------------------------------

    def create(
        self, *, kind: str, subject: str, contact: str, details: str | None
    ) -> PrivacyRequest:
        reference = "DSR-" + secrets.token_hex(6).upper()
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    privacy_requests.insert()
                    .values(
                        reference=reference,
                        kind=kind,
                        subject=subject,
                        contact=contact,
                        details=details,
                        status="received",
                        received_at=utcnow(),
                    )
                    .returning(*privacy_requests.c)
                )
                .mappings()
                .one()
            )
            return PrivacyRequest(**dict(row))

    def get(self, reference: str) -> PrivacyRequest | None:
        query = select(privacy_requests).where(privacy_requests.c.reference == reference)
        with self.engine.connect().execution_options(readonly=True) as conn:
            row = conn.execute(query).mappings().first()
            return PrivacyRequest(**dict(row)) if row else None

    def page(
        self, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[PrivacyRequest], int]:
        """Requests newest first, and how many there are in all."""
        query = select(privacy_requests)
        count = select(func.count()).select_from(privacy_requests)
        if status is not None:
            query = query.where(privacy_requests.c.status == status)
            count = count.where(privacy_requests.c.status == status)
        query = query.order_by(privacy_requests.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect().execution_options(readonly=True) as conn:
            rows = [PrivacyRequest(**dict(r)) for r in conn.execute(query).mappings()]
            return rows, int(conn.execute(count).scalar_one())

    def close(
        self, reference: str, *, status: str, by: str, note: str | None, outcome: dict[str, Any]
    ) -> PrivacyRequest | None:
        """Close an open request; ``None`` when it is not open (any more)."""
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    update(privacy_requests)
                    .where(
                        privacy_requests.c.reference == reference,
                        privacy_requests.c.status == "received",
                    )
                    .values(
                        status=status, closed_at=utcnow(), closed_by=by, note=note, outcome=outcome
                    )
                    .returning(*privacy_requests.c)
                )
                .mappings()
                .first()
            )
            return PrivacyRequest(**dict(row)) if row else None

    # -- what the store holds about a subject -------------------------------

    def find(self, subject: str) -> SubjectData:
        """Jobs whose payload, result or error mention ``subject``; log lines that mention it;
        the evidence of those jobs."""
        with self.engine.connect().execution_options(readonly=True) as conn:
            found = [job_record(r) for r in _jobs_mentioning(conn, subject)]
            ids = [j.id for j in found]
            lines = [dict(r) for r in _lines_mentioning(conn, subject)]
            files = _evidence_of(conn, ids)
        return SubjectData(jobs=found, log_lines=lines, evidence=files)

    def erase(self, subject: str) -> Erasure:
        """Redact every finished job that mentions ``subject`` and delete its evidence rows.

        Payload and result keep their keys with every value redacted; the error and every log
        line that names the subject lose its occurrences. When a queued or running job
        mentions the subject, nothing changes: ``SubjectHasActiveJobs`` names them (erasing them
        would break them; cancel them or let them finish first).
        """
        with self.engine.begin() as conn:
            rows = list(_jobs_mentioning(conn, subject))
            active = [r["id"] for r in rows if r["status"] in _ACTIVE]
            if active:
                raise SubjectHasActiveJobs(
                    f"jobs {', '.join(map(str, active[:20]))} are queued or running and refer to"
                    " the subject; cancel them or let them finish, then fulfil the request again",
                    jobs=active,
                )
            ids = [r["id"] for r in rows]
            for row in rows:
                error = redact_mentions(row["error"], subject)
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row["id"])
                    .values(
                        payload=redact_values(row["payload"]),
                        result=redact_values(row["result"]),
                        error=error,
                        idempotency_key=None,
                    )
                )
            lines = list(_lines_mentioning(conn, subject))
            for line in lines:
                conn.execute(
                    update(log_lines)
                    .where(log_lines.c.id == line["id"])
                    .values(message=redact_text(line["message"], subject))
                )
            files = _evidence_of(conn, ids)
            if files:
                conn.execute(evidence.delete().where(evidence.c.id.in_([f.id for f in files])))
        return Erasure(jobs_redacted=ids, log_lines_redacted=len(lines), evidence=files)


def _like(subject: str, *, ascii_only: bool) -> str:
    """A LIKE pattern that finds ``subject`` inside JSON text as the database stores it."""
    return _like_text(json.dumps(subject, ensure_ascii=ascii_only)[1:-1])


def _like_text(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) that finds ``text`` anywhere."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _jobs_mentioning(conn: Connection, subject: str) -> Iterator[Any]:
    """Rows of jobs whose payload, result or error mention ``subject``.

    The database narrows the search with a LIKE over the JSON text; Python confirms each match
    on the decoded values, so a key name or JSON escaping cannot produce a false hit.
    """
    # SQLite keeps SQLAlchemy's json.dumps text (non-ASCII escaped); PostgreSQL prints jsonb
    # with the characters themselves.
    pattern = _like(subject, ascii_only=conn.dialect.name == "sqlite")
    as_text = [cast(col, Text) for col in (jobs.c.payload, jobs.c.result, jobs.c.error)]
    query = (
        select(jobs)
        .where(
            as_text[0].ilike(pattern, escape="\\")
            | as_text[1].ilike(pattern, escape="\\")
            | as_text[2].ilike(pattern, escape="\\")
        )
        .order_by(jobs.c.id)
        .execution_options(yield_per=_SCAN_BATCH)
    )
    needle = subject.casefold()
    for row in conn.execute(query).mappings():
        if any(mentions(row[key], needle) for key in ("payload", "result", "error")):
            yield row


def _lines_mentioning(conn: Connection, subject: str) -> Iterator[Any]:
    query = (
        select(log_lines)
        .where(log_lines.c.message.ilike(_like_text(subject), escape="\\"))
        .order_by(log_lines.c.id)
    )
    needle = subject.casefold()
    for row in conn.execute(query).mappings():
        if needle in row["message"].casefold():
            yield row


def _evidence_of(conn: Connection, job_ids: list[int]) -> list[EvidenceRecord]:
    if not job_ids:
        return []
    out: list[EvidenceRecord] = []
    for start in range(0, len(job_ids), _SCAN_BATCH):
        chunk = job_ids[start : start + _SCAN_BATCH]
        query = select(evidence).where(evidence.c.job_id.in_(chunk)).order_by(evidence.c.id)
        out.extend(EvidenceRecord(**dict(r)) for r in conn.execute(query).mappings())
    return out
