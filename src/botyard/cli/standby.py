"""``botyard standby``: the one-shot standby task server."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console

from botyard.settings import AgentSettings, StandbySettings

console = Console(stderr=True)


def standby(
    host: str = typer.Option(None, "--host", help="Address to listen on (TASK_SERVER_HOST)."),
    port: int = typer.Option(None, "--port", help="Port (TASK_SERVER_PORT, default 8080)."),
    keep_running: bool = typer.Option(
        False, "--keep-running", help="Serve task after task instead of exiting after the first."
    ),
) -> None:
    """Wait for one task on POST /task, run its script, then exit 0 (success) or 1 (failure).

    The script is downloaded over https (public addresses only, unless
    STANDBY_ALLOW_PRIVATE_URLS is set) and runs with its payload in the JSON file named by
    BOTYARD_PAYLOAD_FILE, for at most WORKER_TIMEOUT seconds.
    """
    from botyard.standby import serve

    try:
        settings = StandbySettings()
        worker_token = AgentSettings().token  # BOTYARD_WORKER_TOKEN, to record tasks as jobs
    except ValidationError as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2) from exc
    if host:
        settings.host = host
    if port:
        settings.port = port
    raise typer.Exit(serve(settings, keep_running=keep_running, worker_token=worker_token))


def register(app: typer.Typer) -> None:
    app.command()(standby)
