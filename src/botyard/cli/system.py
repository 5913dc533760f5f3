"""Commands that run Botyard: ``up``, ``server``, ``worker`` and ``db``."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console

from botyard.cli.options import (
    Automations,
    DatabaseUrl,
    DataDir,
    Scripts,
    modules_or_default,
    settings_for,
    settings_problem,
)
from botyard.cli.supervisor import Supervisor, interrupts_as_exit, wait_healthy
from botyard.errors import BotyardError
from botyard.settings import Settings
from botyard.store.engine import build_engine, current_revision, upgrade

console = Console(stderr=True)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)


def refuse_unreachable(settings: Settings) -> None:
    """Exit 2 with a line saying why when the store cannot be reached: starting would fail
    with a traceback (Redis may be away: Botyard runs without it, degraded)."""
    from botyard.orchestrator import preflight

    for problem in (unreachable := preflight.connection_problems(settings, redis=False)):
        console.print(problem, style="red", markup=False, highlight=False, soft_wrap=True)
    if unreachable:
        raise typer.Exit(2)


def server(
    host: str = typer.Option(None, "--host", envvar="BOTYARD_HOST", help="Address to listen on."),
    port: int = typer.Option(None, "--port", envvar="BOTYARD_PORT", help="Port (default 8620)."),
    automations: list[str] | None = Automations,
    script: list[str] | None = Scripts,
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Run the orchestrator API (port 8620) with its maintenance scheduler.

    It serves HTTPS (TLS 1.2 or newer) when SSL_CERT_PATH and SSL_KEY_PATH are set.
    """
    from botyard.automations.registry import load_automations
    from botyard.orchestrator import tls
    from botyard.orchestrator.app import create_app

    try:
        settings = settings_for(data_dir, database_url)
        settings.server.automations = modules_or_default(automations, settings)
        settings.server.scripts = script or settings.server.scripts
        app = create_app(settings)  # refuses a configuration it must not start with
        # Loaded now to refuse a bad module or script path in a line (start-up would again).
        load_automations(settings.server.automations, settings.server.scripts)
        cert, key = settings.tls.cert_path, settings.tls.key_path
        ssl_factory = tls.uvicorn_factory(tls.server_context(cert, key)) if cert and key else None
    except (BotyardError, ValidationError) as exc:
        line = settings_problem(exc) if isinstance(exc, ValidationError) else str(exc)
        console.print(line, style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    refuse_unreachable(settings)
    uvicorn.run(
        app,
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
        ssl_context_factory=ssl_factory,
        # X-Forwarded-For only from the proxies named (uvicorn's default trusts loopback, so
        # any local client could pick the address its login limit counts against).
        proxy_headers=bool(settings.server.forwarded_allow_ips),
        forwarded_allow_ips=settings.server.forwarded_allow_ips or None,
    )


def worker(
    automations: list[str] | None = Automations,
    script: list[str] | None = Scripts,
    concurrency: int = typer.Option(None, "--concurrency", "-c", min=1, help="Jobs at once."),
    worker_id: str = typer.Option(
        None, "--worker-id", envvar="BOTYARD_WORKER_ID", help="Stable id (default host-pid)."
    ),
    queues: str = typer.Option(
        None, "--queues", "-q", help="Comma-separated queues to serve (default: default)."
    ),
    max_retries: int = typer.Option(
        None, "--max-retries", min=0, help="Cap on retries after the first attempt."
    ),
    health_check_interval: float = typer.Option(
        None, "--health-check-interval", min=0.5, help="Seconds between heartbeats."
    ),
    lease_ttl: float = typer.Option(None, "--lease-ttl", min=1.0, help="Lease length, seconds."),
    redis_url: str = typer.Option(
        None,
        "--redis-url",
        help="Redis/Valkey: jobs arrive through its lists; events, heartbeat keys.",
    ),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Run a pull worker: claim jobs from the store and run them in child processes."""
    from botyard.own_secrets import hide_own_environment
    from botyard.wiring import open_runtime
    from botyard.worker import PullWorker, WorkerConfig

    hide_own_environment()  # its jobs run under its uid: not to read its token from /proc

    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    settings = settings_for(data_dir, database_url)
    modules = modules_or_default(automations, settings)
    scripts = script or settings.server.scripts
    try:
        runtime = open_runtime(settings, modules=modules, scripts=scripts, pre_ping=False)
    except BotyardError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    ws, lease = settings.worker, settings.lease
    config = WorkerConfig(
        automations=runtime.registry.names(),
        modules=modules,
        scripts=scripts,
        worker_id=worker_id or "",
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else ws.queues,
        concurrency=concurrency or ws.concurrency,
        lease_ttl=lease_ttl or lease.lease_ttl,
        recover_interval=lease.recover_interval,
        poll_interval=ws.poll_interval,
        heartbeat_interval=health_check_interval or ws.heartbeat_interval,
        shutdown_grace=ws.shutdown_grace,
        max_retries=max_retries,
        prefetch=ws.prefetch,
        data_dir=settings.store.data_dir,
        worker_token=settings.agent.token,  # its jobs get per-attempt credentials from it
    )
    try:
        PullWorker(
            runtime.store, runtime.bus, config, events=runtime.events, lists=runtime.lists
        ).run()
    finally:
        runtime.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def up(
    automations: list[str] | None = Automations,
    script: list[str] | None = Scripts,
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Local worker processes."),
    concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, help="Jobs per worker."),
    port: int = typer.Option(8620, "--port", help="Orchestrator port."),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Run everything on this machine: the orchestrator and local workers, on SQLite by default.

    Ctrl-C stops it all: workers finish or hand back their jobs first.
    """
    from botyard.own_secrets import hide_own_environment

    hide_own_environment()  # the jobs of its workers run under its uid
    settings = settings_for(data_dir, database_url)
    modules = modules_or_default(automations, settings)
    env = {**os.environ, "BOTYARD_DATA_DIR": str(settings.store.data_dir.resolve())}
    if database_url:
        env["DATABASE_URL"] = database_url
    refuse_unreachable(settings)
    upgrade(build_engine(settings.store.url))  # once, before the processes race to it
    supervisor = Supervisor(env)
    # The orchestrator validates submissions against the same automations the workers run.
    module_args = [arg for m in modules for arg in ("--automations", m)]
    module_args += [arg for s in script or settings.server.scripts for arg in ("--script", s)]
    supervisor.start("orchestrator", ["server", "--port", str(port), *module_args])
    scheme = "https" if settings.tls.enabled else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    with interrupts_as_exit():
        try:
            wait_healthy(url, supervisor)
            for i in range(workers):
                supervisor.start(
                    f"worker-{i + 1}",
                    [
                        "worker",
                        *module_args,
                        "-c",
                        str(concurrency),
                        "--worker-id",
                        f"{socket.gethostname()}-local-{i + 1}",
                    ],
                )
            console.print(
                f"[bold green]Botyard is up[/] at {url} (API docs at {url}/docs),"
                f" {workers} worker(s), data in {settings.store.data_dir}. Ctrl-C stops it."
            )
            supervisor.wait()
            console.print(f"[red]{supervisor.failed()}[/red]; stopping")
        except KeyboardInterrupt:
            console.print("stopping…")
        except RuntimeError as exc:
            console.print(f"[red]{exc}[/red]")
        finally:
            supervisor.stop()


def db_upgrade(
    revision: str = typer.Argument("head", help="Target revision."),
    data_dir: Path | None = DataDir,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Apply the schema migrations (they also run at every start)."""
    settings = settings_for(data_dir, database_url)
    engine = build_engine(settings.store.url)
    upgrade(engine, revision)
    console.print(f"schema at revision {current_revision(engine)}")
    engine.dispose()


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(server)
    app.command()(worker)
    db_app.command("upgrade")(db_upgrade)
    app.add_typer(db_app, name="db")
