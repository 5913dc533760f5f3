"""Submit-to-start latency through the HTTP API: an agent (push) beside a pull worker.

    python -m bench.push_latency                     # both stores, 300 jobs each way
    python -m bench.push_latency --backend postgres --jobs 500

One ``botyard server``, then either one ``botyard agent`` or one ``botyard worker`` (8 slots
each), every process started the way a user starts it. The server and the worker run with
``BOTYARD_WORKER_POLL_INTERVAL=3600``: only bus wake-ups move jobs, never a timer. After a
warm-up, ``--jobs`` no-op jobs are submitted with ``POST /jobs``, 10 ms apart; the latency of
each is the moment the automation function starts in its job process (``bench.noop`` returns
``time.time()``) minus the moment its ``POST /jobs`` was sent. (From the moment the answer
arrived it can be negative: the server wakes the workers before it writes the audit row and
answers.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

if __package__ in (None, ""):  # ``python bench/push_latency.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from bench.harness import (
    AUTOMATIONS,
    DEFAULT_PG_ADMIN_URL,
    BenchError,
    fresh_target,
    percentile,
    reference_loop_ms,
)
from bench.http_load import PASSWORD, SECRET, free_port
from botyard.store.sql import open_store

console = Console(width=140)
TOKEN = "bench-worker-token-" + "y" * 24
SLOTS = 8
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def _env(url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "BOTYARD_DATA_DIR": str(data_dir),
        "JWT_SECRET": SECRET,
        "ADMIN_PASSWORD": PASSWORD,
        "TOKEN_RATE_LIMIT": "off",
        "BOTYARD_WORKER_TOKEN": TOKEN,
        "DEVELOPMENT_MODE": "true",  # the agent on loopback
        "BOTYARD_WORKER_POLL_INTERVAL": "3600",
        "BOTYARD_AUTOMATIONS": str(AUTOMATIONS),
        "PYTHONUNBUFFERED": "1",
    }


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "botyard", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait(predicate: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if predicate():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise BenchError(f"timed out waiting for {what}")


def measure(backend: str, mode: str, jobs: int, pg_url: str) -> tuple[list[float], list[float]]:
    """Per job, in ms: sent → started, and sent → claimed (the claim stamps the attempt)."""
    with fresh_target(backend, pg_url) as target:
        env = _env(target.url, target.data_dir)
        log = target.data_dir / "processes.log"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        procs = [_spawn(["server", "--port", str(port)], env, log)]
        try:
            _wait(lambda: httpx.get(f"{base}/health/ready", timeout=1).status_code == 200, "server")
            worker_id = f"bench-{mode}"
            common = ["--automations", str(AUTOMATIONS), "-c", str(SLOTS), "--worker-id", worker_id]
            if mode == "agent":
                agent_port = free_port()
                url = f"http://127.0.0.1:{agent_port}"
                procs.append(
                    _spawn(["agent", *common, "--port", str(agent_port), "--url", url], env, log)
                )
            else:
                procs.append(_spawn(["worker", *common], env, log))
            store = open_store(target.url, migrate=False)
            try:
                _wait(lambda: store.workers.get(worker_id) is not None, f"the {mode} to register")
                answer = httpx.post(
                    f"{base}/token", data={"username": "admin", "password": PASSWORD}
                )
                auth = {"Authorization": f"Bearer {answer.json()['access_token']}"}
                with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
                    warm = [
                        http.post(
                            "/jobs",
                            json={"automation": "bench.warmup", "payload": {"seconds": 0.4}},
                        ).json()["id"]
                        for _ in range(SLOTS)
                    ]
                    _wait(
                        lambda: all(
                            http.get(f"/jobs/{j}").json()["status"] == "succeeded" for j in warm
                        ),
                        "warm-up",
                    )
                    time.sleep(0.5)
                    submitted: dict[int, float] = {}
                    began = time.perf_counter()
                    for n in range(jobs):
                        target_time = began + n * 0.010
                        time.sleep(max(0.0, target_time - time.perf_counter()))
                        sent = time.time()
                        job = http.post("/jobs", json={"automation": "bench.noop", "payload": {}})
                        submitted[job.json()["id"]] = sent

                    def finished() -> bool:
                        page = http.get(
                            "/jobs",
                            params={"automation": "bench.noop", "status": "succeeded", "limit": 1},
                        ).json()
                        return bool(page["total"] == jobs)

                    _wait(finished, "the jobs", timeout=120)
                latencies, claims = [], []
                for job_id, at in submitted.items():
                    record = store.get_job(job_id)
                    if [a.worker_id for a in record.attempts] != [worker_id]:
                        raise BenchError(f"job {job_id} ran on {record.attempts}")
                    latencies.append((float(record.result) - at) * 1000)
                    claims.append((record.attempts[0].started_at.timestamp() - at) * 1000)
                return latencies, claims
            finally:
                store.close()
        finally:
            for proc in reversed(procs):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--pg-url", default=DEFAULT_PG_ADMIN_URL)
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    loop = reference_loop_ms()
    table = Table(
        title=f"POST /jobs sent → job starts, {args.jobs} no-op jobs, 10 ms apart, {SLOTS} slots;"
        f" reference loop {loop:.0f} ms"
    )
    for column in ("Store", "Worker", "p50 ms", "p95 ms", "p99 ms", "max ms", "claimed p50 ms"):
        table.add_column(column, justify="right" if "ms" in column else "left")
    for backend in backends:
        for mode in ("pull", "agent"):
            values, claims = measure(backend, mode, args.jobs, args.pg_url)
            console.print(
                f"{NAMES[backend]} {mode}: median {statistics.median(values):.2f} ms", style="dim"
            )
            table.add_row(
                NAMES[backend],
                "agent (push)" if mode == "agent" else "pull worker",
                *(f"{percentile(values, p):.2f}" for p in (50, 95, 99)),
                f"{max(values):.2f}",
                f"{percentile(claims, 50):.2f}",
            )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
