"""``POST /token``: the OAuth2 password flow, answered with a JWT."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from botyard.orchestrator.deps import AuthenticatorDep
from botyard.orchestrator.logins import log_in
from botyard.orchestrator.schemas import Token

router = APIRouter(tags=["auth"])


@router.post(
    "/token",
    responses={
        401: {"description": "Incorrect username or password"},
        429: {
            "description": "too many failed logins of this account, from this address"
            " (TOKEN_RATE_LIMIT) or from anywhere (LOGIN_ACCOUNT_RATE_LIMIT), or of any"
            " account from this address (LOGIN_ADDRESS_RATE_LIMIT)"
        },
    },
)
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    auth: AuthenticatorDep,
    request: Request,
) -> Token:
    principal = log_in(request, form.username, form.password)
    return Token(access_token=auth.issue(principal))
