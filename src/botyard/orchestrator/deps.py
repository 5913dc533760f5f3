"""FastAPI dependencies: the runtime, the job service and the caller's identity and rights."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from botyard import attempt_credentials
from botyard.attempt_credentials import AttemptCredential
from botyard.bearer import bearer_matches
from botyard.errors import InvalidToken, JobNotFound
from botyard.jobs import JobStatus
from botyard.orchestrator.auth import Authenticator, Principal, check_permission
from botyard.orchestrator.schemas import MAX_INT
from botyard.orchestrator.service import JobService
from botyard.wiring import Runtime

_bearer = OAuth2PasswordBearer(tokenUrl="/token", auto_error=False)


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


async def get_authenticator(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.authenticator
    return auth


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServiceDep = Annotated[JobService, Depends(get_service)]
AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]


# The dependencies are coroutines: a plain ``def`` would cost a thread-pool hop per request each.


async def current_principal(
    auth: AuthenticatorDep, token: Annotated[str | None, Depends(_bearer)]
) -> Principal:
    if not token:
        raise InvalidToken("Not authenticated")
    return auth.verify(token)


def require(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets the call through only with ``permission`` ("resource:action")."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        check_permission(principal, permission)
        return principal

    return dependency


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


async def worker_token(request: Request, runtime: RuntimeDep) -> None:
    """Let the call through only with the token workers share (``BOTYARD_WORKER_TOKEN``)."""
    token = runtime.settings.agent.token
    given = request.headers.get("authorization", "")
    if token is None or not bearer_matches(given, token.get_secret_value()):
        raise InvalidToken("Could not validate credentials")


@dataclass(frozen=True, slots=True)
class Attempt:
    """A running attempt as its credential names it, and its job's provider."""

    credential: AttemptCredential
    provider: str


async def running_attempt(request: Request, runtime: RuntimeDep) -> Attempt:
    """The attempt whose credential (``BOTYARD_JOB_TOKEN``) the call carries, while it runs.

    A job's process holds that credential and not the worker token; the worker token itself is
    refused here, so every TOTP code goes to an attempt that is running when it is asked for.
    """
    token = runtime.settings.agent.token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    credential = (
        attempt_credentials.verify(token.get_secret_value(), value)
        if token is not None and scheme.lower() == "bearer" and value
        else None
    )
    if credential is None or credential.job_id > MAX_INT:
        raise InvalidToken("Could not validate credentials")
    try:
        job = await anyio.to_thread.run_sync(
            partial(runtime.store.get_job, credential.job_id, detail=False)
        )
    except JobNotFound:
        raise InvalidToken("Could not validate credentials") from None
    if job.status is not JobStatus.RUNNING or job.attempt != credential.attempt:
        raise InvalidToken("This attempt is over: its credential is no longer valid")
    return Attempt(credential, job.provider)


RunningAttempt = Annotated[Attempt, Depends(running_attempt)]
