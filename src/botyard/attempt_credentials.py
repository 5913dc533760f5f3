"""Per-attempt credentials: what a job's own process shows the orchestrator.

A job's process holds neither the worker token (which can close any job) nor the database URL.
Its worker gives it a credential bound to one ``(job id, attempt)`` instead: a JWT signed with a
key derived from the worker token, so that anyone who holds the worker token (a pull worker, an
agent, a standby worker) can mint one and the orchestrator can check it without a table of its
own. The orchestrator accepts it only while that attempt runs; a job that learns it can reach
nothing beyond its own attempt's TOTP and session calls.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import jwt

AUDIENCE = "botyard:attempt"
ENV_VAR = "BOTYARD_JOB_TOKEN"  # where a script automation finds its own credential
_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class AttemptCredential:
    job_id: int
    attempt: int


def _key(worker_token: str) -> bytes:
    # A key of its own: a credential never doubles as the worker token, nor the other way round.
    label = b"botyard attempt credential v1"
    return hmac.new(worker_token.encode(), label, hashlib.sha256).digest()


def mint(worker_token: str, job_id: int, attempt: int) -> str:
    """The credential of attempt ``attempt`` of job ``job_id``."""
    claims = {"aud": AUDIENCE, "job": job_id, "attempt": attempt}
    return jwt.encode(claims, _key(worker_token), algorithm=_ALGORITHM)


def verify(worker_token: str, credential: str) -> AttemptCredential | None:
    """The attempt a credential was minted for, or ``None`` when it was not minted with this
    worker token. Whether that attempt still runs is the caller's question (the store's)."""
    try:
        claims = jwt.decode(
            credential,
            _key(worker_token),
            algorithms=[_ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["aud", "job", "attempt"]},
        )
    except jwt.PyJWTError:
        return None
    job_id, attempt = claims["job"], claims["attempt"]
    if not (isinstance(job_id, int) and isinstance(attempt, int)) or job_id < 1 or attempt < 1:
        return None
    return AttemptCredential(job_id, attempt)
