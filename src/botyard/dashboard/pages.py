"""The dashboard's pages under ``/ui``: the same store, service and roles as the API.

Pages are rendered on the server (Jinja2). A little JavaScript refreshes the live parts (the
jobs table, a running job) from ``?partial=1`` and opens screenshots in a viewer; without it,
every page still works. A role sees the buttons its permissions allow, and every action checks
the permission again, as the API does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from botyard.automations.registry import Automation
from botyard.dashboard import charts
from botyard.dashboard.session import (
    LoginRequired,
    UiUser,
    check_csrf,
    close_session,
    current_user,
    open_session,
    safe_next,
)
from botyard.errors import (
    BotyardError,
    InvalidCredentials,
    InvalidInput,
    PayloadInvalid,
    PermissionDenied,
)
from botyard.jobs import CANCELLABLE, FINAL_STATUSES, RETRYABLE_BY_PERSON, JobStatus
from botyard.orchestrator.deps import RuntimeDep, ServiceDep, client_of
from botyard.orchestrator.errors import status_for
from botyard.orchestrator.health import rollup, stale_after
from botyard.orchestrator.input_rules import load_json
from botyard.orchestrator.logins import log_in
from botyard.orchestrator.routers.evidence import stored_evidence
from botyard.orchestrator.routers.status import current_snapshot
from botyard.orchestrator.schemas import Id
from botyard.orchestrator.service import Submission
from botyard.orchestrator.users import UserAdmin
from botyard.store.accounts import UnknownUser
from botyard.store.records import JobFilter
from botyard.store.workers import Workers
from botyard.wiring import Runtime

PAGE_SIZE = 50
templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
templates.env.filters["pretty"] = lambda value: json.dumps(value, indent=2, default=str)


class UiRoute(APIRoute):
    """Errors of a dashboard page become an HTML page (or the login page), never JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                if request.method == "POST" and _cross_site(request):
                    raise PermissionDenied("a form posted from another site")
                response = await handler(request)
            except LoginRequired as exc:
                response = RedirectResponse(f"/ui/login?next={exc.next_url}", status_code=303)
            except BotyardError as exc:
                response = templates.TemplateResponse(
                    request,
                    "error.html",
                    {"user": _maybe_user(request), "message": str(exc)},
                    status_code=status_for(exc),
                )
            for name, value in _HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route


def _cross_site(request: Request) -> bool:
    """A browser's own word that the form came from another site (login CSRF included: the
    login form carries no token, since there is no session yet to derive one from)."""
    return request.headers.get("sec-fetch-site", "").lower() == "cross-site"


# Only the dashboard's own files, no inline script or style, never inside another site's frame.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)
User = Annotated[UiUser, Depends(current_user)]


def _maybe_user(request: Request) -> UiUser | None:
    try:
        return current_user(request)
    except BotyardError:
        return None


def _page(
    request: Request, name: str, user: UiUser | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"user": user, **context}, status_code=status_code
    )


