"""A password login, as ``POST /token`` and the dashboard's login form both do it.

The failed-login limits are checked (and the attempt counted) first, then the password. The
audit log records each login and each failure; a failure names its actor only when that user
exists, since what was typed into the username field may be someone's password.
"""

from __future__ import annotations

from fastapi import Request

from botyard.errors import InvalidCredentials
from botyard.orchestrator.auth import Authenticator, Principal
from botyard.orchestrator.ratelimit import LoginLimits, client_key
from botyard.wiring import Runtime

UNKNOWN_USER = "unknown user"  # the actor of a failed login under a name no user has


def log_in(request: Request, username: str, password: str, *, via: str | None = None) -> Principal:
    """The user, or ``RateLimitExceeded`` / ``InvalidCredentials``; audited either way."""
    runtime: Runtime = request.app.state.runtime
    auth: Authenticator = request.app.state.authenticator
    limits: LoginLimits = request.app.state.login_limits
    client = request.client.host if request.client else None
    address = client_key(client) if client else "unknown"
    limits.check(username, address)
    details = {"via": via} if via else None
    try:
        principal = auth.login(username, password)
    except InvalidCredentials as exc:
        actor = exc.data.get("known_user") or UNKNOWN_USER
        runtime.store.audit.record("login_failed", actor=actor, client=client, details=details)
        raise
    limits.succeeded(username, address)
    runtime.store.audit.record("login", actor=principal.username, client=client, details=details)
    return principal
