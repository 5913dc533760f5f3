"""``botyard events``: follow job status changes live from Redis/Valkey pub/sub."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from botyard.masking import mask_url
from botyard.settings import RedisSettings

console = Console(stderr=True)
out = Console(highlight=False)

_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "yellow",
    "needs_review": "magenta",
    "running": "cyan",
    "queued": "blue",
}


def events(
    queue: str | None = typer.Option(None, "--queue", "-q", help="Only this queue's jobs."),
    job: int | None = typer.Option(None, "--job", "-j", help="Only this job."),
    as_json: bool = typer.Option(False, "--json", help="One JSON event per line."),
    idle_exit: float | None = typer.Option(
        None, "--exit-after", min=0.1, help="Stop after this many seconds without an event."
    ),
) -> None:
    """Print job status events as they happen (needs REDIS_URL or VALKEY_HOST)."""
    redis_settings = RedisSettings()
    url = redis_settings.url
    if url is None:
        console.print(
            "[red]Redis is not configured: set REDIS_URL (or VALKEY_HOST, VALKEY_PORT,"
            " VALKEY_PASSWORD) to follow events.[/red]"
        )
        raise typer.Exit(2)
    try:
        from botyard.bus.redis_events import connect, follow
    except ImportError as exc:  # redis-py is an extra
        console.print("[red]redis-py is missing: pip install 'botyard[redis]'[/red]")
        raise typer.Exit(2) from exc
    client = connect(url, timeout=5.0)
    try:
        client.ping()
    except Exception as exc:
        console.print(f"[red]Redis at {mask_url(url)} does not answer: {exc}[/red]")
        raise typer.Exit(2) from exc
    if not as_json:
        console.print(f"following job events on {mask_url(url)} (Ctrl-C to stop)")
    stream = follow(
        client, prefix=redis_settings.prefix, queue_name=queue, job_id=job, timeout=idle_exit
    )
    try:
        for event in stream:
            if as_json:
                sys.stdout.write(json.dumps(event) + "\n")
                sys.stdout.flush()
            else:
                out.print(_line(event))
    except KeyboardInterrupt:
        pass
    finally:
        client.close()


def _line(event: dict[str, Any]) -> str:
    status = str(event.get("status", "?"))
    colour = _COLOURS.get(status, "white")
    previous = event.get("previous") or "-"
    worker = event.get("worker_id") or "-"
    return (
        f"{event.get('at', '')}  job {event.get('job_id')}#{event.get('attempt')}  "
        f"{previous} -> [{colour}]{status}[/{colour}]  {event.get('automation')}  "
        f"queue={event.get('queue')}  worker={worker}"
    )


def register(app: typer.Typer) -> None:
    app.command()(events)
