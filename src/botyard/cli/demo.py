"""``botyard demo``: the embedded system end to end, with a summary at the end."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from botyard.cli.jobs import STATUS_STYLE
from botyard.cli.supervisor import Supervisor, interrupts_as_exit, wait_healthy
from botyard.client import FINAL, Client
from botyard.store.engine import build_engine, upgrade

console = Console()

DEMO_JOBS: list[tuple[str, dict[str, Any], str]] = [
    ("demo.hello", {"name": "Botyard"}, "succeeds"),
    ("demo.hello", {"name": "operations"}, "succeeds"),
    ("demo.flaky", {"circuit_number": "FTTH-1001"}, "fails once, succeeds on retry"),
    ("demo.interrupted", {"circuit_number": "FTTH-2002"}, "crashes mid side effect"),
    ("demo.lookup", {"circuit_number": "FTTH-404"}, "business error, no retry"),
]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _table(jobs: dict[int, dict[str, Any]], expected: dict[int, str]) -> Table:
    table = Table(title="Botyard demo")
    for column in ("job", "automation", "expected", "status", "attempts", "seconds", "detail"):
        table.add_column(column)
    for job_id, job in sorted(jobs.items()):
        seconds = ""
        if job.get("finished_at") and job.get("created_at"):
            delta = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(
                job["created_at"]
            )
            seconds = f"{delta.total_seconds():.2f}"
        detail = ""
        if job["result"] is not None:
            detail = str(job["result"])[:60]
        elif job["error"]:
            detail = f"{job['error'].get('type')}: {job['error'].get('message')}"[:60]
        status = job["status"]
        table.add_row(
            str(job_id),
            job["automation"],
            expected[job_id],
            f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]",
            str(job["attempt"]),
            seconds,
            detail,
        )
    return table


def demo(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Keep the demo's data here (default: a fresh temporary folder)."
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="Local worker processes."),
    timeout: float = typer.Option(120.0, "--timeout", help="Give up after this many seconds."),
) -> None:
    """Start the embedded system (SQLite, orchestrator, local workers) and run the demo jobs."""
    folder = data_dir or Path(tempfile.mkdtemp(prefix="botyard-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    password = "demo-" + os.urandom(6).hex()
    env.update(
        BOTYARD_DATA_DIR=str(folder.resolve()), ADMIN_PASSWORD=password, ADMIN_USERNAME="admin"
    )
    upgrade(build_engine(f"sqlite:///{(folder / 'botyard.db').resolve()}"))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "demo.log"
    supervisor = Supervisor(env)
    modules = ["--automations", "botyard.demo.automations"]
    console.print(f"Starting Botyard on {url} (SQLite in {folder}, logs in {log})")
    with interrupts_as_exit():
        try:
            supervisor.start("orchestrator", ["server", "--port", str(port), *modules], log=log)
            wait_healthy(url, supervisor)
            for i in range(workers):
                args = ["worker", *modules, "-c", "3", "--worker-id", f"demo-worker-{i + 1}"]
                supervisor.start(f"worker-{i + 1}", args, log=log)
            ok = _run(url, password, timeout)
        except KeyboardInterrupt:
            console.print("interrupted")
            ok = False
        finally:
            supervisor.stop()
    if not ok:
        raise typer.Exit(1)


def _run(url: str, password: str, timeout: float) -> bool:
    with Client(url) as client:
        client.login("admin", password)
        started = time.monotonic()
        expected: dict[int, str] = {}
        for name, payload, what in DEMO_JOBS:
            job = client.submit(name, payload)
            expected[job["id"]] = what
        jobs: dict[int, dict[str, Any]] = {}
        with Live(console=console, refresh_per_second=8) as live:
            while time.monotonic() - started < timeout:
                jobs = {job_id: client.get(job_id) for job_id in expected}
                live.update(_table(jobs, expected))
                if all(job["status"] in FINAL for job in jobs.values()):
                    break
                time.sleep(0.25)
        elapsed = time.monotonic() - started
    counts: dict[str, int] = {}
    for job in jobs.values():
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    done = all(job["status"] in FINAL for job in jobs.values())
    console.print(f"{len(jobs)} jobs in {elapsed:.1f}s: {summary}")
    if not done:
        console.print("[red]some jobs did not finish in time[/red]")
    else:
        console.print(
            "The needs_review job entered a side effect before its process died: Botyard will"
            " not run it again by itself. A person decides with `botyard jobs retry` or"
            " `botyard jobs resolve`."
        )
    return done


def register(app: typer.Typer) -> None:
    app.command()(demo)
