"""HTTP benchmark: one ``botyard server`` process under wrk, per store.

    python -m bench.http_load                  # SQLite and PostgreSQL, 10 s per endpoint
    python -m bench.http_load --backend sqlite --duration 5 --connections 64

The store is filled first with ``--jobs`` finished jobs (one attempt and one step each), so that
``GET /jobs/{id}`` reads a real row and ``/metrics`` aggregates a store of that size. wrk (Debian
package ``wrk``) generates the load from its own process; it shares the machine's cores with
the server and, on PostgreSQL, the database.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

if __package__ in (None, ""):  # ``python bench/http_load.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from bench.harness import DEFAULT_PG_ADMIN_URL, BenchError, fresh_target, reference_loop_ms
from botyard.jobs import Outcome
from botyard.store.records import Completion, NewJob
from botyard.store.sql import SqlStore, open_store
from botyard.store.tables import steps

console = Console(width=140)  # the table is wide; a pipe would get 80 columns
SECRET = "bench-http-secret-" + "x" * 32
PASSWORD = "bench-admin-password"
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    auth: bool = False
    connections: int | None = None  # None: --connections


ENDPOINTS = (
    Endpoint("GET /health", "/health"),
    Endpoint("GET /health/ready", "/health/ready"),
    Endpoint("GET /jobs/{id}", "/jobs/{job_id}", auth=True),
    # A scraper is one client: the figure that matters is how long one scrape takes.
    Endpoint("GET /metrics (JSON), 1 client", "/metrics", connections=1),
    Endpoint(
        "GET /metrics?format=prometheus, 1 client", "/metrics?format=prometheus", connections=1
    ),
)


@dataclass(frozen=True)
class Figures:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def fill(store: SqlStore, jobs: int) -> int:
    """``jobs`` finished jobs with an attempt and a step each; returns the id of a middle one."""
    ids: list[int] = []
    batch = 500
    for start in range(0, jobs, batch):
        for n in range(start, min(jobs, start + batch)):
            job, _ = store.submit(
                NewJob(automation="bench.noop", payload={"n": n, "circuit": f"FTTH-{n:06d}"})
            )
            ids.append(job.id)
        claimed = store.claim(
            "bench-filler",
            queues=["default"],
            automations=["bench.noop"],
            limit=batch,
            lease_ttl=60,
        )
        with store.engine.begin() as conn:
            conn.execute(
                steps.insert(),
                [
                    {
                        "job_id": c.id,
                        "attempt": c.attempt,
                        "name": "validate",
                        "kind": "step",
                        "status": "running",
                        "started_at": c.not_before,
                    }
                    for c in claimed
                ],
            )
        store.finish(
            [
                Completion(
                    c.id, c.attempt, Outcome.SUCCEEDED, c.max_attempts, c.idempotent, result=1
                )
                for c in claimed
            ]
        )
    return ids[len(ids) // 2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BOTYARD_DATA_DIR": str(data_dir),
        "JWT_SECRET": SECRET,
        "ADMIN_PASSWORD": PASSWORD,
        "TOKEN_RATE_LIMIT": "off",
        "BOTYARD_AUTOMATIONS": str(Path(__file__).resolve().parent / "automations.py"),
    }
    command = [sys.executable, "-m", "botyard", "server", "--port", str(port)]
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited: {(data_dir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise BenchError("the server did not answer /health within 60 s")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise BenchError(f"unreadable wrk latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def wrk(url: str, *, duration: float, connections: int, threads: int, token: str | None) -> Figures:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        url,
    ]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise BenchError(f"unreadable wrk output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    errors += sum(int(n) for n in re.findall(r"Socket errors:.*?(\d+)", out))
    return Figures(float(rps[1]), _ms(p50[1]), _ms(p99[1]), errors)


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Figures]:
    results: dict[str, Figures] = {}
    with fresh_target(backend, args.pg_url) as target:
        store = open_store(target.url, migrate=False)
        try:
            began = time.perf_counter()
            job_id = fill(store, args.jobs)
            console.print(
                f"{NAMES[backend]}: {args.jobs:,} finished jobs stored in "
                f"{time.perf_counter() - began:.1f} s",
                style="dim",
            )
        finally:
            store.close()
        port = free_port()
        server = start_server(target.url, target.data_dir, port)
        try:
            base = f"http://127.0.0.1:{port}"
            answer = httpx.post(f"{base}/token", data={"username": "admin", "password": PASSWORD})
            answer.raise_for_status()
            token = answer.json()["access_token"]
            for endpoint in ENDPOINTS:
                if args.only and not any(o in endpoint.label for o in args.only):
                    continue
                url = base + endpoint.path.format(job_id=job_id)
                check = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
                check.raise_for_status()
                wrk(url, duration=1, connections=4, threads=1, token=token)  # warm-up
                figures = wrk(
                    url,
                    duration=args.duration,
                    connections=endpoint.connections or args.connections,
                    threads=min(args.threads, endpoint.connections or args.connections),
                    token=token if endpoint.auth else None,
                )
                results[endpoint.label] = figures
                console.print(
                    f"{NAMES[backend]:<10} {endpoint.label:<34} "
                    f"{figures.requests_per_second:>8,.0f} req/s"
                    f"  p50 {figures.p50_ms:.2f} ms  p99 {figures.p99_ms:.2f} ms"
                    + (f"  errors {figures.errors}" if figures.errors else ""),
                    style="dim",
                )
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--jobs", type=int, default=10_000, help="finished jobs in the store")
    parser.add_argument("--only", type=lambda s: s.split(","), default=None, help="label filter")
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN_URL)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        console.print("wrk is not installed: apt-get install wrk", style="red")
        return 2
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    loop_before = reference_loop_ms()
    results = {b: run_backend(b, args) for b in backends}
    loop_ms = (loop_before + reference_loop_ms()) / 2
    table = Table(
        title=f"botyard server under wrk ({args.connections} connections, {args.threads} threads,"
        f" {args.duration:g} s each; {args.jobs:,} jobs stored; reference loop {loop_ms:.0f} ms)"
    )
    table.add_column("Endpoint")
    for b in backends:
        table.add_column(f"{NAMES[b]} req/s", justify="right")
        table.add_column("p50 / p99 ms", justify="right")
    for endpoint in ENDPOINTS:
        if not all(endpoint.label in results[b] for b in backends):
            continue
        cells = [endpoint.label]
        for b in backends:
            f = results[b][endpoint.label]
            cells += [
                f"{f.requests_per_second:,.0f}" + (f" ({f.errors} errors)" if f.errors else ""),
                f"{f.p50_ms:.2f} / {f.p99_ms:.2f}",
            ]
        table.add_row(*cells)
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
