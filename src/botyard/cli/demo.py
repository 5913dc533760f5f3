"""``botyard demo``: the embedded system drives the demo portal in real Chromium, end to end."""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pyotp
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from botyard.cli.jobs import STATUS_STYLE
from botyard.cli.supervisor import Supervisor, interrupts_as_exit, wait_healthy
from botyard.client import FINAL, Client
from botyard.errors import BrowserUnavailable
from botyard.store.engine import build_engine, upgrade

console = Console()

CLASSIC_JOBS: list[tuple[str, dict[str, Any], str]] = [
    ("demo.hello", {"name": "Botyard"}, "succeeds"),
    ("demo.hello", {"name": "operations"}, "succeeds"),
    ("demo.flaky", {"circuit_number": "FTTH-1001"}, "fails once, succeeds on retry"),
    ("demo.interrupted", {"circuit_number": "FTTH-2002"}, "crashes mid side effect"),
    ("demo.lookup", {"circuit_number": "FTTH-404"}, "business error, no retry"),
]
ACCOUNTS = ("ops1", "ops2", "ops3")
TOTP_INTERVAL = 5  # seconds: short, so that a login per account and step keeps the demo quick


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def portal_jobs(count: int) -> list[tuple[str, dict[str, Any], str]]:
    """``count`` jobs over the demo accounts: validations, every third a cancellation, and the
    sixth a circuit the portal does not have (a business error, with its failure screenshot)."""
    jobs: list[tuple[str, dict[str, Any], str]] = []
    for i in range(count):
        account = ACCOUNTS[i % len(ACCOUNTS)]
        circuit = f"FTTH-{1001 + i % 12}"
        if i % 6 == 5:
            payload = {"circuit_number": "FTTH-404", "account": account}
            jobs.append(("metrofiber.validation", payload, "not on the portal: business error"))
        elif i % 3 == 2:
            payload = {"circuit_number": circuit, "account": account, "reason": "demo: moved"}
            jobs.append(("metrofiber.cancellation", payload, "cancelled, with confirmation"))
        else:
            jobs.append(
                (
                    "metrofiber.validation",
                    {"circuit_number": circuit, "account": account},
                    "validated",
                )
            )
    return jobs


def _seconds(job: dict[str, Any]) -> str:
    if not (job.get("finished_at") and job.get("started_at")):
        return ""
    delta = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    return f"{delta.total_seconds():.2f}"


def _table(
    jobs: dict[int, dict[str, Any]], expected: dict[int, str], shots: dict[int, int]
) -> Table:
    table = Table(title="Botyard demo")
    columns = ("job", "automation", "payload", "expected", "status", "tries", "seconds", "shots")
    for column in (*columns, "detail"):
        table.add_column(column)
    for job_id, job in sorted(jobs.items()):
        detail = ""
        if job["result"] is not None:
            detail = str(job["result"].get("reference", job["result"]))[:40]
        elif job["error"]:
            detail = f"{job['error'].get('type')}: {job['error'].get('message')}"[:60]
        payload = job["payload"]
        what = " ".join(str(payload[k]) for k in ("circuit_number", "account") if k in payload)
        status = job["status"]
        table.add_row(
            str(job_id),
            job["automation"],
            what or str(payload)[:30],
            expected[job_id],
            f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]",
            str(job["attempt"]),
            _seconds(job),
            str(shots.get(job_id, "")),
            detail,
        )
    return table


