"""The demo portal: a fake telecom operator's partner portal that the demo automations drive.

Server-rendered pages with stable element ids (``#email``, ``#otp-code``, ``#circuit-status``,
...), a password and a TOTP second factor that refuses a time step used before, and circuits
to validate or cancel. Everything lives in memory and is gone when the process ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from botyard.demo.accounts import CodeCheck, CodeLedger, PortalAccount, password_matches
from botyard.demo.circuits import CircuitBook, Outcome, seed_circuits
from botyard.demo.sessions import COOKIE, Session, SessionStore

MAX_REASON = 500

_templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


@dataclass
class PortalState:
    """What one portal holds: its accounts, their code ledger, the circuits and the sessions."""

    accounts: dict[str, PortalAccount]  # by lower-cased email
    codes: CodeLedger
    circuits: CircuitBook
    sessions: SessionStore
    clock: Callable[[], float]

    def as_json(self) -> dict[str, Any]:
        """The circuits and per-account figures; never a password or a secret."""
        return {
            "circuits": [circuit.as_json() for circuit in self.circuits.all()],
            "accounts": {email: asdict(f) for email, f in self.codes.snapshot().items()},
        }


class _LoginRequired(Exception):
    """The page needs a verified session."""


def _logged_in(request: Request) -> Session:
    state: PortalState = request.app.state.portal
    session = state.sessions.get(request.cookies.get(COOKIE))
    if session is None or not session.verified:
        raise _LoginRequired()
    return session


LoggedIn = Annotated[Session, Depends(_logged_in)]


def create_portal(
    accounts: dict[str, PortalAccount], *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The portal's app for ``accounts`` (email → account); ``clock`` drives the TOTP steps."""
    for email, account in accounts.items():
        if email != account.email:
            raise ValueError(f"account {account.email!r} is filed under {email!r}")
    state = PortalState(
        accounts={account.email.lower(): account for account in accounts.values()},
        codes=CodeLedger(list(accounts.values())),
        circuits=CircuitBook(seed_circuits()),
        sessions=SessionStore(),
        clock=clock,
    )
    app = FastAPI(title="MetroFibre Partner Portal (demo)", docs_url=None, redoc_url=None)
    app.state.portal = state

    def current(request: Request) -> Session | None:
        return state.sessions.get(request.cookies.get(COOKIE))

    @app.exception_handler(_LoginRequired)
    async def _to_login(_request: Request, _exc: Exception) -> Response:
        return RedirectResponse("/login", status_code=303)

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        session = current(request)
        user = session.email if session is not None and session.verified else None
        return _templates.TemplateResponse(
            request, name, {"user": user, **context}, status_code=status_code
        )

    def redirect_with_session(url: str, request: Request, session_id: str | None) -> Response:
        state.sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse(url, status_code=303)
        if session_id is None:
            response.delete_cookie(COOKIE, httponly=True, samesite="lax")
        else:
            response.set_cookie(COOKIE, session_id, httponly=True, samesite="lax")
        return response

    @app.get("/")
    def home() -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.get("/login")
    def login_form(request: Request) -> Response:
        session = current(request)
        if session is not None and session.verified:
            return RedirectResponse("/circuits", status_code=303)
        return page(request, "login.html", email="")

    @app.post("/login")
    def login(
        request: Request,
        email: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
    ) -> Response:
        account = state.accounts.get(email.strip().lower())
        if not password_matches(account, password) or account is None:  # None: for mypy
            return page(request, "login.html", 401, email=email, error="Invalid email or password")
        pending = state.sessions.start(account.email, verified=False)
        return redirect_with_session("/otp", request, pending)

    @app.get("/otp")
    def otp_form(request: Request) -> Response:
        session = current(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        if session.verified:
            return RedirectResponse("/circuits", status_code=303)
        return page(request, "otp.html", digits=state.accounts[session.email.lower()].digits)

    @app.post("/otp")
    def verify(request: Request, code: Annotated[str, Form()] = "") -> Response:
        session = current(request)
        if session is None or session.verified:
            return RedirectResponse("/login", status_code=303)
        account = state.accounts[session.email.lower()]
        check = state.codes.check(account, code, state.clock())
        if check is not CodeCheck.ACCEPTED:
            error = (
                "This code has already been used"
                if check is CodeCheck.REUSED
                else "Invalid verification code"
            )
            return page(request, "otp.html", 401, digits=account.digits, error=error)
        verified = state.sessions.start(account.email, verified=True)
        return redirect_with_session("/circuits", request, verified)

    @app.post("/logout")
    def logout(request: Request) -> Response:
        return redirect_with_session("/login", request, None)

    @app.get("/circuits")
    def circuits(request: Request, _user: LoggedIn, q: str = "") -> Response:
        query = q.strip()
        circuit = state.circuits.get(query) if query else None
        return page(request, "circuits.html", query=query, circuit=circuit)

    @app.post("/circuits/{number}/validate")
    def validate(request: Request, _user: LoggedIn, number: str) -> Response:
        done = state.circuits.validate(number)
        if done is None:
            return _not_found(page, request, number)
        outcome, circuit = done
        if outcome is Outcome.REFUSED:
            error = f"Circuit {circuit.number} is {circuit.status} and cannot be validated"
            return page(request, "error.html", 409, title="Not possible", error=error)
        message = (
            f"Circuit {circuit.number} validated"
            if outcome is Outcome.DONE
            else f"Circuit {circuit.number} was already validated"
        )
        return page(request, "result.html", circuit=circuit, message=message)

    @app.get("/circuits/{number}/cancel")
    def cancel_form(request: Request, _user: LoggedIn, number: str) -> Response:
        circuit = state.circuits.get(number)
        if circuit is None:
            return _not_found(page, request, number)
        return page(request, "cancel.html", circuit=circuit, reason="")

    @app.post("/circuits/{number}/cancel")
    def cancel(
        request: Request, _user: LoggedIn, number: str, reason: Annotated[str, Form()] = ""
    ) -> Response:
        circuit = state.circuits.get(number)
        if circuit is None:
            return _not_found(page, request, number)
        reason = reason.strip()
        error = _reason_problem(reason)
        if error is not None:
            return page(request, "cancel.html", 422, circuit=circuit, reason=reason, error=error)
        done = state.circuits.cancel(number, reason)
        if done is None:
            return _not_found(page, request, number)
        outcome, circuit = done
        message = (
            f"Circuit {circuit.number} cancelled"
            if outcome is Outcome.DONE
            else f"Circuit {circuit.number} was already cancelled"
        )
        return page(request, "result.html", circuit=circuit, message=message)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/state")
    def api_state() -> JSONResponse:
        return JSONResponse(state.as_json())

    return app


def _reason_problem(reason: str) -> str | None:
    if not reason:
        return "A reason is required to cancel a circuit"
    if len(reason) > MAX_REASON:
        return f"The reason must be at most {MAX_REASON} characters"
    return None


def _not_found(page: Callable[..., Response], request: Request, number: str) -> Response:
    error = f"No circuit {number} on this portal"
    return page(request, "error.html", 404, title="Circuit not found", error=error)
