"""Commands that talk to the orchestrator: ``login``, ``submit`` and ``jobs …``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from botyard.cli.options import DataDir, ServerUrl
from botyard.cli.session import connect, save_token
from botyard.client import ApiError, Client

console = Console()
err = Console(stderr=True)
jobs_app = typer.Typer(help="List and act on jobs.", no_args_is_help=True)

STATUS_STYLE = {
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "dim",
    "needs_review": "magenta",
}


def _client(url: str, data_dir: Path | None) -> Client:
    try:
        return connect(url, data_dir)
    except ApiError as exc:
        err.print(f"[red]cannot log in to {url}: {exc.detail}[/red]")
        raise typer.Exit(1) from exc


def _fail(exc: ApiError) -> typer.Exit:
    detail = exc.detail
    if isinstance(detail, list):
        detail = "; ".join(
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail
        )
    err.print(f"[red]error {exc.status}: {detail}[/red]")
    return typer.Exit(1)


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def login(
    username: str = typer.Option(..., "--username", "-u", prompt=True),
    password: str = typer.Option(..., "--password", "-p", prompt=True, hide_input=True),
    url: str = ServerUrl,
) -> None:
    """Log in and keep the token for later commands."""
    with Client(url) as client:
        try:
            token = client.login(username, password)
        except ApiError as exc:
            raise _fail(exc) from exc
    console.print(f"logged in; token saved in {save_token(url, token)}")


def submit(
    automation: str = typer.Argument(..., help="The automation's name, e.g. demo.hello."),
    payload: str = typer.Option("{}", "--payload", "-p", help="The payload, a JSON object."),
    queue: str = typer.Option(None, "--queue"),
    priority: int = typer.Option(0, "--priority"),
    idempotency_key: str = typer.Option(None, "--idempotency-key"),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the job and print its result."),
    timeout: float = typer.Option(600.0, "--timeout", help="With --wait: give up after seconds."),
    url: str = ServerUrl,
    data_dir: Path | None = DataDir,
) -> None:
    """Submit a job."""
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        err.print(f"[red]--payload is not JSON: {exc}[/red]")
        raise typer.Exit(2) from exc
    client = _client(url, data_dir)
    try:
        job = client.submit(
            automation, data, queue=queue, priority=priority, idempotency_key=idempotency_key
        )
        console.print(f"job {job['id']} {_status(job['status'])}")
        if wait:
            job = _wait(client, job["id"], timeout)
            _print_outcome(job)
            if job["status"] != "succeeded":
                raise typer.Exit(1)
    except ApiError as exc:
        raise _fail(exc) from exc
    finally:
        client.close()


def _wait(client: Client, job_id: int, timeout: float) -> dict[str, Any]:
    with console.status(f"job {job_id} queued") as spinner:

        def update(job: dict[str, Any]) -> None:
            step = next(
                (s["name"] for s in reversed(job["steps"]) if s["status"] == "running"), None
            )
            where = f" — {step}" if step else ""
            spinner.update(f"job {job_id} {job['status']} (attempt {job['attempt']}){where}")

        try:
            return client.wait(job_id, timeout=timeout, on_update=update)
        except TimeoutError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc


def _print_outcome(job: dict[str, Any]) -> None:
    console.print(f"job {job['id']} {_status(job['status'])} after {job['attempt']} attempt(s)")
    if job["result"] is not None:
        console.print_json(data=job["result"])
    if job["error"]:
        console.print(f"[red]{job['error'].get('type')}: {job['error'].get('message')}[/red]")


def jobs_ls(
    status: str = typer.Option(None, "--status", "-s"),
    automation: str = typer.Option(None, "--automation"),
    queue: str = typer.Option(None, "--queue"),
    limit: int = typer.Option(20, "--limit", "-n"),
    url: str = ServerUrl,
    data_dir: Path | None = DataDir,
) -> None:
    """List recent jobs."""
    with _client(url, data_dir) as client:
        try:
            page = client.jobs(status=status, automation=automation, queue=queue, limit=limit)
        except ApiError as exc:
            raise _fail(exc) from exc
    table = Table(title=f"{len(page['items'])} of {page['total']} jobs")
    for column in ("id", "automation", "status", "attempt", "queue", "created", "worker"):
        table.add_column(column)
    for job in page["items"]:
        table.add_row(
            str(job["id"]),
            job["automation"],
            _status(job["status"]),
            f"{job['attempt']}/{job['max_attempts']}",
            job["queue"],
            job["created_at"][:19].replace("T", " "),
            job["worker_id"] or "",
        )
    console.print(table)


def jobs_show(job_id: int, url: str = ServerUrl, data_dir: Path | None = DataDir) -> None:
    """Show one job with its attempts, steps and logs."""
    with _client(url, data_dir) as client:
        try:
            job = client.get(job_id)
            lines = client.logs(job_id)
        except ApiError as exc:
            raise _fail(exc) from exc
    console.print(f"[bold]job {job['id']}[/] {job['automation']} {_status(job['status'])}")
    console.print_json(data=job["payload"])
    attempts = Table(title="attempts")
    for column in ("#", "worker", "outcome", "side effect", "error"):
        attempts.add_column(column)
    for a in job["attempts"]:
        error = (a["error"] or {}).get("message", "")
        attempts.add_row(
            str(a["number"]),
            a["worker_id"],
            a["outcome"] or "running",
            a["side_effect"] or "",
            error,
        )
    console.print(attempts)
    for s in job["steps"]:
        console.print(f"  step {s['attempt']}.{s['name']}: {s['status']}")
    for line in lines:
        console.print(f"  [dim]{line['at'][11:23]}[/] {line['level']:<7} {line['message']}")
    _print_outcome(job)


def _act(action: str, job_id: int, url: str, data_dir: Path | None) -> None:
    with _client(url, data_dir) as client:
        try:
            job = getattr(client, action)(job_id)
        except ApiError as exc:
            raise _fail(exc) from exc
    console.print(f"job {job['id']} {_status(job['status'])}")


def jobs_cancel(job_id: int, url: str = ServerUrl, data_dir: Path | None = DataDir) -> None:
    """Cancel a queued or running job (a running one is killed with its process tree)."""
    _act("cancel", job_id, url, data_dir)


def jobs_retry(job_id: int, url: str = ServerUrl, data_dir: Path | None = DataDir) -> None:
    """Queue a failed or needs_review job again."""
    _act("retry", job_id, url, data_dir)


def jobs_resolve(
    job_id: int,
    status: str = typer.Option(..., "--status", help="succeeded or failed"),
    note: str = typer.Option(..., "--note", help="What a person found."),
    url: str = ServerUrl,
    data_dir: Path | None = DataDir,
) -> None:
    """Close a needs_review job as succeeded or failed."""
    with _client(url, data_dir) as client:
        try:
            job = client.resolve(job_id, status, note)
        except ApiError as exc:
            raise _fail(exc) from exc
    console.print(f"job {job['id']} {_status(job['status'])}")


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(submit)
    jobs_app.command("ls")(jobs_ls)
    jobs_app.command("show")(jobs_show)
    jobs_app.command("cancel")(jobs_cancel)
    jobs_app.command("retry")(jobs_retry)
    jobs_app.command("resolve")(jobs_resolve)
    app.add_typer(jobs_app, name="jobs")
