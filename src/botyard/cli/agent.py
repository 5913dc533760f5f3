"""``botyard agent``: a worker the orchestrator pushes jobs to over HTTP (port 8621)."""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

import typer
import uvicorn
from rich.console import Console

from botyard.cli.options import Automations, DatabaseUrl, DataDir, modules_or_default, settings_for
from botyard.errors import BotyardError

console = Console(stderr=True)


def agent(
    automations: list[str] | None = Automations,
    host: str = typer.Option(None, "--host", help="Address to listen on (BOTYARD_AGENT_HOST)."),
    port: int = typer.Option(None, "--port", help="Port (BOTYARD_AGENT_PORT, default 8621)."),
    url: str = typer.Option(
        None, "--url", help="URL the orchestrator reaches this agent at (BOTYARD_AGENT_URL)."
    ),
    concurrency: int = typer.Option(None, "--concurrency", "-c", min=1, help="Jobs at once."),
    worker_id: str = typer.Option(
        None, "--worker-id", envvar="BOTYARD_WORKER_ID", help="Stable id (default host-pid)."
    ),
    queues: str = typer.Option(None, "--queues", "-q", help="Comma-separated queues it serves."),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Run an agent: the HTTP worker service (/health, /status, /status/{id}, /execute).

    The orchestrator claims jobs in its name and posts them to /execute; the agent runs them
    like a pull worker (child processes, leases, evidence) and answers 429 when full.
    """
    from botyard.own_secrets import hide_own_environment
    from botyard.wiring import open_runtime
    from botyard.worker import WorkerConfig
    from botyard.worker.agent import AgentWorker
    from botyard.worker.agent_app import check_agent_settings, create_agent_app

    hide_own_environment()  # its jobs run under its uid: not to read its token from /proc
    settings = settings_for(data_dir, database_url)
    ags = settings.agent
    development = settings.auth.development_mode
    modules = modules_or_default(automations, settings)
    try:
        check_agent_settings(ags, development=development)
        runtime = open_runtime(settings, modules=modules, pre_ping=False)
    except BotyardError as exc:
        console.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    listen_host, listen_port = host or ags.host, port or ags.port
    advertised = url or ags.url or f"http://{socket.gethostname()}:{listen_port}"
    ws = settings.worker
    config = WorkerConfig(
        automations=runtime.registry.names(),
        modules=modules,
        worker_id=worker_id or "",
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else ws.queues,
        concurrency=concurrency or ws.concurrency,
        lease_ttl=settings.lease.lease_ttl,
        recover_interval=settings.lease.recover_interval,
        poll_interval=ws.poll_interval,
        heartbeat_interval=ws.heartbeat_interval,
        shutdown_grace=ws.shutdown_grace,
        data_dir=settings.store.data_dir,
        worker_token=settings.agent.token,  # its jobs get per-attempt credentials from it
        endpoint=advertised.rstrip("/"),
    )
    worker = AgentWorker(runtime.store, runtime.bus, config, events=runtime.events)
    app = create_agent_app(worker, ags, development=development)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    # uvicorn re-raises the signal that stopped it once it has shut down. With the default
    # handler that would kill the process before the worker hands its jobs back, so this one
    # counts instead: the first signal ends the HTTP service and the worker stops gracefully
    # below; another one stops waiting for the running jobs.
    signals = 0

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            worker.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        # No proxy headers: the IP allowlist must see the socket's peer, not a header.
        uvicorn.run(
            app,
            host=listen_host,
            port=listen_port,
            log_level="warning",
            proxy_headers=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        worker.stop()  # uvicorn returns on SIGTERM / Ctrl-C: finish or hand back the jobs
        thread.join()
        runtime.close()


def register(app: typer.Typer) -> None:
    app.command()(agent)
