"""Errors become HTTP answers here and nowhere else: ``{"detail", "error_type", "timestamp"}``."""

from __future__ import annotations

import logging
import os
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botyard.errors import (
    AuthError,
    BotyardError,
    BrowserError,
    BrowserUnavailable,
    InvalidCredentials,
    InvalidInput,
    InvalidToken,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    PayloadInvalid,
    PermissionDenied,
    PrivacyRequestClosed,
    PrivacyRequestNotFound,
    RateLimitExceeded,
    StoreUnavailable,
    SubjectHasActiveJobs,
    UnknownAutomation,
)
from botyard.log_throttle import LogThrottle, fingerprint
from botyard.totp import TotpNotConfigured, TotpUnavailable

log = logging.getLogger("botyard.api")
STORE_RETRY_AFTER = 5  # seconds: a restart or a fail-over of the database takes about that
_store_down = LogThrottle(log)

_STATUS: list[tuple[type[BotyardError], int]] = [
    (JobNotFound, 404),
    (InvalidTransition, 409),
    (TotpNotConfigured, 404),
    (TotpUnavailable, 503),
    (LeaseLost, 409),
    (PrivacyRequestNotFound, 404),
    (PrivacyRequestClosed, 409),
    (SubjectHasActiveJobs, 409),
    (InvalidCredentials, 401),
    (InvalidToken, 401),
    (PermissionDenied, 403),
    (AuthError, 401),
    (RateLimitExceeded, 429),
    (BrowserUnavailable, 503),
    (BrowserError, 409),
    (StoreUnavailable, 503),
]


def error_body(detail: Any, error_type: str) -> dict[str, Any]:
    return {
        "detail": detail,
        "error_type": error_type,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


def _respond(
    status: int, detail: Any, error_type: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(detail, error_type), status_code=status, headers=headers)


def status_for(exc: BotyardError) -> int:
    """The HTTP status of an error (the dashboard shows the same as the API answers)."""
    if isinstance(exc, PayloadInvalid | UnknownAutomation | InvalidInput):
        return 422
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)


async def _botyard_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BotyardError)
    return botyard_response(exc)


def botyard_response(exc: BotyardError) -> JSONResponse:
    """The answer to ``exc``; for the handlers and for middleware outside them."""
    if isinstance(exc, InvalidInput):
        return _respond(422, exc.errors, "ValidationError")
    if isinstance(exc, PayloadInvalid):
        detail = [{**e, "loc": ["body", "payload", *e["loc"]]} for e in exc.errors]
        return _respond(422, detail, "ValidationError")
    if isinstance(exc, UnknownAutomation):
        detail = [{"loc": ["body", "automation"], "msg": str(exc), "type": "unknown_automation"}]
        return _respond(422, detail, "ValidationError")
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, RateLimitExceeded):
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, StoreUnavailable):
        _store_down(f"the store is unavailable: {exc.__cause__ or exc}", key="store")
        headers = {"Retry-After": str(STORE_RETRY_AFTER)}
    return _respond(status, str(exc), type(exc).__name__, headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return http_response(exc)


def http_response(exc: StarletteHTTPException) -> JSONResponse:
    names = {
        401: "AuthenticationError",
        403: "PermissionDenied",
        404: "NotFound",
        405: "MethodNotAllowed",
        413: "PayloadTooLarge",
        429: "RateLimited",
    }
    return _respond(
        exc.status_code,
        exc.detail,
        names.get(exc.status_code, "HTTPError"),
        dict(exc.headers or {}),
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
    return _respond(422, detail, "ValidationError")


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log_unhandled(exc)
    return _respond(500, "Internal server error", "InternalError")


# When every request fails the same way (a full disk, say) this keeps it to a traceback and a
# count a minute for each kind of failure, where it was two tracebacks a request.
_unhandled = LogThrottle(log)
_PACKAGE = str(Path(__file__).parents[1]) + os.sep  # src/botyard/


def log_unhandled(exc: BaseException) -> None:
    """Log an error no handler answered: with its traceback, once a minute per kind and place."""
    frames = traceback.extract_tb(exc.__traceback__)
    # Where in Botyard it went wrong (a driver's frames are deeper), past this module's own.
    ours = [f for f in frames if f.filename.startswith(_PACKAGE) and f.filename != __file__]
    where = (ours or frames)[-1] if frames else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    _unhandled(
        f"unhandled error {type(exc).__name__}{at}, answered 500",
        level=logging.ERROR,
        key=fingerprint(exc),
        exc_info=exc,
    )


class UnhandledErrors:
    """Answers 500 for an exception no handler took, without raising it again.

    Starlette's ``Exception`` handler answers and then re-raises, so that the server logs the
    traceback a second time, for every request; this logs it through ``log_unhandled`` only.
    Installed innermost, so that outer middleware (CORS) still sees the answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:  # too late for a 500: the server closes the connection and logs it
                raise
            log_unhandled(exc)
            await _respond(500, "Internal server error", "InternalError")(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(BotyardError, _botyard_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)  # what escapes the middleware below
    app.add_middleware(UnhandledErrors)  # first, so innermost
