"""The standby task server: ``POST /task`` and ``GET /health``, then exit 0 or 1.

The process takes one task, answers 202 at once, runs it, and exits with 0 when the script
succeeded and 1 otherwise, so that a container restart policy gives the next task a clean
process. ``keep_running`` serves task after task instead.
"""

from __future__ import annotations

import logging
import signal
from datetime import datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.exceptions import HTTPException

from botyard.bearer import bearer_matches
from botyard.errors import InvalidInput, StandbyError, TaskBusy, TaskRejected
from botyard.orchestrator.errors import error_body
from botyard.orchestrator.input_rules import load_json
from botyard.orchestrator.limits import BodySizeLimit
from botyard.settings import StandbySettings
from botyard.standby.record import OrchestratorRecorder
from botyard.standby.task import TaskOutcome, TaskRunner, parse_task

log = logging.getLogger("botyard.standby")

# Room for the task's envelope (script URL, name, id) around a payload of the largest size.
ENVELOPE_BYTES = 64 * 1024


def create_standby_app(settings: StandbySettings, runner: TaskRunner) -> FastAPI:
    app = FastAPI(title="Botyard standby worker", docs_url=None, redoc_url=None)
    token = settings.auth_token.get_secret_value() if settings.auth_token else None
    # Refused at the Content-Length, and a chunked body is cut off as it streams in: the
    # server never holds more than this in memory, whoever sends it (no token needed for that).
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_payload_bytes + ENVELOPE_BYTES)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        kind = "PayloadTooLarge" if exc.status_code == 413 else "HTTPError"
        return JSONResponse(
            error_body(exc.detail, kind), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(StandbyError)
    async def _refused(_request: Request, exc: Exception) -> JSONResponse:
        status = 409 if isinstance(exc, TaskBusy) else 400 if isinstance(exc, TaskRejected) else 500
        return JSONResponse(error_body(str(exc), type(exc).__name__), status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("standby server error", exc_info=exc)
        return JSONResponse(error_body("Internal server error", "InternalError"), status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        last = runner.last
        return {
            "status": "healthy",
            "mode": "standby",
            "task_executing": runner.executing,
            "timestamp": datetime.now().isoformat(),
            "last_task": _outcome(last) if last else None,
        }

    @app.post("/task", status_code=202)
    async def task(request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization", "")
        if token is not None and not bearer_matches(authorization, token):
            return JSONResponse(
                error_body("Invalid or missing bearer token", "AuthenticationError"),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        raw = await request.body()  # at most the limit above: BodySizeLimit stops the rest
        try:  # the API's rules: a deep document would end json.loads in a RecursionError
            body = load_json(raw, ("body",))
        except InvalidInput as exc:
            raise TaskRejected(f"the body cannot be taken: {exc.errors[0]['msg']}") from None
        except ValueError:
            raise TaskRejected("the body is not JSON") from None
        if runner.executing:  # before the URL is resolved: a busy server answers at once
            raise TaskBusy("a task is already executing")
        started = runner.start(parse_task(body, settings))
        return JSONResponse(
            {
                "status": "accepted",
                "task_id": started.task.id,
                "script_name": started.task.script_name,
                "message": "Task accepted and execution started",
            },
            status_code=202,
        )

    return app


def _outcome(outcome: TaskOutcome) -> dict[str, Any]:
    return {
        "task_id": outcome.task.id,
        "script_name": outcome.task.script_name,
        "status": "running"
        if outcome.succeeded is None
        else "succeeded"
        if outcome.succeeded
        else "failed",
        "exit_code": outcome.exit_code,
        "error": outcome.error,
        "started_at": outcome.started_at.isoformat(),
        "finished_at": outcome.finished_at.isoformat() if outcome.finished_at else None,
    }


def serve(
    settings: StandbySettings,
    *,
    keep_running: bool = False,
    worker_token: SecretStr | None = None,
) -> int:
    """Serve until a task ends (or forever with ``keep_running``); the exit code to use."""
    ended: list[TaskOutcome] = []
    server: uvicorn.Server | None = None

    def on_end(outcome: TaskOutcome) -> None:
        ended.append(outcome)
        if not keep_running and server is not None:
            server.should_exit = True

    recorder = OrchestratorRecorder(settings, worker_token) if settings.orchestrator_url else None
    runner = TaskRunner(settings, on_end, recorder)
    app = create_standby_app(settings, runner)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    log.info(
        "standby: waiting for a task on %s:%d%s",
        settings.host,
        settings.port,
        "" if settings.auth_token else " (no TASK_AUTH_TOKEN: anyone who reaches it may post)",
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; with the default
    # handler that would kill this process before the running script is dealt with.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _sig, _frame: None)
    server.run()
    interrupted = runner.interrupt()  # stopped by a signal while a task ran: kill it, record it
    if recorder is not None:
        recorder.close()
    if interrupted is not None:
        return 1
    if keep_running or not ended:
        return 0
    return 0 if ended[-1].succeeded else 1
