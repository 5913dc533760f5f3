"""Who is looking at the dashboard: the API's JWT, kept in a cookie, and a CSRF token.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site sends it)
and ``Secure`` on HTTPS; its path is ``/ui``, so the API never sees it. Every form that changes
something also carries a token derived from the session (HMAC), checked on the way in.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request, Response

from botyard.errors import AuthError, InvalidToken, PermissionDenied
from botyard.orchestrator.auth import PERMISSIONS, Authenticator, Principal

COOKIE = "botyard_session"
PATH = "/ui"


class LoginRequired(AuthError):
    """Log in to see this page."""

    def __init__(self, next_url: str) -> None:
        super().__init__("log in to see this page")
        self.next_url = next_url


@dataclass(frozen=True, slots=True)
class UiUser:
    principal: Principal
    csrf: str

    @property
    def name(self) -> str:
        return self.principal.username

    @property
    def role(self) -> str:
        return self.principal.role.value

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.principal.role]

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise PermissionDenied(f"the {self.role} role may not {permission}")


def csrf_token(auth: Authenticator, session: str) -> str:
    return hmac.new(auth.secret.encode(), session.encode(), hashlib.sha256).hexdigest()[:40]


def current_user(request: Request) -> UiUser:
    """The logged-in user, or ``LoginRequired`` (the dashboard redirects to its login page)."""
    auth: Authenticator = request.app.state.authenticator
    session = request.cookies.get(COOKIE)
    if not session:
        raise LoginRequired(_here(request))
    try:
        principal = auth.verify(session)
    except InvalidToken as exc:  # expired, or signed by another secret: log in again
        raise LoginRequired(_here(request)) from exc
    return UiUser(principal, csrf_token(auth, session))


def check_csrf(request: Request, user: UiUser, given: str | None) -> None:
    if not given or not hmac.compare_digest(given, user.csrf):
        raise PermissionDenied("the form is stale or came from elsewhere: reload the page")


def open_session(request: Request, response: Response, principal: Principal) -> None:
    auth: Authenticator = request.app.state.authenticator
    response.set_cookie(
        COOKIE,
        auth.issue(principal),
        max_age=int(auth.expiry.total_seconds()),
        path=PATH,
        httponly=True,
        samesite="strict",
        # Behind a TLS-terminating proxy the app may see http: its X-Forwarded-Proto counts too.
        secure=request.url.scheme == "https"
        or request.headers.get("x-forwarded-proto", "").lower() == "https",
    )


def close_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH)


def safe_next(url: str | None) -> str:
    """Only a dashboard page: never an absolute URL that would send the user elsewhere."""
    if url and url.startswith(f"{PATH}/") and not url.startswith("//") and "\\" not in url:
        return url
    return f"{PATH}/"


def _here(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return quote(f"{request.url.path}{query}", safe="/")
