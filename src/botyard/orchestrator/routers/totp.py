"""TOTP codes for running attempts (their credential) and figures (viewers); secrets stay here."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from botyard.errors import PermissionDenied
from botyard.orchestrator.auth import Principal
from botyard.orchestrator.deps import Attempt, RunningAttempt, require
from botyard.totp import TotpCode, TotpManager, TotpUnavailable

router = APIRouter(prefix="/totp", tags=["totp"])
Provider = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,100}$")]
_MAX_WAIT = 65.0  # two 30 s steps at most, whatever the interval


class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]{1,100}$")] = None
    job_id: int | None = None


class CodeOut(BaseModel):
    code: str
    time_step: int
    valid_for: float
    provider: str
    account: str | None


class ConsumedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]{1,100}$")] = None
    time_step: int | None = None
    success: bool


class ProviderTotp(BaseModel):
    provider: str
    issued: int
    consumed: int
    succeeded: int
    failed: int
    success_rate: float | None


def _manager(request: Request) -> TotpManager:
    manager: TotpManager = request.app.state.totp
    return manager


Manager = Annotated[TotpManager, Depends(_manager)]


def _own(attempt: Attempt, provider: str, job_id: int | None = None) -> None:
    """Refuse what the attempt's job has no business with: another provider's codes, or a
    ``job_id`` that is not its own (a credential is one job's, not a pass to any account)."""
    if provider != attempt.provider:
        raise PermissionDenied(
            f"job {attempt.credential.job_id} runs a {attempt.provider} automation:"
            f" no {provider} codes for it"
        )
    if job_id is not None and job_id != attempt.credential.job_id:
        raise PermissionDenied(
            f"this credential is job {attempt.credential.job_id}'s, not {job_id}'s"
        )


@router.post("/{provider}/code")
async def fresh_code(
    provider: Provider, manager: Manager, attempt: RunningAttempt, body: CodeIn | None = None
) -> CodeOut:
    """A code whose time step no job had before, with at least ``TOTP_MIN_VALIDITY`` s left.

    For a running attempt only: its credential (``BOTYARD_JOB_TOKEN``) is the bearer. When the
    current step is taken or nearly over the answer waits for the next one (without holding a
    thread); 503 after about a minute. Only the job's own provider (its automation's name before
    the dot) and the job's own id: 403 otherwise.
    """
    _own(attempt, provider, body.job_id if body else None)
    account = body.account if body else None
    deadline = time.monotonic() + _MAX_WAIT
    while True:
        answer = await anyio.to_thread.run_sync(manager.next_code, provider, account)
        if isinstance(answer, TotpCode):
            return CodeOut(
                code=answer.code,
                time_step=answer.time_step,
                valid_for=answer.valid_for,
                provider=provider,
                account=account,
            )
        if time.monotonic() + answer.seconds > deadline:
            raise TotpUnavailable(f"no free time step for {provider} within {_MAX_WAIT:g} s")
        await asyncio.sleep(answer.seconds)


@router.post("/{provider}/consumed")
def consumed(
    provider: Provider, body: ConsumedIn, manager: Manager, attempt: RunningAttempt
) -> dict[str, str]:
    """Report whether the portal took the code (the success rate per provider)."""
    _own(attempt, provider)
    manager.consumed(provider, body.account, body.success)
    return {"status": "recorded"}


@router.get("/metrics")
def metrics(
    manager: Manager, _who: Annotated[Principal, Depends(require("metrics:read"))]
) -> list[ProviderTotp]:
    """Per provider: codes issued, consumed, and how many the portals accepted."""
    return [
        ProviderTotp(
            provider=f.provider,
            issued=f.issued,
            consumed=f.consumed,
            succeeded=f.succeeded,
            failed=f.failed,
            success_rate=round(f.success_rate, 4) if f.success_rate is not None else None,
        )
        for f in manager.figures()
    ]
