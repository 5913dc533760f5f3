"""``POST /token``: the OAuth2 password flow, answered with a JWT."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from botyard.errors import InvalidCredentials
from botyard.orchestrator.deps import AuthenticatorDep, RuntimeDep, client_of
from botyard.orchestrator.ratelimit import rate_limited
from botyard.orchestrator.schemas import Token

router = APIRouter(tags=["auth"])


@router.post(
    "/token",
    dependencies=[Depends(rate_limited("token"))],
    responses={
        401: {"description": "Incorrect username or password"},
        429: {"description": "too many attempts from this address (TOKEN_RATE_LIMIT)"},
    },
)
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    auth: AuthenticatorDep,
    runtime: RuntimeDep,
    request: Request,
) -> Token:
    audit = runtime.store.audit
    try:
        principal = auth.login(form.username, form.password)
    except InvalidCredentials:
        audit.record("login_failed", actor=form.username[:150], client=client_of(request))
        raise
    audit.record("login", actor=principal.username, client=client_of(request))
    return Token(access_token=auth.issue(principal))