# -- login ------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _page(request, "login.html", None, next=safe_next(next), username="", error=None)


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=150)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    try:
        principal = log_in(request, username, password, via="ui")
    except InvalidCredentials:
        return _page(
            request,
            "login.html",
            None,
            status_code=401,
            next=safe_next(next),
            username=username,
            error="Incorrect username or password.",
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    open_session(request, response, principal)
    return response


@router.post("/logout")
def logout(
    request: Request, user: User, csrf: Annotated[str, Form()], runtime: RuntimeDep
) -> Response:
    """End the session, and with it every token of the user (other browsers, API bearers)."""
    check_csrf(request, user, csrf)
    store = runtime.store
    with contextlib.suppress(UnknownUser):  # deleted meanwhile: its tokens ended already
        UserAdmin(store.users, store.audit, request.app.state.authenticator).log_out(
            user.name, actor=user.name, client=client_of(request)
        )
    response = RedirectResponse("/ui/login", status_code=303)
    close_session(response)
    return response


# -- overview ---------------------------------------------------------------------


@router.get("/")
def overview(request: Request, user: User, runtime: RuntimeDep) -> HTMLResponse:
    user.require("metrics:read")
    snap = current_snapshot(request, runtime)
    level, reasons = rollup(snap)
    history = list(reversed(runtime.store.metrics.history(limit=288)))
    return _page(
        request,
        "overview.html",
        user,
        level=level.value,
        reasons=reasons,
        snap=snap,
        counts={s.value: snap.counts.get(s.value, 0) for s in _SHOWN},
        throughput=charts.line_chart(
            charts.throughput(history),
            chart_id="throughput",
            title="Throughput",
            unit="jobs/min",
        ),
        failures=charts.line_chart(
            charts.failure_rate(history),
            chart_id="failures",
            title="Failure rate",
            unit="%",
            fixed_max=100,
        ),
        workers=runtime.store.workers.all(),
    )


_SHOWN = (
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.SUCCEEDED,
    JobStatus.FAILED,
    JobStatus.NEEDS_REVIEW,
    JobStatus.CANCELLED,
)


# -- jobs ---------------------------------------------------------------------------


@router.get("/jobs")
def jobs_page(
    request: Request,
    user: User,
    runtime: RuntimeDep,
    status: str | None = None,
    automation: str | None = None,
    queue: str | None = None,
    q: str | None = None,
    page: int = 1,
    partial: bool = False,
) -> HTMLResponse:
    user.require("job:read")
    chosen = JobStatus(status) if status in {s.value for s in JobStatus} else None
    page = max(1, min(page, 10_000))
    filters = JobFilter(
        status=chosen,
        automation=automation or None,
        queue=queue or None,
        text=(q or "").strip()[:200] or None,
    )
    items, total = runtime.store.list_jobs(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    query = {"status": status or "", "automation": automation or "", "queue": queue or ""}
    context: dict[str, Any] = {
        "jobs": items,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "filters": {**query, "q": q or ""},
        "statuses": [s.value for s in JobStatus],
        "automations": runtime.registry.names(),
    }
    name = "_jobs_table.html" if partial else "jobs.html"
    return _page(request, name, user, **context)


@router.get("/jobs/new")
def new_job_page(request: Request, user: User, runtime: RuntimeDep) -> HTMLResponse:
    user.require("job:create")
    return _new_job(request, runtime, user)


def _new_job(
    request: Request,
    runtime: Runtime,
    user: UiUser,
    *,
    error: str | None = None,
    automation: str = "",
    payload: str = "{}",
    status_code: int = 200,
) -> HTMLResponse:
    registry = runtime.registry
    return _page(
        request,
        "new_job.html",
        user,
        status_code=status_code,
        automations=[_describe(registry.get(name)) for name in registry.names()],
        error=error,
        chosen=automation,
        payload=payload,
    )


def _describe(item: Automation) -> dict[str, Any]:
    """What the submit form shows of an automation: its summary and its payload's fields."""
    doc = (item.func.__doc__ if item.func is not None else None) or ""
    fields = []
    if item.payload_model is not None:
        schema = item.payload_model.model_json_schema()
        required = set(schema.get("required", []))
        for name, spec in schema.get("properties", {}).items():
            kind = spec.get("type") or "/".join(
                str(option.get("type", "?")) for option in spec.get("anyOf", [])
            )
            fields.append({"name": name, "type": kind or "any", "required": name in required})
    return {"name": item.name, "summary": doc.strip().split("\n")[0], "fields": fields}


@router.post("/jobs")
def submit_job(
    request: Request,
    user: User,
    runtime: RuntimeDep,
    service: ServiceDep,
    csrf: Annotated[str, Form()],
    automation: Annotated[str, Form(max_length=200)],
    payload: Annotated[str, Form(max_length=100_000)] = "{}",
) -> Response:
    check_csrf(request, user, csrf)
    user.require("job:create")

    def refused(error: str, status_code: int = 422) -> HTMLResponse:
        """The form again, as it was sent, with what is wrong; nothing was stored."""
        return _new_job(
            request,
            runtime,
            user,
            error=error,
            automation=automation,
            payload=payload,
            status_code=status_code,
        )

    try:
        data = load_json(payload or "{}", ("payload",))
    except InvalidInput as exc:  # the API's rules for JSON (depth, NUL, lone surrogates)
        return refused(f"The payload cannot be taken: {exc.errors[0]['msg']}.")
    except ValueError as exc:
        return refused(f"The payload is not JSON: {exc}")
    if not isinstance(data, dict):
        return refused("The payload must be a JSON object, e.g. {}.")
    try:
        job, _ = service.submit(
            Submission(automation, data), actor=user.name, client=client_of(request)
        )
    except PayloadInvalid as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors
        )
        return refused(f"The payload does not fit {automation}: {problems}")
    except BotyardError as exc:
        return refused(str(exc), status_for(exc))
    return RedirectResponse(f"/ui/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(
    request: Request, user: User, runtime: RuntimeDep, job_id: Id, partial: bool = False
) -> HTMLResponse:
    user.require("job:read")
    return _job(request, runtime, user, job_id, partial=partial)


def _job(
    request: Request,
    runtime: Runtime,
    user: UiUser,
    job_id: int,
    *,
    partial: bool = False,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    store = runtime.store
    job = store.get_job(job_id)
    evidence = store.evidence(job_id) if user.can("evidence:read") else []
    logs = store.logs(job_id, limit=2000)
    final = job.status in FINAL_STATUSES
    return _page(
        request,
        "_job_live.html" if partial else "job.html",
        user,
        status_code=status_code,
        job=job,
        logs=logs,
        screenshots=[e for e in evidence if e.content_type.startswith("image/")],
        files=[e for e in evidence if not e.content_type.startswith("image/")],
        final=final,
        error=error,
        notice=notice,
        actions={
            "cancel": user.can("job:cancel") and job.status in CANCELLABLE,
            "retry": user.can("job:retry") and job.status in RETRYABLE_BY_PERSON,
            "resolve": user.can("job:resolve") and job.status is JobStatus.NEEDS_REVIEW,
        },
    )


def _act(
    request: Request,
    runtime: Runtime,
    user: UiUser,
    job_id: int,
    do: Callable[[], object],
    done: str,
) -> Response:
    try:
        do()
    except BotyardError as exc:
        return _job(request, runtime, user, job_id, error=str(exc), status_code=status_for(exc))
    return RedirectResponse(f"/ui/jobs/{job_id}?done={done}", status_code=303)


@router.post("/jobs/{job_id}/resolve")
def resolve_job(
    request: Request,
    user: User,
    runtime: RuntimeDep,
    service: ServiceDep,
    job_id: Id,
    csrf: Annotated[str, Form()],
    outcome: Annotated[str, Form(pattern="^(succeeded|failed)$")],
    note: Annotated[str, Form(min_length=1, max_length=2000)],
) -> Response:
    check_csrf(request, user, csrf)
    user.require("job:resolve")
    return _act(
        request,
        runtime,
        user,
        job_id,
        lambda: service.resolve(
            job_id,
            succeeded=outcome == "succeeded",
            note=note,
            actor=user.name,
            client=client_of(request),
        ),
        "resolved",
    )


# After /resolve: a path this route also matches.
@router.post("/jobs/{job_id}/{action}")
def cancel_or_retry_job(
    request: Request,
    user: User,
    runtime: RuntimeDep,
    service: ServiceDep,
    job_id: Id,
    action: Literal["cancel", "retry"],
    csrf: Annotated[str, Form()],
) -> Response:
    check_csrf(request, user, csrf)
    user.require(f"job:{action}")
    do = service.cancel if action == "cancel" else service.retry
    return _act(
        request,
        runtime,
        user,
        job_id,
        lambda: do(job_id, actor=user.name, client=client_of(request)),
        "cancelled" if action == "cancel" else "retried",
    )


@router.get("/evidence/{evidence_id}")
def evidence_file(request: Request, user: User, runtime: RuntimeDep, evidence_id: Id) -> Response:
    """A job's evidence file for the logged-in user (the API's ``/evidence`` wants a bearer)."""
    user.require("evidence:read")
    found = stored_evidence(runtime, evidence_id)
    if found is None:
        return _page(request, "error.html", user, status_code=404, message="No such file.")
    item, path = found
    return FileResponse(
        path,
        media_type=item.content_type,
        filename=item.name,
        content_disposition_type="inline" if item.content_type == "image/png" else "attachment",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# -- the rest ------------------------------------------------------------------------


@router.get("/workers")
def workers_page(request: Request, user: User, runtime: RuntimeDep) -> HTMLResponse:
    user.require("worker:read")
    workers = runtime.store.workers.all()
    stale = stale_after(runtime.settings)
    now = datetime.now(UTC)
    return _page(
        request,
        "workers.html",
        user,
        workers=workers,
        online={w.id for w in workers if Workers.is_online(w, now, stale)},
        stale=stale,
    )


@router.get("/browsers")
def browsers_page(request: Request, user: User, runtime: RuntimeDep) -> HTMLResponse:
    user.require("browser:manage")  # as GET /browsers
    store = runtime.store
    return _page(
        request,
        "browsers.html",
        user,
        sessions=store.browsers.recent(limit=100),
        figures=store.browsers.figures(),
        provider=runtime.settings.browser.provider,
    )


@router.get("/totp")
def totp_page(request: Request, user: User) -> HTMLResponse:
    user.require("metrics:read")
    return _page(request, "totp.html", user, providers=request.app.state.totp.figures())


@router.get("/scheduler")
def scheduler_page(request: Request, user: User, runtime: RuntimeDep) -> HTMLResponse:
    user.require("metrics:read")
    maintenance = request.app.state.maintenance
    return _page(
        request,
        "scheduler.html",
        user,
        scheduler=maintenance.status(),
        runs=runtime.store.maintenance.runs(limit=50),
    )


@router.get("/audit")
def audit_page(
    request: Request,
    user: User,
    runtime: RuntimeDep,
    action: str | None = None,
    actor: str | None = None,
    page: int = 1,
) -> HTMLResponse:
    user.require("audit:read")
    audit = runtime.store.audit
    page = max(1, min(page, 10_000))
    action, actor = action or None, actor or None
    total = audit.count(action=action, actor=actor)
    events = audit.recent(
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, action=action, actor=actor
    )
    return _page(
        request,
        "audit.html",
        user,
        events=events,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        filters={"action": action or "", "actor": actor or ""},
    )