def demo(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Keep the demo's data here (default: a fresh temporary folder)."
    ),
    jobs: int = typer.Option(6, "--jobs", "-n", min=1, max=200, help="Browser jobs to run."),
    concurrency: int = typer.Option(
        3, "--concurrency", "-c", min=1, max=32, help="Jobs (browsers) at once."
    ),
    classic: bool = typer.Option(
        False, "--classic", help="Run the five browserless jobs: retry, needs_review, errors."
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Keep everything running afterwards, until Ctrl-C."
    ),
    timeout: float = typer.Option(300.0, "--timeout", help="Give up after this many seconds."),
) -> None:
    """Start the embedded system (SQLite, orchestrator, a worker) and the demo portal, then
    run browser jobs that log in with a password and a TOTP code and validate or cancel."""
    if not classic:
        from botyard.browsers.local import find_chromium

        try:
            find_chromium(os.environ.get("BROWSER_EXECUTABLE"))
            if importlib.util.find_spec("playwright") is None:
                raise BrowserUnavailable("Playwright is missing: pip install 'botyard[browser]'")
        except BrowserUnavailable as exc:
            console.print(f"[red]{exc}[/red]  (or run `botyard demo --classic`)")
            raise typer.Exit(2) from None
    folder = data_dir or Path(tempfile.mkdtemp(prefix="botyard-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    password = "demo-" + os.urandom(6).hex()
    worker_token = secrets.token_urlsafe(24)
    env.update(
        BOTYARD_DATA_DIR=str(folder.resolve()),
        ADMIN_PASSWORD=password,
        ADMIN_USERNAME="admin",
        BOTYARD_WORKER_TOKEN=worker_token,
    )
    upgrade(build_engine(f"sqlite:///{(folder / 'botyard.db').resolve()}"))
    port = _port()
    url = f"http://127.0.0.1:{port}"
    env["BOTYARD_URL"] = url
    log = folder / "demo.log"
    supervisor = Supervisor(env)
    modules = ["--automations", "botyard.demo.automations"]
    stop_portal = None
    console.print(f"Starting Botyard on {url} (SQLite in {folder}, logs in {log})")
    with interrupts_as_exit():
        try:
            server_env: dict[str, str] = {}
            worker_env: dict[str, str] = {}
            if not classic:
                portal_url, stop_portal, server_env, worker_env = start_portal()
                console.print(f"Demo portal on {portal_url} (MetroFibre, accounts {ACCOUNTS})")
            supervisor.start(
                "orchestrator", ["server", "--port", str(port), *modules], log=log, env=server_env
            )
            wait_healthy(url, supervisor)
            c = str(concurrency if not classic else 3)
            for i in range(1 if not classic else 2):
                args = ["worker", *modules, "-c", c, "--worker-id", f"demo-worker-{i + 1}"]
                supervisor.start(f"worker-{i + 1}", args, log=log, env=worker_env)
            plan = CLASSIC_JOBS if classic else portal_jobs(jobs)
            ok = _run(url, password, plan, timeout, folder)
            if keep:
                console.print("Everything keeps running; Ctrl-C stops it.")
                supervisor.wait()
        except KeyboardInterrupt:
            console.print("interrupted")
            ok = False
        finally:
            supervisor.stop()
            if stop_portal is not None:
                stop_portal()
    if not ok:
        raise typer.Exit(1)


def start_portal(
    names: tuple[str, ...] = ACCOUNTS,
) -> tuple[str, Any, dict[str, str], dict[str, str]]:
    """The portal with one account per name; the TOTP secrets go to the orchestrator's
    environment only, the passwords to the worker's only."""
    from botyard.demo import PortalAccount, serve_portal

    accounts, server_env, worker_env = {}, {"TOTP_MIN_VALIDITY": "1"}, {}
    for name in names:
        account = PortalAccount(
            email=f"{name}@example.com",
            password=secrets.token_urlsafe(12),
            totp_secret=pyotp.random_base32(),
            interval=TOTP_INTERVAL,
        )
        accounts[account.email] = account
        prefix = f"METROFIBER_{name.upper()}"
        server_env[f"{prefix}_TOTP_SECRET"] = account.totp_secret
        server_env[f"{prefix}_TOTP_INTERVAL"] = str(TOTP_INTERVAL)
        worker_env[f"{prefix}_EMAIL"] = account.email
        worker_env[f"{prefix}_PASSWORD"] = account.password
    portal_url, stop = serve_portal(accounts)
    worker_env["METROFIBER_PORTAL_URL"] = portal_url
    return portal_url, stop, server_env, worker_env


def _run(
    url: str,
    password: str,
    plan: list[tuple[str, dict[str, Any], str]],
    timeout: float,
    folder: Path,
) -> bool:
    with Client(url) as client:
        client.login("admin", password)
        started = time.monotonic()
        expected: dict[int, str] = {}
        for name, payload, what in plan:
            job = client.submit(name, payload)
            expected[job["id"]] = what
        jobs: dict[int, dict[str, Any]] = {}
        shots: dict[int, int] = {}
        with Live(console=console, refresh_per_second=4) as live:
            while time.monotonic() - started < timeout:
                jobs = {job_id: client.get(job_id) for job_id in expected}
                for job_id, job in jobs.items():
                    if job["status"] in FINAL and job_id not in shots:
                        shots[job_id] = sum(
                            1 for e in client.evidence(job_id) if e["content_type"] == "image/png"
                        )
                live.update(_table(jobs, expected, shots))
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
        return False
    first = min(jobs)
    console.print(
        f"Dashboard: {url}/ui/jobs/{first} (log in as admin / {password}; --keep keeps it up)"
    )
    console.print(
        f"Look at: {url}/docs (the API: Authorize as admin / {password}, then"
        f" GET /jobs/{first}/screenshots, /browsers?all=true, /totp/metrics);"
        f" the screenshots on disk under {folder / 'evidence'}/<job>/<attempt>/"
    )
    return True


def register(app: typer.Typer) -> None:
    app.command()(demo)
